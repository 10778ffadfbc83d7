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
