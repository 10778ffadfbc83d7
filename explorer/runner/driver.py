"""Run (or resume) a study: open it, start the actors, let the scheduler run its trials, record the session.

One call of :func:`run_study` runs a study until every selected subject has its ``trials`` finished
trials. It holds the study lock, repairs a journal a killed driver left behind, reaps trials a
dead driver left RUNNING (:class:`OpenedStudy`), ships each connectome once, and hands the loop to
the :class:`~explorer.runner.scheduler.Scheduler`; :class:`_DriverRun` is the session's course, start
to ``runs.jsonl``. SIGINT and SIGTERM are deferred (:mod:`explorer.runner.interrupts`): they never
raise inside a storage write.

The library logs; the caller (``explorer run``) prints what :class:`RunResult` says.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from explorer.config import StudyConfig
from explorer.errors import StudyError
from explorer.layout import is_study_dir, optuna_storage_url
from explorer.runner.ec_stage import ec_request, needs_fit, record_ec, run_units
from explorer.runner.finisher import SubjectFinisher, finished_records
from explorer.runner.hooks import Guard, open_store, tracker_opener
from explorer.runner.inputs import bold_tr, load_study_cohort, preflight, study_inputs, subject_payload, worker_spec
from explorer.runner.interrupts import Interrupted, Interrupts
from explorer.runner.pool import ActorPool, default_actors, init_ray
from explorer.runner.progress import NullProgress
from explorer.runner.scheduler import BrokenStudy, Scheduler
from explorer.search import (
    best_summary, distributions, finished_trials, open_storage, open_subject_study, reap_interrupted, recover_journal,
    subject_counts,
)
from explorer.search.leases import SubjectLeases, shard_of
from explorer.study.frozen import frozen_text, save_frozen
from explorer.study.lock import StudyLock, setup_lock
from explorer.study.status import append_run
from explorer.tracking import TrackerThread

log = logging.getLogger(__name__)

#: seconds the MLflow queue may take to drain after Ctrl-C (the rest is left to `explorer verify --repair`)
TRACKER_DRAIN_S = 30.0


@dataclass
class RunResult:
    """What one driver session did."""

    name: str
    study_dir: str
    subjects: dict[str, dict[str, Any]] = field(default_factory=dict)   # id -> counts + best
    failed_subjects: list[str] = field(default_factory=list)          # every trial failed
    skipped_subjects: dict[str, list[str]] = field(default_factory=dict)
    already_done: bool = False       # every subject had its trials before this session
    interrupted: bool = False
    signal: str = ""                 # the signal that interrupted it
    requeued: int = 0                # in-flight trials marked "interrupted" and re-enqueued
    left_running: list[str] = field(default_factory=list)   # subjects a second signal left RUNNING
    held_elsewhere: dict[str, str] = field(default_factory=dict)   # subject -> the live driver running it
    takeovers: list[str] = field(default_factory=list)       # leases taken over from dead or stale drivers
    hook_failures: list[str] = field(default_factory=list)  # store/tracker calls that failed (logged)
    mode: str = "asynchronous"       # sampler.mode: "deterministic" (reproducible) or "asynchronous"
    trials_run: int = 0
    calls: int = 0                   # actor calls collected (trials_run / calls = mean trials per call)
    actors: int = 0
    actors_replaced: int = 0
    driver_wall_s: float = 0.0
    startup_s: float = 0.0
    simulate_s: float = 0.0
    actor_call_s: float = 0.0
    score_s: float = 0.0             # actor time scoring trials (inside actor_call_s)
    store_s: float = 0.0             # actor time writing trials' signals (inside actor_call_s)
    utilisation: float | None = None
    trials_per_min: float = 0.0
    ec: dict[str, dict[str, Any]] = field(default_factory=dict)   # subject -> its EC fit's summary (this session)
    ec_fit_s: float = 0.0            # actor time fitting ECs

    @property
    def exit_code(self) -> int:
        return 130 if self.interrupted else 0


class OpenedStudy:
    """A study as this driver opened it: its cohort and inputs checked, its store and tracker, and the
    subjects this driver runs.

    Everything that can be wrong with a study (subjects, TRs, run length, maps) raises here, before
    any actor starts. Subjects are taken in by :meth:`admit`, at most ``window`` at a time: each is
    leased (:class:`~explorer.search.leases.SubjectLeases`), its Optuna study opened and reaped of
    the trials a dead driver left RUNNING; one whose trials are all done is finished if a session
    died before finishing it, and let go. A finished subject's lease is released (:meth:`let_go`),
    so several drivers on one study share its subjects as they go.
    """

    def __init__(self, cfg: StudyConfig, study_dir: Path, only: list[str] | None,
                 shard: tuple[int, int] | None = None, window: int | None = None):
        self.cfg = cfg
        self.study_dir = study_dir
        self.target = cfg.n_trials
        self.cohort = load_study_cohort(cfg, only)
        preflight(cfg, self.cohort)
        # each subject's parameter space (data-derived values, maps, groups, FIC), sent once with its connectome
        self.spaces, self.fc_mean = study_inputs(cfg, study_dir, self.cohort)
        for sid, problems in self.cohort.skipped.items():
            log.warning("skipped subject %s: %s", sid, "; ".join(problems))
        self.guard = Guard()
        with setup_lock(study_dir):   # another driver may be creating the same databases right now
            self.storage = open_storage(optuna_storage_url(cfg, study_dir))
            self.store, self.store_url = open_store(cfg, study_dir)
        # MLflow is opened on the tracker's thread (seconds for a new store) while the driver starts Ray and
        # its actors; its calls are made there, in order, off the loop. tracker.ready() raises what opening raised
        self.tracker = TrackerThread(None, self.guard, cfg.tracking.drain_s,
                                     opener=tracker_opener(cfg, study_dir, [s.id for s in self.cohort], self.storage))
        self.finisher = SubjectFinisher(cfg, self.cohort, self.store, self.tracker, self.guard,
                                        frozen_text(cfg, study_dir))
        self.leases = SubjectLeases(self.storage, cfg.name, cfg.leases.heartbeat_s, cfg.leases.stale_s)
        self.candidates = shard_of([s.id for s in self.cohort], shard)   # this driver's part, in order
        self.window = window or subject_window(cfg)
        self.held_elsewhere: dict[str, Any] = {}     # subject -> Holder of a live driver running it
        self.studies: dict[str, Any] = {}            # admitted subjects (with trials left)
        self.counts: dict[str, Any] = {}
        self.active: set[str] = set()                # admitted and not yet finished
        self.settled: set[str] = set()               # nothing left to do here (finished, or done)
        self.ec_todo: dict[str, Any] = {}            # finished subjects whose EC is to be fitted (lease kept)
        try:
            self.admit(self.window)
        except BaseException:
            self.leases.close()
            self.tracker.close(0.0)
            raise
        self.leases.start()

    def admit(self, n: int) -> list[str]:
        """Lease and open up to ``n`` more subjects with trials left; returns them (in order).

        A subject another live driver holds is left (``held_elsewhere``) and tried again at the next
        call; one with every trial done is finished if its finishing hooks never ran, then let go.
        """
        new: list[str] = []
        log.debug("admitting up to %d subject(s)", n)
        while len(new) < n:
            pending = [sid for sid in self.candidates if sid not in self.studies and sid not in self.settled]
            if not pending:
                break
            held_before = set(self.leases.held)
            refused = self.leases.acquire(pending, limit=n - len(new))
            self.held_elsewhere = {**{k: v for k, v in self.held_elsewhere.items() if k not in self.leases.held},
                                   **refused}
            got = [sid for sid in pending if sid in self.leases.held and sid not in held_before]
            if not got:
                break
            # MLflow runs a dead driver left RUNNING for these subjects end as KILLED
            self.tracker.end_stale_runs(subjects=got)
            for sid in got:
                if self._open(sid):
                    new.append(sid)
        return new

    def _open(self, sid: str) -> bool:
        """Open the leased subject ``sid``: True when it has trials left, else it is finished (if need be) and let go."""
        s = self.cohort[sid]
        study = open_subject_study(self.storage, self.cfg, sid)
        # RUNNING trials of a subject this driver holds the lease of were left by a dead driver
        reaped = reap_interrupted(study, on_reaped=self.forget_signals(sid), names=distributions(self.cfg))
        counts = subject_counts(study)
        unfinished = counts.done >= self.target and finished_trials(study) != counts.done
        if reaped or unfinished:
            # a driver died here: the trials it told Optuna but had not yet logged get their MLflow runs
            # (the tracker skips those it has)
            self.tracker.log_trials(sid, finished_records(study, list(self.cfg.objectives), sid))
        if s.session is not None and "session" not in study.user_attrs:
            # one twin per (participant, session): keep them apart, and pairable, in Optuna and MLflow
            study.set_user_attr("participant", s.participant)
            study.set_user_attr("session", s.session)
            self.tracker.tag_subject(sid, {"participant": s.participant, "session": s.session})
        self.studies[sid] = study
        self.counts[sid] = counts
        if counts.done < self.target:
            self.active.add(sid)
            return True
        if unfinished:   # a session died before finishing it
            self.finisher.finish(sid, study)
        self.let_go(sid)
        return False

    def let_go(self, sid: str) -> None:
        """``sid``'s search needs nothing more from this driver: release its lease, unless its EC (``ec``
        section) is still to be fitted, which this driver then does, holding the lease until it is stored."""
        self.active.discard(sid)
        self.settled.add(sid)
        if self.cfg.ec is not None and sid not in self.ec_todo:
            req = self.guard(f"the EC request of {sid}", ec_request, self.cfg, self.cohort[sid], self.spaces[sid],
                             self.studies[sid])
            if req is not None and needs_fit(self.store, req):
                self.ec_todo[sid] = req
                return
        self.release(sid)

    def release(self, sid: str) -> None:
        """Release ``sid``'s lease."""
        self.ec_todo.pop(sid, None)
        # at once, not behind MLflow calls (which may wait for a server): a driver that takes the subject
        # before its summary is logged only finishes it again
        self.leases.release([sid])

    def room(self) -> int:
        """How many more subjects this driver may take in now (its window less those it runs)."""
        return self.window - len(self.active - self.leases.lost)

    def ship(self, sid: str, pool: Any) -> None:
        """Put ``sid``'s arrays in the object store for the actors, and its empirical data in the signals store."""
        s = self.cohort[sid]
        if self.store is not None:
            self.guard(f"storing empirical data of {sid}", self.store.write_empirical, sid, s.bold, s.fc, s.tr_s,
                       list(s.labels))
        pool.put_subject(sid, subject_payload(self.cfg, s, self.spaces[sid], self.fc_mean))

    def waiting(self) -> int:
        """How many of this driver's subjects it has not taken in yet (not opened, nor settled, nor held by
        another driver)."""
        return sum(1 for sid in self.candidates
                   if sid not in self.studies and sid not in self.settled and sid not in self.held_elsewhere)

    def lost(self, sid: str) -> bool:
        """Whether another driver took ``sid``'s lease over (this one looked stale): stop scheduling it."""
        return sid in self.leases.lost

    def refusal(self) -> str | None:
        """Why this driver has nothing to do while other drivers hold subjects (None: it has work, or none is held)."""
        if not self.held_elsewhere or self.active:
            return None
        now = time.time()
        holders = "; ".join(f"{sid}: {h.describe(now)}" for sid, h in sorted(self.held_elsewhere.items()))
        return (f"study {self.cfg.name!r}: every subject this driver could run is already being run by another "
                f"driver ({holders}). Wait for it (`explorer status {self.cfg.name}`), stop it, or run other "
                f"subjects (`--shard`); a lease frees itself when its driver stops or misses heartbeats for "
                f"leases.stale_s = {self.cfg.leases.stale_s:g} s")

    def forget_signals(self, sid: str):
        """A callback deleting the partial signals of a reaped trial of ``sid``."""
        def forget(trial) -> None:
            if self.store is not None:
                self.guard(f"deleting partial signals of {sid} trial {trial.number}", self.store.delete_trial,
                           sid, trial.number)
        return forget

    def todo(self) -> list[str]:
        """Admitted subjects with trials left, in order."""
        return [sid for sid in self.candidates if sid in self.active]


def subject_window(cfg: StudyConfig, actors: int | None = None) -> int:
    """How many subjects a driver holds at a time: ``leases.window``, else max(8, 2 x actors), enough to
    feed every actor batches of different subjects; the rest stay free for other drivers."""
    if cfg.leases.window:
        return cfg.leases.window
    return max(8, 2 * int(actors or cfg.ray.actors or os.cpu_count() or 1))


def run_study(cfg: StudyConfig, study_dir: str | Path | None = None, only_subjects: list[str] | None = None,
              actors: int | None = None, progress: Any = None, shard: tuple[int, int] | None = None) -> RunResult:
    """Run or resume ``cfg`` until each subject this driver leases has ``cfg.n_trials`` finished trials.

    ``only_subjects`` restricts this session to some subjects (``explorer extend --subjects``);
    ``shard`` = (i, n) to the i-th of n interleaved parts of them (``explorer run --shard i/n``).
    Several drivers may run one study at once, on one host or many: each leases the subjects it
    runs in the Optuna storage (:mod:`explorer.search.leases`) and leaves those another live driver
    holds; a driver that finds every subject with work left held elsewhere is refused (StudyError
    naming the holders). ``actors`` overrides ``ray.actors``. ``progress``: a
    :class:`~explorer.runner.progress.Progress` to show (None: nothing is shown).

    Returns a :class:`RunResult`; ``interrupted`` is set when Ctrl-C (or SIGTERM) stopped it, after
    in-flight trials were marked and re-enqueued. Raises
    :class:`~explorer.runner.scheduler.BrokenStudy` when the first batch of every subject failed with
    the same error (those trials do not count). A journal lock or torn record left by a killed driver
    is repaired first (with a log line), when no other driver of this host is running the study.
    """
    study_dir = Path(study_dir or cfg.study_dir)
    with Interrupts() as stop, StudyLock(study_dir, cfg.name, shared=True) as lock:
        if lock.alone:
            recover_journal(optuna_storage_url(cfg, study_dir))
        if not is_study_dir(study_dir):
            save_frozen(cfg, study_dir)
        return _DriverRun(cfg, study_dir, only_subjects, actors, progress or NullProgress(), stop, shard).run()


class _DriverRun:
    """One run of the driver (a session of the study): open the study (:class:`OpenedStudy`), run its
    scheduler, summarise in a :class:`RunResult`, append it to ``runs.jsonl``."""

    def __init__(self, cfg: StudyConfig, study_dir: Path, only: list[str] | None, actors: int | None,
                 progress: Any, stop: Interrupts, shard: tuple[int, int] | None = None):
        self.cfg = cfg
        self.shard = shard
        self.study_dir = study_dir
        self.only = only
        self.actors = actors
        self.progress = progress
        self.stop = stop
        self.target = cfg.n_trials
        self.result = RunResult(name=cfg.name, study_dir=str(study_dir), mode=cfg.sampler.mode)
        self.t_begin = time.monotonic()

    def run(self) -> RunResult:
        opened = OpenedStudy(self.cfg, self.study_dir, self.only, self.shard,
                               subject_window(self.cfg, self.actors))
        try:
            why = opened.refusal()
            if why:
                raise StudyError(why)
            return self._run(opened)
        finally:
            opened.tracker.close(TRACKER_DRAIN_S if self.stop.requested else None)
            opened.leases.close()

    def _run(self, opened: OpenedStudy) -> RunResult:
        self.result.skipped_subjects = dict(opened.cohort.skipped)
        for sid, h in sorted(opened.held_elsewhere.items()):
            log.info("subject %s is run by another driver (%s); this driver runs the others", sid, h.describe())
        todo = opened.todo()
        if not todo and not opened.ec_todo:
            opened.tracker.ready()
            self.result.already_done = True
            opened.tracker.close()
            return self._summarise(opened)
        if self.stop.requested:
            self.result.interrupted, self.result.signal = True, self.stop.name or ""
            opened.tracker.close(TRACKER_DRAIN_S)
            return self._summarise(opened)
        own_ray = init_ray(self.cfg, self.actors)
        self.stop.install()  # ray.init sets a SIGTERM handler of its own (sys.exit): take it back
        try:
            self._loop(opened, todo)
        finally:
            if own_ray:
                import ray

                ray.shutdown()
        return self.result

    def _loop(self, opened: OpenedStudy, todo: list[str]) -> None:
        cfg, result = self.cfg, self.result
        n = default_actors(cfg, self.actors)
        pool = ActorPool(worker_spec(cfg, bold_tr(cfg, opened.cohort.subjects[0]), opened.store_url), n, cfg.name)
        result.actors = n
        if not cfg.leases.window:   # the cluster's actors are known now: enough subjects to feed them all
            opened.window = max(opened.window, subject_window(cfg, n))
        scheduler = Scheduler(opened, pool, todo, self.progress, self.stop, result)
        t0 = t1 = None
        broken: BrokenStudy | None = None
        try:
            pool.wait_ready(should_stop=lambda: self.stop.requested)
            opened.tracker.ready()   # MLflow opened meanwhile (a failure to open it stops the session here)
            t0 = time.monotonic()
            result.startup_s = t0 - self.t_begin
            self.progress.started = time.monotonic()
            if todo:
                with self.progress:
                    scheduler.run()
            self._fit_ec(opened, pool)
            t1 = time.monotonic()
        except (KeyboardInterrupt, Interrupted):
            t1 = time.monotonic()
            result.interrupted, result.signal = True, self.stop.name or "KeyboardInterrupt"
            result.requeued, result.left_running = scheduler.interrupt()
        except BrokenStudy as exc:
            t1 = time.monotonic()
            broken = exc
            scheduler.abort_inflight()   # not re-enqueued: their parameters are the broken config's
            scheduler.interrupt()
        except BaseException:
            scheduler.interrupt()
            raise
        finally:
            pool.shutdown()
        # what MLflow still has queued is part of the session's wall time (after a signal, at most TRACKER_DRAIN_S)
        opened.tracker.close(TRACKER_DRAIN_S if result.interrupted else None)   # what it leaves: hook failures
        if t1 is not None and not result.interrupted:
            t1 = time.monotonic()
        result.calls = scheduler.calls
        wall = max(t1 - t0, 1e-9) if t0 is not None and t1 is not None else 0.0
        result.driver_wall_s = wall
        result.actors_replaced = pool.replaced
        if wall > 0:
            result.utilisation = result.simulate_s / (n * wall)
            result.trials_per_min = result.trials_run / (wall / 60.0)
        self._summarise(opened)
        self._append_run(scheduler.todo)   # the subjects admitted later included
        if broken is not None:
            raise broken

    def _fit_ec(self, opened: OpenedStudy, pool: ActorPool) -> None:
        """The EC stage for the subjects whose search is done here and whose EC is not stored yet."""
        if not opened.ec_todo:
            return
        reqs = list(opened.ec_todo.values())
        log.info("fitting the EC of %d subject(s) on %d actor(s)", len(reqs), len(pool.slots))

        def done(req: Any, result: dict[str, Any]) -> None:
            record_ec(opened.store, opened.tracker, opened.guard, req, result)
            self.result.ec[req.subject] = dict(result["summary"])
            opened.release(req.subject)

        self.result.ec_fit_s += run_units(pool, reqs, done, self.stop, self.cfg.ray.max_retries)
        self.stop.check()

    def _summarise(self, opened: OpenedStudy) -> RunResult:
        for sid, study in opened.studies.items():
            c = subject_counts(study)
            self.result.subjects[sid] = {**asdict(c), "target": self.target,
                                         "best": best_summary(study, self.cfg.objectives)}
            if c.done >= self.target and c.complete == 0 and sid not in self.result.failed_subjects:
                self.result.failed_subjects.append(sid)
        for sid in self.result.failed_subjects:
            log.warning("subject %s: every trial failed (%s); the other subjects continued", sid,
                        self.result.subjects[sid]["reasons"])
        self.result.hook_failures = list(opened.guard.failures)
        now = time.time()   # who still held what when this driver last looked, and what it took over
        self.result.held_elsewhere = {sid: h.describe(now) for sid, h in opened.held_elsewhere.items()}
        self.result.takeovers = list(opened.leases.takeovers)
        return self.result

    def _append_run(self, todo: list[str]) -> None:
        r = self.result
        append_run(self.study_dir, {
            "ended": time.strftime("%Y-%m-%dT%H:%M:%S"), "mode": r.mode, "actors": r.actors, "trials": r.trials_run,
            "interrupted": r.interrupted, "driver_wall_s": round(r.driver_wall_s, 3),
            "startup_s": round(r.startup_s, 3), "simulate_s": round(r.simulate_s, 3),
            "actor_call_s": round(r.actor_call_s, 3), "score_s": round(r.score_s, 3),
            "store_s": round(r.store_s, 3), "utilisation": r.utilisation,
            "trials_per_min": round(r.trials_per_min, 2), "actors_replaced": r.actors_replaced,
            "subjects": sorted(todo), "batch_size": self.cfg.ray.batch_size, "calls": r.calls,
            "trials_per_call": round(r.trials_run / r.calls, 2) if r.calls else None,
            "duration_s": self.cfg.simulation.duration_s, "hook_failures": r.hook_failures,
            "shard": f"{self.shard[0]}/{self.shard[1]}" if self.shard else None,
            "held_elsewhere": sorted(r.held_elsewhere), "takeovers": r.takeovers})
