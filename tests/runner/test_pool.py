"""ActorPool on a local Ray: a dead actor's replacement that cannot be placed never holds up the work.

The actors here are tiny stand-ins (no simulator, no JIT): the pool's bookkeeping is what is tested.
A replacement asks for a resource that no node has, as the replacement of an actor of a lost node
asks for a CPU that the surviving nodes' own actors hold.
"""

from __future__ import annotations

import logging
import time

import pytest

from explorer.runner.pool import RAY_TOKEN_LOGGER, RAY_TOKEN_NOTICE, ActorPool, Slot, quiet_local_token_notice


def _worker_class():
    """Defined in a function, so that Ray ships it by value (the workers cannot import this test module)."""

    class Worker:
        def __init__(self, spec):
            self.spec = spec

        def ready(self):
            return {"spec": self.spec}

        def add_subject(self, subject_id, payload):
            return subject_id

        def run_batch(self, subject_id, tasks, keep_from=None):
            return {"subject": subject_id, "tasks": list(tasks)}

    return Worker


class _Pool(ActorPool):
    """The pool with stand-in actors; generation >= 1 (replacements) asks for an absent resource."""

    def _start(self, index: int, generation: int) -> Slot:
        import ray

        cls = ray.remote(num_cpus=1, max_restarts=0)(_worker_class())
        opts = {"name": f"{self.prefix}-{index}.{generation}"}
        if generation >= 1 and self.unplaceable:
            opts["resources"] = {"no_such_node": 1}
        handle = cls.options(**opts).remote(self.spec)
        return Slot(index=index, handle=handle, name=opts["name"], generation=generation,
                    ready_ref=handle.ready.remote())


def _pool(unplaceable: bool, timeout_s: float = 60.0) -> _Pool:
    _Pool.unplaceable = unplaceable
    pool = _Pool("spec", 2, "pooltest", replace_timeout_s=timeout_s)
    pool.put_subject("S1", {"x": 1})
    info = pool.wait_ready(timeout_s=120, max_restarts=0)
    assert [i["spec"] for i in info] == ["spec", "spec"]
    return pool


def _kill(ray, slot: Slot) -> None:
    """Kill the actor of ``slot`` and wait until it answers no more (``ray.kill`` lands asynchronously)."""
    ray.kill(slot.handle, no_restart=True)
    deadline = time.monotonic() + 60
    while True:
        try:
            ray.get(slot.handle.ready.remote(), timeout=60)
        except ray.exceptions.RayActorError:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"actor {slot.name} still answers 60 s after ray.kill")
        time.sleep(0.1)


def test_unplaceable_replacement_gets_no_work_and_the_survivor_takes_it(ray_session):
    ray = ray_session
    pool = _pool(unplaceable=True)
    try:
        dead, survivor = pool.slots
        _kill(ray, dead)
        new = pool.replace(dead)
        assert pool.replace(dead) is new            # a second failed batch of the same actor: no second actor
        assert new.generation == 1 and not new.ready and pool.replaced == 1
        time.sleep(0.5)
        # the replacement is pending (no node has its resource): work goes to the ready survivor only
        assert pool.slots == [survivor]
        ref = pool.submit(pool.slots[0], "S1", [1, 2])
        assert ray.get(ref, timeout=60) == {"subject": "S1", "tasks": [1, 2]}
        # nothing queued on it: the pending replacement is kept (it joins if the cluster gains room)
        pool.poll()
        assert not new.retired and pool.all_slots[0] is new
    finally:
        pool.shutdown()


def test_replacement_holding_work_is_given_up_after_the_timeout(ray_session):
    ray = ray_session
    pool = _pool(unplaceable=True, timeout_s=1.0)
    try:
        dead, survivor = pool.slots
        _kill(ray, dead)
        new = pool.replace(dead)
        # work queued on it while it was the only choice (e.g. every actor had died at once)
        stuck = pool.submit(new, "S1", [3])
        time.sleep(1.5)
        assert pool.slots == [survivor]             # polls: past the timeout, the replacement is given up
        assert new.retired and pool.retired == 1
        with pytest.raises(ray.exceptions.RayActorError):
            ray.get(stuck, timeout=60)              # its queued batch fails, so the scheduler retries it
        # the scheduler then "replaces" it: no new actor, the survivor is returned for the retry
        assert pool.replace(new) is survivor and pool.replaced == 1
        assert ray.get(pool.submit(survivor, "S1", [3]), timeout=60)["tasks"] == [3]
    finally:
        pool.shutdown()


def test_placeable_replacement_joins_once_ready(ray_session):
    ray = ray_session
    pool = _pool(unplaceable=False)
    try:
        dead, survivor = pool.slots
        _kill(ray, dead)
        new = pool.replace(dead)
        deadline = time.monotonic() + 60
        while len(pool.slots) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert pool.slots == [new, survivor] and new.ready
        assert ray.get(pool.submit(new, "S1", [4]), timeout=60)["tasks"] == [4]
    finally:
        pool.shutdown()


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_local_token_notice_is_dropped_only_inside_the_guard():
    """Ray's own notice function (the one a new local ``ray.init`` calls) logs nothing inside the guard,
    and the notice again once it is left; other records of that logger pass. Ray renaming the logger or
    rewording the notice fails here."""
    from ray._private.authentication import authentication_token_setup as ray_auth

    assert ray_auth.logger.name == RAY_TOKEN_LOGGER
    records = _Records()
    ray_auth.logger.addHandler(records)
    try:
        with quiet_local_token_notice():
            ray_auth._warn_token_auth_enabled()
            ray_auth.logger.warning("another warning")
        assert records.messages == ["another warning"]
        ray_auth._warn_token_auth_enabled()
        assert len(records.messages) == 2 and records.messages[1].startswith(RAY_TOKEN_NOTICE)
    finally:
        ray_auth.logger.removeHandler(records)


class _Calls:
    """Ray's wait/get over integer refs whose outcomes are given (an exception is raised by get)."""

    def __init__(self, outcomes):
        self.outcomes, self.sent = outcomes, []

    def wait(self, refs, num_returns=1, timeout=None):
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref):
        out = self.sent[ref][1]
        if isinstance(out, BaseException):
            raise out
        return out

    def submit(self, slot, item):
        slot.inflight += 1
        attempt = sum(1 for s, _ in self.sent if s[1] == item)
        self.sent.append(((slot.name, item), self.outcomes[item][attempt]))
        return len(self.sent) - 1


class _Stop:
    requested = False


def _fake_pool(calls):
    pool = ActorPool.__new__(ActorPool)
    pool._ray = calls
    pool.all_slots = [Slot(0, None, "a", ready=True), Slot(1, None, "b", ready=True)]
    spare = Slot(0, None, "a.1", ready=True)
    pool.replace = lambda slot: spare
    return pool


def test_run_calls_retries_a_dead_actors_call_on_its_replacement_and_keeps_every_result():
    from ray.exceptions import RayActorError

    calls = _Calls({"x": [RayActorError(), "x done"], "y": ["y done"], "z": ["z done"]})
    pool, got = _fake_pool(calls), []
    pool.run_calls(["x", "y", "z"], calls.submit, lambda item, out: got.append((item, out)), _Stop(), 1, 1, "test")
    assert sorted(got) == [("x", "x done"), ("y", "y done"), ("z", "z done")]
    assert [who for (who, item), _ in calls.sent if item == "x"] == ["a", "a.1"]    # retried on the replacement
    assert all(s.inflight == 0 for s in pool.all_slots)
    with pytest.raises(RayActorError):      # no retries left: the error is the caller's
        calls = _Calls({"x": [RayActorError()]})
        _fake_pool(calls).run_calls(["x"], calls.submit, lambda *a: None, _Stop(), 1, 0, "test")


def test_run_calls_stops_between_results_on_a_signal():
    calls, stop, got = _Calls({k: [k] for k in "abcdef"}), _Stop(), []

    def done(item, out):
        got.append(out)
        stop.requested = True

    _fake_pool(calls).run_calls(list("abcdef"), calls.submit, done, stop, 1, 0, "test")
    assert got == ["a"] and len(calls.sent) == 2       # the two in flight were sent, nothing after the signal
