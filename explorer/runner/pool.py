"""A pool of simulator actors that the driver keeps busy, replacing actors that die."""

from __future__ import annotations

import logging
import os
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from explorer.config import StudyConfig
from explorer.layout import ray_address
from explorer.records import Task
from explorer.runner.actor import WorkerSpec, remote_actor_class
from explorer.runner.interrupts import Interrupted

log = logging.getLogger(__name__)

ACTOR_PREFIX = "explorer-sim"
#: seconds a replacement actor that holds queued work may stay unplaced while other actors are ready
REPLACE_TIMEOUT_S = 60.0
#: the logger and start of the notice that a new local Ray logs when it turns token authentication on
RAY_TOKEN_LOGGER = "ray._private.authentication.authentication_token_setup"
RAY_TOKEN_NOTICE = "Token authentication is enabled for this Ray cluster"
#: replacements per slot (on average) that may die while starting before the pool stops replacing them
MAX_RESTARTS_PER_SLOT = 3


def default_actors(cfg: StudyConfig, override: int | None = None) -> int:
    """How many actors: ``override``, ``ray.actors``, else one per CPU (of this machine or the cluster)."""
    if override:
        return int(override)
    if cfg.ray.actors:
        return int(cfg.ray.actors)
    if ray_address(cfg) is None:
        return max(1, os.cpu_count() or 1)
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


class _DropTokenNotice(logging.Filter):
    """Drops Ray's notice that token authentication is on; every other record passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(RAY_TOKEN_NOTICE)


@contextmanager
def quiet_local_token_notice() -> Iterator[None]:
    """Silence Ray's "Token authentication is enabled for this Ray cluster" while ``ray.init`` starts
    the local Ray that explorer owns.

    A new local Ray turns token authentication on by default (``RAY_AUTH_MODE`` unset) and logs this
    at every command. The token stays on: only the notice is dropped, and only for a local Ray; joining
    a user's cluster logs whatever Ray logs.
    """
    logger = logging.getLogger(RAY_TOKEN_LOGGER)
    notice_filter = _DropTokenNotice()
    logger.addFilter(notice_filter)
    try:
        yield
    finally:
        logger.removeFilter(notice_filter)


def init_ray(cfg: StudyConfig, actors: int | None = None) -> bool:
    """Start or join Ray unless the caller already did; returns whether we must shut it down."""
    import ray

    if ray.is_initialized():
        return False
    address = ray_address(cfg)
    kw: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, configure_logging=True,
                              logging_level=logging.WARNING)
    if address is None:
        kw["num_cpus"] = default_actors(cfg, actors)
        with quiet_local_token_notice():
            ray.init(**kw)
    else:
        ray.init(address=address, **kw)
    private_token_file()
    return True


def private_token_file() -> Path | None:
    """Make Ray's token file private (0600); returns it if it was not.

    Ray 2.60 writes the token it generates (``ray start --head``, or ``ray.init`` starting a local
    cluster) to ``$RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token`` with the process's umask: often 0644,
    readable by every user of a shared node whose home directory others may traverse."""
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or "~/.ray/auth_token").expanduser()
    try:
        st = path.stat()
        if st.st_uid != os.getuid() or not st.st_mode & 0o077:
            return None
        path.chmod(0o600)
    except OSError:
        return None
    log.info("made Ray's token file %s private (mode 0600)", path)
    return path


@dataclass
class Slot:
    """One actor position of the pool; ``generation`` counts replacements.

    ``ready_ref`` is the actor's pending ``ready()`` call until it has been placed on a node and has
    compiled its model (then None and ``ready`` True); ``retired``: given up (see :meth:`ActorPool.poll`).
    """

    index: int
    handle: Any
    name: str
    generation: int = 0
    subjects: set[str] = field(default_factory=set)
    inflight: int = 0
    alive: bool = True
    ready: bool = False
    ready_ref: Any = None
    started: float = field(default_factory=time.monotonic)
    retired: bool = False


class ActorPool:
    """``n`` named actors (``explorer-sim-<study>-<run>-<i>.<gen>``) sharing the subjects' ObjectRefs.

    An actor that dies is replaced (:meth:`replace`), but its replacement gets work only once it is
    ready (placed on a node and compiled) while any other actor is: on a cluster that lost a node,
    the replacement may wait for a free CPU forever, and the dead actor's batches go to the living
    actors at once (:attr:`slots` lists only the ready ones). A replacement that is still not placed
    after ``replace_timeout_s`` while work is queued on it (no other actor was ready then) is given up:
    it is killed, its batches fail with ``RayActorError`` and are retried on the actors that are.
    """

    def __init__(self, spec: WorkerSpec, n: int, study: str, replace_timeout_s: float = REPLACE_TIMEOUT_S):
        import ray

        self._ray = ray
        self.spec = spec
        self.cls = remote_actor_class()
        self.prefix = f"{ACTOR_PREFIX}-{study}-{uuid.uuid4().hex[:6]}"
        self.subject_refs: dict[str, Any] = {}
        self.replace_timeout_s = float(replace_timeout_s)
        self.all_slots = [self._start(i, 0) for i in range(n)]
        self.replaced = 0
        self.retired = 0
        self._restarts = 0

    def _start(self, index: int, generation: int) -> Slot:
        name = f"{self.prefix}-{index}.{generation}"
        handle = self.cls.options(name=name).remote(self.spec)
        return Slot(index=index, handle=handle, name=name, generation=generation, ready_ref=handle.ready.remote())

    @property
    def slots(self) -> list[Slot]:
        """The slots to give work to: the ready ones; while none is ready, every slot not given up
        (their calls queue until the actors start, as at start-up). Polls the pending replacements."""
        self.poll()
        live = [s for s in self.all_slots if s.alive and not s.retired]
        return [s for s in live if s.ready] or live

    def poll(self) -> None:
        """Mark the replacements that became ready; replace those that died starting; give up those that
        cannot be placed within ``replace_timeout_s`` while work waits on them and another actor is ready."""
        from ray.exceptions import RayActorError

        pending = {s.ready_ref: s for s in self.all_slots if s.ready_ref is not None and s.alive}
        if not pending:
            return
        done, _ = self._ray.wait(list(pending), num_returns=len(pending), timeout=0)
        for ref in done:
            slot = pending.pop(ref)
            slot.ready_ref = None
            try:
                self._ray.get(ref)
            except RayActorError:
                self._restarts += 1
                if self._restarts > MAX_RESTARTS_PER_SLOT * len(self.all_slots):
                    self._retire(slot, "kept dying while starting")
                else:
                    self.replace(slot)
                continue
            slot.ready = True
            log.info("actor %s ready after %.1f s", slot.name, time.monotonic() - slot.started)
        if not any(s.ready and s.alive for s in self.all_slots):
            return
        now = time.monotonic()
        for slot in pending.values():
            if slot.inflight and now - slot.started > self.replace_timeout_s:
                self._retire(slot, f"not placed on any node within {self.replace_timeout_s:g} s")

    def _retire(self, slot: Slot, why: str) -> None:
        """Give up a slot for good (its queued calls fail with RayActorError); the pool goes on without it."""
        slot.retired, slot.alive, slot.ready_ref = True, False, None
        self.retired += 1
        try:
            self._ray.kill(slot.handle, no_restart=True)
        except Exception:  # noqa: BLE001 - already gone
            pass
        log.warning("actor %s %s; going on with the %d other actor(s)", slot.name, why,
                    sum(1 for s in self.all_slots if s.alive))

    def wait_ready(self, timeout_s: float = 600.0, max_restarts: int = 3,
                   should_stop: Callable[[], bool] | None = None) -> list[dict[str, Any]]:
        """Block until every actor has compiled its model (replacing any that die meanwhile).

        ``should_stop`` is polled every 0.5 s; when it returns True, :class:`Interrupted` is raised.
        """
        from ray.exceptions import RayActorError

        pending = {s.ready_ref: s for s in self.all_slots if s.ready_ref is not None and s.alive}
        info: list[dict[str, Any]] = []
        restarts = 0
        deadline = time.monotonic() + timeout_s
        while pending:
            if should_stop is not None and should_stop():
                raise Interrupted("stopped while the actors were starting")
            ready, _ = self._ray.wait(list(pending), num_returns=1, timeout=0.5)
            if not ready:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"simulator actors not ready after {timeout_s} s")
                continue
            for ref in ready:
                slot = pending.pop(ref)
                slot.ready_ref = None
                try:
                    info.append(self._ray.get(ref))
                except RayActorError:
                    restarts += 1
                    if restarts > max_restarts * len(self.all_slots):
                        raise
                    new = self.replace(slot)
                    pending[new.ready_ref] = new
                    continue
                slot.ready = True
        return info

    def put_subject(self, subject_id: str, payload: dict[str, Any]) -> None:
        """Ship a subject's arrays to the object store once; actors fetch it when first needed."""
        if subject_id not in self.subject_refs:
            self.subject_refs[subject_id] = self._ray.put(payload)

    def submit(self, slot: Slot, subject_id: str, tasks: list[Task], keep_from: float | None = None) -> Any:
        """Queue a batch of search trials (``run_batch``) on ``slot``; ``keep_from``: see ``SimWorker.run_batch``."""
        return self.submit_method(slot, "run_batch", subject_id, tasks, keep_from=keep_from)

    def submit_method(self, slot: Slot, method: str, subject_id: str, tasks: list[Any], **kwargs: Any) -> Any:
        """Queue ``method(subject_id, tasks, **kwargs)`` on ``slot``, sending the subject's ObjectRef first if
        the actor lacks it (``run_batch`` for the search, ``simulate_fc`` for the report)."""
        if subject_id not in slot.subjects:
            slot.handle.add_subject.remote(subject_id, self.subject_refs[subject_id])
            slot.subjects.add(subject_id)
        slot.inflight += 1
        return getattr(slot.handle, method).remote(subject_id, tasks, **kwargs)

    def call(self, slot: Slot, method: str, *args: Any, **kwargs: Any) -> Any:
        """Queue ``method(*args, **kwargs)`` on ``slot`` (a call that needs no subject's ObjectRef, e.g. ``fit_ec``)."""
        slot.inflight += 1
        return getattr(slot.handle, method).remote(*args, **kwargs)

    def run_calls(self, items: list[Any], submit: Callable[[Slot, Any], Any], on_done: Callable[[Any, Any], None],
                  stop: Any, per_actor: int, max_retries: int, what: str) -> None:
        """Send every item of ``items`` to the actors, at most ``per_actor`` calls in flight on each.

        ``submit(slot, item)`` queues one call and returns its ObjectRef; ``on_done(item, result)`` runs in
        the driver as each call returns. A call whose actor died is sent again to the actor's replacement
        (``max_retries`` times, then the error is raised); ``stop.requested`` (a signal) stops it between
        results: what came back is kept, the rest is dropped. ``what`` names the work in log lines.
        """
        from ray.exceptions import RayActorError, WorkerCrashedError

        queue = list(items)[::-1]
        inflight: dict[Any, tuple[Slot, Any, int]] = {}
        while True:
            for slot in sorted(self.slots, key=lambda s: s.inflight):
                while queue and slot.inflight < per_actor and not stop.requested:
                    item = queue.pop()
                    inflight[submit(slot, item)] = (slot, item, 0)
            if not inflight or stop.requested:
                return
            ready, _ = self._ray.wait(list(inflight), num_returns=1, timeout=0.5)
            for ref in ready:
                slot, item, attempt = inflight.pop(ref)
                slot.inflight -= 1
                try:
                    out = self._ray.get(ref)
                except (RayActorError, WorkerCrashedError) as exc:
                    if attempt >= max_retries:
                        raise
                    log.warning("%s: %s; retrying on its actor's replacement", what, type(exc).__name__)
                    new = self.replace(slot)
                    inflight[submit(new, item)] = (new, item, attempt + 1)
                    continue
                on_done(item, out)

    def replace(self, slot: Slot) -> Slot:
        """Start a fresh actor in place of a dead one (same index, next generation); returns it.

        Idempotent: a slot already replaced returns its replacement. A slot given up (:meth:`poll`) is
        not replaced: the least busy working slot is returned instead."""
        current = self.all_slots[slot.index]
        if slot.retired or current.retired:
            working = self.slots
            if not working:
                raise RuntimeError(f"no simulator actor left in pool {self.prefix}")
            return min(working, key=lambda s: s.inflight)
        if not slot.alive:
            return current
        slot.alive = False
        try:
            self._ray.kill(slot.handle, no_restart=True)
        except Exception:  # noqa: BLE001 - already gone
            pass
        new = self._start(slot.index, slot.generation + 1)
        self.all_slots[slot.index] = new
        self.replaced += 1
        log.warning("actor %s died; replaced by %s (it gets work once it is placed and ready)", slot.name, new.name)
        return new

    def shutdown(self) -> None:
        for s in self.all_slots:
            try:
                self._ray.kill(s.handle, no_restart=True)
            except Exception:  # noqa: BLE001
                pass
