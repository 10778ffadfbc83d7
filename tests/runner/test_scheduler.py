"""Call sizes of the scheduler: sized by work, and shrinking as the session ends (guided self-scheduling)."""

from __future__ import annotations

import math

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
