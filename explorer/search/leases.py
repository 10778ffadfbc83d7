"""Per-subject leases in the shared Optuna storage: two drivers never run the same subject.

A file lock means nothing to a driver on another host, so the leases live where every driver of a
study already writes: its Optuna storage (a journal file, SQLite, PostgreSQL or Optuna's gRPC proxy).
Each backend refuses a second study of the same name (``DuplicatedStudyError``), and that is the
one atomic step a lease needs:

* the lease of a subject is an (empty) Optuna study named ``explorer.lease:<study>/<subject>#<g>``;
  whoever creates generation ``g`` holds it, and its user attributes say who (owner, host, pid);
* each driver keeps one record, ``explorer.driver:<study>/<owner>``, whose ``heartbeat`` attribute
  (epoch seconds) it rewrites every ``heartbeat_s``: one write per driver, whatever its subjects;
* releasing a lease deletes it (and a driver's record goes when it holds none), so a study at
  rest holds no bookkeeping studies; a lease is free when there is none, when its driver's record
  is gone, when that driver's process is gone from this host, or when its heartbeat is older than
  ``stale_s``. Taking it over
  means creating generation ``g + 1``: of two drivers that try at once, exactly one succeeds. The
  taker logs the takeover, tells the old driver (attribute ``evicted:<subject>`` on its record:
  the old driver stops scheduling that subject at its next heartbeat) and deletes generation ``g``.

Clocks: staleness compares the holder's heartbeat with the taker's clock, so hosts must agree to
well within ``stale_s`` (NTP does).
"""

from __future__ import annotations

import logging
import os
import platform
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

LEASE_PREFIX = "explorer.lease:"
DRIVER_PREFIX = "explorer.driver:"
EVICTED = "evicted:"


def lease_name(study: str, subject: str, generation: int) -> str:
    return f"{LEASE_PREFIX}{study}/{subject}#{generation}"


def driver_name(study: str, owner: str) -> str:
    return f"{DRIVER_PREFIX}{study}/{owner}"


def is_bookkeeping(study_name: str) -> bool:
    """Whether an Optuna study name is a lease or driver record (not a subject's study)."""
    return study_name.startswith((LEASE_PREFIX, DRIVER_PREFIX))


def process_start(pid: int) -> float | None:
    """The start time of process ``pid`` (epoch s), or None when no such process runs here.

    A zombie (killed, not yet reaped by its parent: a batch system, notebook or workflow tool that
    has not waited yet) still has a start time but runs no more: it counts as gone.
    """
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


@dataclass(frozen=True)
class Holder:
    """Who holds (or held) a subject's lease."""

    subject: str
    generation: int
    owner: str = ""
    host: str = ""
    pid: int = 0
    pstart: float = 0.0        # the holder process's start time (epoch s): tells a reused pid apart
    since: float = 0.0         # epoch s
    heartbeat: float | None = None   # its driver's last heartbeat (epoch s); None: no driver record

    def describe(self, now: float | None = None) -> str:
        if not self.owner:
            return "a driver that is starting"
        now = time.time() if now is None else now
        beat = "no heartbeat" if self.heartbeat is None else f"last heartbeat {max(0.0, now - self.heartbeat):.0f} s ago"
        return (f"driver pid {self.pid} on {self.host}, since "
                f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(self.since))}, {beat}")


def liveness(holder: Holder, stale_s: float, now: float, host: str) -> tuple[bool, str]:
    """(whether ``holder`` still holds its lease, why not). Pure but for the process lookup on this host."""
    if not holder.owner:
        return True, ""               # created a moment ago; its owner attributes follow
    if holder.heartbeat is None:
        return False, "its driver left no record"
    if holder.host == host:
        start = process_start(holder.pid)
        if start is None or abs(start - holder.pstart) > 1.0:
            return False, f"its process (pid {holder.pid}) is gone"
        return True, ""
    if now - holder.heartbeat > stale_s:
        return False, f"no heartbeat for {now - holder.heartbeat:.0f} s (> leases.stale_s = {stale_s:g} s)"
    return True, ""


def current_leases(storage: Any, study: str) -> dict[str, Holder]:
    """The newest lease of every subject of ``study`` in ``storage``, with its driver's heartbeat."""
    prefix_l, prefix_d = LEASE_PREFIX + study + "/", DRIVER_PREFIX + study + "/"
    leases: dict[str, tuple[int, dict]] = {}
    beats: dict[str, float] = {}
    for s in storage.get_all_studies():
        name = s.study_name
        if name.startswith(prefix_l):
            subject, _, gen = name[len(prefix_l):].rpartition("#")
            if gen.isdigit() and (subject not in leases or int(gen) > leases[subject][0]):
                leases[subject] = (int(gen), dict(s.user_attrs))
        elif name.startswith(prefix_d):
            beats[name[len(prefix_d):]] = float(s.user_attrs.get("heartbeat", 0.0))
    out = {}
    for subject, (gen, a) in leases.items():
        owner = str(a.get("owner", ""))
        out[subject] = Holder(subject, gen, owner, str(a.get("host", "")), int(a.get("pid", 0)),
                              float(a.get("pstart", 0.0)), float(a.get("since", 0.0)),
                              beats.get(owner))
    return out


def running_drivers(storage: Any, study: str, stale_s: float, now: float | None = None) -> list[dict[str, Any]]:
    """The drivers holding live leases of ``study``: [{driver, subjects}], plus stale ones ({..., stale: why})."""
    now = time.time() if now is None else now
    host = platform.node()
    out: dict[str, dict[str, Any]] = {}
    for subject, h in sorted(current_leases(storage, study).items()):
        live, why = liveness(h, stale_s, now, host)
        entry = out.setdefault(h.owner, {"driver": h.describe(now), "subjects": [], "stale": "" if live else why})
        entry["subjects"].append(subject)
    return list(out.values())


class SubjectLeases:
    """This driver's leases on the subjects of study ``study`` in ``storage``.

    :meth:`acquire` takes the free ones and returns the holders of the others; :meth:`start` begins
    the heartbeat thread; :meth:`close` releases everything. ``lost`` holds the subjects another
    driver took over (this driver must stop scheduling them).
    """

    def __init__(self, storage: Any, study: str, heartbeat_s: float = 10.0, stale_s: float = 60.0,
                 clock: Callable[[], float] = time.time):
        self.storage = storage
        self.study = study
        self.heartbeat_s = heartbeat_s
        self.stale_s = stale_s
        self.clock = clock
        self.owner = uuid.uuid4().hex[:12]
        self.host = platform.node()
        self.pid = os.getpid()
        self.pstart = process_start(self.pid) or 0.0
        self.held: dict[str, int] = {}        # subject -> lease study id
        self.lost: set[str] = set()
        self.takeovers: list[str] = []        # one line per lease taken over from a dead or stale driver
        self._driver_id: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- reading ----------------------------------------------------------------------------
    def scan(self) -> dict[str, Holder]:
        return current_leases(self.storage, self.study)

    # -- taking -----------------------------------------------------------------------------
    def acquire(self, subjects: Iterable[str], limit: int | None = None) -> dict[str, Holder]:
        """Lease each of ``subjects`` that is free (in order, at most ``limit`` new ones); returns
        {subject: live holder} for those another driver holds (the ones after the limit are not tried)."""
        from optuna.exceptions import DuplicatedStudyError

        self._register()
        current = self.scan()
        refused: dict[str, Holder] = {}
        now = self.clock()
        taken = 0
        displaced: set[str] = set()      # owners of the leases taken over
        for subject in subjects:
            if subject in self.held:
                continue
            if limit is not None and taken >= limit:
                break
            old = current.get(subject)
            if old is not None and old.owner != self.owner:
                live, why = liveness(old, self.stale_s, now, self.host)
                if live:
                    refused[subject] = old
                    continue
            gen = old.generation + 1 if old is not None else 0
            try:
                sid = self._create(lease_name(self.study, subject, gen))
            except DuplicatedStudyError:   # another driver took it a moment ago
                refused[subject] = self.scan().get(subject) or Holder(subject, gen)
                continue
            # the owner last: a reader that finds no owner yet treats the lease as held by a starting driver
            for k, v in {"host": self.host, "pid": self.pid, "pstart": self.pstart, "since": now,
                         "owner": self.owner}.items():
                self.storage.set_study_user_attr(sid, k, v)
            self.held[subject] = sid
            taken += 1
            if old is not None:
                if old.owner:
                    line = (f"subject {subject}: took over the lease of {old.describe(now)} ({why})")
                    self.takeovers.append(line)
                    log.warning("%s", line)
                    self._evict(old)
                    displaced.add(old.owner)
                self._delete(lease_name(self.study, subject, old.generation))
        self._forget(displaced)
        return refused

    def _register(self) -> None:
        if self._driver_id is not None:
            return
        self._driver_id = self._create(driver_name(self.study, self.owner))
        for k, v in {"host": self.host, "pid": self.pid, "started": self.clock(),
                     "heartbeat": self.clock()}.items():
            self.storage.set_study_user_attr(self._driver_id, k, v)

    def _create(self, name: str) -> int:
        """Create the (empty) study ``name``: the atomic step; raises DuplicatedStudyError if it exists."""
        from optuna.study import StudyDirection

        return self.storage.create_new_study([StudyDirection.MINIMIZE], name)

    def _evict(self, old: Holder) -> None:
        try:
            sid = self.storage.get_study_id_from_name(driver_name(self.study, old.owner))
        except KeyError:
            return
        self.storage.set_study_user_attr(sid, EVICTED + old.subject, self.owner)

    def _forget(self, owners: set[str]) -> None:
        """Delete the records of the displaced drivers in ``owners`` that hold no lease any more."""
        if not owners:
            return
        holding = {h.owner for h in self.scan().values()}
        for owner in owners - holding - {self.owner}:
            self._delete(driver_name(self.study, owner))

    def _delete(self, name: str) -> None:
        try:
            self.storage.delete_study(self.storage.get_study_id_from_name(name))
        except KeyError:
            pass

    # -- keeping ----------------------------------------------------------------------------
    def beat(self) -> set[str]:
        """Write the heartbeat; returns the subjects newly found taken over by another driver."""
        if self._driver_id is None:
            return set()
        with self._lock:
            try:
                self.storage.set_study_user_attr(self._driver_id, "heartbeat", self.clock())
                attrs = self.storage.get_study_user_attrs(self._driver_id)
                gone = {k[len(EVICTED):] for k in attrs if k.startswith(EVICTED)} & set(self.held)
            except KeyError:   # another driver took over every lease and deleted this driver's record
                attrs, gone = {}, set(self.held)
            new = gone - self.lost
            for subject in new:
                log.warning("subject %s: its lease was taken over by driver %s (this driver looked stale); "
                            "this driver stops scheduling it", subject, attrs.get(EVICTED + subject, "another"))
                self.held.pop(subject, None)
            self.lost |= new
            return new

    def start(self) -> "SubjectLeases":
        """Beat every ``heartbeat_s`` in a background thread until :meth:`close`."""
        def run() -> None:
            while not self._stop.wait(self.heartbeat_s):
                try:
                    self.beat()
                except Exception as exc:  # noqa: BLE001 - a storage hiccup: try again at the next beat
                    log.warning("lease heartbeat failed: %s: %s", type(exc).__name__, exc)

        if self._thread is None:
            self._thread = threading.Thread(target=run, name="explorer-leases", daemon=True)
            self._thread.start()
        return self

    def release(self, subjects: Iterable[str] | None = None) -> None:
        """Release ``subjects`` (all held when None); with nothing left held, remove the driver record."""
        with self._lock:
            for subject in list(self.held if subjects is None else subjects):
                sid = self.held.pop(subject, None)
                if sid is not None:
                    try:   # by id: a generation another driver created meanwhile is never touched
                        self.storage.delete_study(sid)
                    except KeyError:     # taken over and deleted meanwhile
                        pass
            if not self.held and self._driver_id is not None:
                try:
                    self.storage.delete_study(self._driver_id)
                except KeyError:
                    pass
                self._driver_id = None

    def close(self) -> None:
        """Stop the heartbeat and release every lease."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self.release()


def shard_of(subjects: Iterable[str], shard: tuple[int, int] | None) -> list[str]:
    """The ``i``-th of ``n`` interleaved parts of ``subjects`` (sorted), for ``shard = (i, n)``; all when None."""
    ids = sorted(subjects)
    if shard is None:
        return ids
    i, n = shard
    return ids[i::n]
