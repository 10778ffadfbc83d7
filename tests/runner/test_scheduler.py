"""Call sizes of the scheduler: sized by work, and shrinking as the session ends (guided self-scheduling)."""

from __future__ import annotations

import math

from explorer.records import TrialRecord
from optuna.trial import TrialState

from explorer.search import TOLD_ORDER_ATTR, distributions, trial_seed

from scheduler_stubs import scheduler


def test_calls_shrink_as_the_session_ends_so_the_actors_finish_together(tmp_path):
    """Two actors, two places each: a call takes at most ceil(left / 4) of the trials not yet asked, so the
    last calls are small and no actor is left running one big call while the others wait."""
    sched, session, _ = scheduler(tmp_path, trials=40, ray={"batch_size": 16})
    session.more = 0                       # no subject left to admit: the end of the session is in sight
    sched.trial_s = 1e-4                   # measured cheap: by work alone every call would take batch_size
    assert len(sched.pool.slots) == 2
    left, sizes = 3 * 40, []
    while left:
        sid = sched._next_subject()
        n = len(sched._ask(sid))
        assert n == min(16, math.ceil(left / 4), 40 - sched.done[sid] - sched.inflight_n[sid] + n)
        sizes.append(n)
        left -= n
    assert sum(sizes) == 120 and sizes[:4] == [16] * 4 and sizes[-3:] == [1, 1, 1]


def test_calls_keep_their_size_while_subjects_are_still_to_come(tmp_path):
    """While the session may still admit subjects, the end is not near: calls keep their work-based size."""
    sched, session, _ = scheduler(tmp_path, trials=40, ray={"batch_size": 16})
    session.more = 2
    sched.trial_s = 1e-4
    sizes = [len(sched._ask(sched._next_subject())) for _ in range(6)]
    assert sizes == [16] * 6
    assert sched.batch_size() == 16


def test_at_the_end_the_subject_with_the_fewest_trials_left_goes_first(tmp_path):
    """Once calls shrink, subjects are finished one after another (fewest left first), not all at the very end."""
    sched, session, _ = scheduler(tmp_path, trials=40, ray={"batch_size": 16})
    sched.trial_s = 1e-4
    session.more = 0
    assert not sched.ending()                       # 120 left >= 2 actors x 2 places x 16
    for sid, n in (("NAP_001", 12), ("NAP_002", 30), ("NAP_007", 36)):
        sched.inflight_n[sid] = n                   # as if in flight: 28, 10 and 4 left to ask
    assert sched.ending()
    order = []
    while (sid := sched._next_subject()) is not None:
        order.append(sid)
        sched._ask(sid)
    assert order[0] == "NAP_007" and order.index("NAP_002") < order.index("NAP_001")
    assert all(sched._remaining(s) == 0 for s in ("NAP_001", "NAP_002", "NAP_007"))


def _complete(sid, tasks, score=0.5):
    return [TrialRecord.of(sid, t, "COMPLETE", scores={"fc_r": score + 0.01 * t.number, "fc_rmse": 0.2})
            for t in tasks]


def test_asynchronous_mode_records_the_order_in_which_trials_were_told(tmp_path):
    """Results come back in any order; each trial keeps its place in its subject's tell sequence."""
    sched, session, _ = scheduler(tmp_path, subjects=["NAP_001"], trials=8, ray={"batch_size": 4})
    sched.verdict = "ok"
    first, second = sched._ask("NAP_001"), sched._ask("NAP_001")
    assert [t.number for t in first + second] == list(range(8))
    sched.tell("NAP_001", _complete("NAP_001", second[::-1]))     # the later call came back first
    sched.tell("NAP_001", _complete("NAP_001", first))
    told = {t.number: t.user_attrs[TOLD_ORDER_ATTR] for t in session.studies["NAP_001"].get_trials()}
    assert told == {7: 0, 6: 1, 5: 2, 4: 3, 0: 4, 1: 5, 2: 6, 3: 7}


def test_deterministic_rounds_are_fixed_whole_and_told_in_trial_order(tmp_path):
    """Deterministic mode: a round of sampler.batch trials per subject whatever the timing or the end of the
    session; the subject is not asked again until all of it is back; then it is told in trial order."""
    sched, session, _ = scheduler(tmp_path, trials=7, sampler={"deterministic": True, "batch": 3})
    sched.verdict = "ok"
    session.more = 0
    sched.trial_s = 10.0                    # measured slow, and the end in sight: no effect on the round
    sid = sched._next_subject()
    first = sched._ask(sid)
    assert [t.number for t in first] == [0, 1, 2]
    assert [t.seed for t in first] == [trial_seed(0, sid, k) for k in range(3)]
    assert sid not in [sched._next_subject() for _ in range(4)]     # its round is out: the others are asked
    recs = _complete(sid, first)
    sched._back(sid, [recs[2]])
    sched._back(sid, [recs[0]])
    assert not sched.done[sid] and not sched._askable(sid)          # nothing told while part of it is out
    sched._back(sid, [recs[1]])
    trials = session.studies[sid].get_trials()
    assert [t.user_attrs[TOLD_ORDER_ATTR] for t in trials] == [0, 1, 2]
    assert sched.done[sid] == 3 and sched._askable(sid)
    assert [t.number for t in sched._ask(sid)] == [3, 4, 5]


def test_deterministic_draws_depend_on_the_told_history_alone(tmp_path):
    """Two schedulers on fresh studies of one config draw the same parameters and seeds, though one study
    holds an extra, failed draw before each round (what an interrupted round leaves behind): it moves
    the trial numbers and would move an unseeded sampler's random stream."""
    cfg = {"trials": 6, "sampler": {"deterministic": True, "batch": 2, "options": {"n_startup_trials": 2}}}
    draws = {}
    for name in ("plain", "with_failures"):
        s, session, _ = scheduler(tmp_path / name, subjects=["NAP_001"], **cfg)
        s.verdict = "ok"
        study, got = session.studies["NAP_001"], []
        for _ in range(3):
            if name == "with_failures":
                extra = study.ask(distributions(s.cfg))
                study.tell(extra, state=TrialState.FAIL)
            tasks = s._ask("NAP_001")
            got += [(t.free, t.seed) for t in tasks]
            s._back("NAP_001", _complete("NAP_001", tasks))
        draws[name] = got
    assert draws["plain"] == draws["with_failures"] and len({str(f) for f, _ in draws["plain"]}) == 6
