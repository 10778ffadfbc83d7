"""The driver loop: ask Optuna for trials across subjects, keep every actor busy, tell results.

One call of :func:`run_study` runs (or resumes) a study until every selected subject has its
``trials`` finished trials. It holds the study lock, reaps trials a dead driver left RUNNING,
ships each connectome once, keeps ``IN_FLIGHT_PER_ACTOR`` batches queued on every actor,
collects with ``ray.wait``, tells Optuna COMPLETE/FAIL (reason in user attr ``reason``),
logs each result batch to MLflow, and packs each subject's signals when it is done.

SIGINT and SIGTERM are deferred (:mod:`explorer.runner.interrupts`): they never raise inside a
storage write. The loop looks at the flag between steps, records the results that are already
back, then marks the in-flight trials FAIL "interrupted" and re-enqueues them.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from explorer.config import StudyConfig, optuna_storage_url, ray_address
from explorer.errors import StudyError
from explorer.records import TrialRecord
from explorer.runner.actor import WorkerSpec
from explorer.runner.hooks import guarded, open_store, open_tracker
from explorer.runner.interrupts import Interrupted, Interrupts
from explorer.runner.lock import StudyLock

log = logging.getLogger(__name__)

IN_FLIGHT_PER_ACTOR = 2
RUNS_FILE = "runs.jsonl"
ACTOR_DIED = "actor died"


@dataclass
class RunResult:
    """What one driver session did."""

    name: str
    study_dir: str
    subjects: dict[str, dict[str, Any]] = field(default_factory=dict)   # id -> counts + best
    failed_subjects: list[str] = field(default_factory=list)          # every trial failed
    skipped_subjects: dict[str, list[str]] = field(default_factory=dict)
    interrupted: bool = False
    trials_run: int = 0
    actors: int = 0
    actors_replaced: int = 0
    driver_wall_s: float = 0.0
    startup_s: float = 0.0
    simulate_s: float = 0.0
    actor_call_s: float = 0.0
    utilisation: float | None = None
    trials_per_min: float = 0.0

    @property
    def exit_code(self) -> int:
        return 130 if self.interrupted else 0


@dataclass
class _Batch:
    slot: Any
    subject: str
    tasks: list[dict[str, Any]]
    submitted: float = 0.0      # epoch seconds


def load_study_cohort(cfg: StudyConfig, only: list[str] | None = None):
    """The cohort of the config, restricted to ``cohort.subjects`` and then to ``only``."""
    from explorer.cohort import CohortOptions, load_cohort
    from explorer.errors import ConfigError

    opts = CohortOptions.from_dict(cfg.cohort.model_dump(mode="python", exclude={"source", "subjects"}))
    cohort = load_cohort(cfg.cohort.source, opts)
    wanted = cfg.cohort.subjects
    if only:
        wanted = list(only)
    if wanted is not None:
        missing = [s for s in wanted if s not in cohort and s not in cohort.skipped]
        if missing:
            raise ConfigError(f"field 'cohort.subjects': {missing} not in cohort {cfg.cohort.source!r}; "
                              f"available: {cohort.ids}")
        cohort = cohort.subset([s for s in wanted if s in cohort])
    if not len(cohort):
        raise StudyError(f"study {cfg.name!r}: no subject to fit (skipped: {cohort.skipped})")
    for s in cohort:
        if s.fc is None:
            raise StudyError(f"subject {s.id}: no empirical FC or BOLD to fit against")
        needs_fcd = [o for o in cfg.objectives if "fcd_ks" in o]
        if needs_fcd and s.fcd is None:
            raise StudyError(f"subject {s.id}: objective {needs_fcd[0]} needs empirical BOLD at least "
                             f"{cfg.cohort.features.fcd_window} TRs long; use objective fc_r")
    return cohort


def bold_tr(cfg: StudyConfig, subject) -> float:
    """The simulated BOLD TR (s) of ``subject``: ``simulation.bold_tr_s``, else the subject's own TR."""
    from explorer.config import check_tr

    tr = cfg.simulation.bold_tr_s if cfg.simulation.bold_tr_s is not None else subject.tr_s
    if subject.tr_s is not None and tr is not None and abs(float(tr) - float(subject.tr_s)) > 1e-9:
        from explorer.errors import ConfigError

        raise ConfigError(f"field 'simulation.bold_tr_s': {tr:g} s, but subject {subject.id}'s BOLD has TR "
                          f"{subject.tr_s:g} s: FC and FCD would compare unlike samples; set bold_tr_s to null "
                          "(the cohort's TR)")
    if tr is None:
        raise StudyError(f"subject {subject.id}: no BOLD TR to simulate at (FC only); give cohort.tr_s or "
                         "simulation.bold_tr_s")
    check_tr(cfg, float(tr), f"subject {subject.id}")
    return float(tr)


def study_inputs(cfg: StudyConfig, study_dir: Path, subjects) -> tuple[dict[str, Any], Any]:
    """(each subject's SubjectSpace, the study's cohort-mean FC or None): what trials are made of.

    Raises StudyError when an objective needs the cohort-mean FC and there is none, ConfigError
    for a bad map or group file.
    """
    from explorer.search import cohort_reference, subject_spaces

    fc_mean = cohort_reference(study_dir, list(subjects))
    need = [o for o in cfg.objectives if "fc_r_residual" in o]
    if need and fc_mean is None:
        raise StudyError(f"objective {need[0]} compares each subject with the cohort mean, which needs at least "
                         "2 subjects with BOLD or FC; use objective fc_r")
    return subject_spaces(cfg, list(subjects), fc_mean), fc_mean


def preflight(cfg: StudyConfig, cohort) -> None:
    """Fail before any actor starts if a TR does not fit dt, or simulated BOLD would be too short to score."""
    import numpy as np

    from explorer.errors import SimulationError
    from explorer.features import FeatureOptions, fit_scores

    trs = {s.id: bold_tr(cfg, s) for s in cohort}
    s = cohort.subjects[0]
    n_tr = int(cfg.simulation.duration_s / trs[s.id])
    fake = np.random.default_rng(0).standard_normal((max(n_tr, 1), s.n_regions))
    feats = cfg.cohort.features.model_dump(mode="python")
    try:
        fit_scores(fake, trs[s.id], s.fc, s.fcd, FeatureOptions(**feats))
    except SimulationError as exc:
        raise StudyError(f"field 'simulation.duration_s' ({cfg.simulation.duration_s} s): {exc}") from None


def _default_actors(cfg: StudyConfig, override: int | None, local: bool) -> int:
    if override:
        return int(override)
    if cfg.ray.actors:
        return int(cfg.ray.actors)
    if local:
        return max(1, os.cpu_count() or 1)
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def _init_ray(cfg: StudyConfig, actors: int | None) -> bool:
    """Start or join Ray unless the caller already did; returns whether we must shut it down."""
    import ray

    if ray.is_initialized():
        return False
    address = ray_address(cfg)
    kw: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, configure_logging=True,
                              logging_level=logging.WARNING)
    if address is None:
        kw["num_cpus"] = _default_actors(cfg, actors, local=True)
    else:
        kw["address"] = address
    ray.init(**kw)
    return True


def subject_payload(cfg: StudyConfig, subject, space, fc_mean) -> dict[str, Any]:
    """What an actor keeps of a subject: connectome, empirical features, its parameter space, its TR."""
    return {"weights": subject.weights, "lengths": subject.lengths, "labels": list(subject.labels),
            "fc": subject.fc, "fcd": subject.fcd, "space": space, "fc_mean": fc_mean,
            "bold_tr_s": bold_tr(cfg, subject)}


def worker_spec(cfg: StudyConfig, tr_s: float, store_url: str | None, repeats: int | None = None) -> WorkerSpec:
    """The actors' settings for ``cfg``; ``tr_s`` is a default BOLD TR (payloads carry each subject's)."""
    return WorkerSpec(model=cfg.model, simulate_kwargs=cfg.simulation.simulate_kwargs(tr_s),
                      features=cfg.cohort.features.model_dump(mode="python"),
                      repeats=cfg.simulation.repeats if repeats is None else repeats,
                      objectives=cfg.objectives, store_url=store_url,
                      fic_target_hz=cfg.params.fic_target_hz if cfg.params.fic else None)


def _score_for_progress(rec: TrialRecord, objective: str) -> float | None:
    from explorer.features import objective_value

    v = objective_value(rec.scores, objective) if rec.scores else math.nan
    return v if math.isfinite(v) else None


def run_study(cfg: StudyConfig, study_dir: str | Path | None = None, only_subjects: list[str] | None = None,
              actors: int | None = None, console: Any = None, live: bool | None = None) -> RunResult:
    """Run or resume ``cfg`` until each selected subject has ``cfg.n_trials`` finished trials.

    ``only_subjects`` restricts this session to some subjects (``explorer extend --subjects``).
    ``actors`` overrides ``ray.actors``. Returns a :class:`RunResult`; ``interrupted`` is set
    when Ctrl-C (or SIGTERM) stopped it, after in-flight trials were marked and re-enqueued.
    A journal lock or torn record left by a killed driver is repaired first (with a log line).
    """
    from explorer.search import recover_journal

    study_dir = Path(study_dir or cfg.study_dir)
    with Interrupts() as stop, StudyLock(study_dir, cfg.name):
        recover_journal(optuna_storage_url(cfg, study_dir))
        if not (study_dir / "study.yaml").is_file():
            from explorer.config import save_frozen

            save_frozen(cfg, study_dir)
        return _Driver(cfg, study_dir, only_subjects, actors, console, live, stop).run()


class _Driver:
    def __init__(self, cfg: StudyConfig, study_dir: Path, only: list[str] | None, actors: int | None,
                 console: Any, live: bool | None, stop: Interrupts | None = None):
        from rich.console import Console

        self.cfg = cfg
        self.study_dir = study_dir
        self.only = only
        self.actors_override = actors
        self.console = console or Console(stderr=True)
        self.live = live
        self.target = cfg.n_trials
        self.result = RunResult(name=cfg.name, study_dir=str(study_dir))
        self.stop = stop or Interrupts()
        self.progress: Any = None
        self.pool: Any = None

    # -- set-up -------------------------------------------------------------------------
    def _open(self) -> None:
        from explorer.search import open_storage, open_subject_study, reap_interrupted, subject_counts

        cfg = self.cfg
        self.cohort = load_study_cohort(cfg, self.only)
        preflight(cfg, self.cohort)
        # each subject's parameter space (data-derived values, maps, groups, FIC): checked here,
        # before any actor starts, and sent once with the subject's connectome
        self.spaces, self.fc_mean = study_inputs(cfg, self.study_dir, self.cohort)
        self.result.skipped_subjects = dict(self.cohort.skipped)
        for sid, problems in self.cohort.skipped.items():
            self.console.print(f"[yellow]skipped subject {sid}[/]: {'; '.join(problems)}")
        self.storage = open_storage(optuna_storage_url(cfg, self.study_dir))
        self.store, self.store_url = open_store(cfg, self.study_dir)
        self.tracker = open_tracker(cfg, self.study_dir)
        guarded("ending stale MLflow runs", self.tracker.end_stale_runs)
        self.studies = {}
        self.counts = {}
        for s in self.cohort:
            study = open_subject_study(self.storage, cfg, s.id)
            reap_interrupted(study, on_reaped=self._forget_signals(s.id))
            self.studies[s.id] = study
            self.counts[s.id] = subject_counts(study)
            if s.session is not None and "session" not in study.user_attrs:
                # one twin per (participant, session): keep them apart, and pairable, in Optuna and MLflow
                study.set_user_attr("participant", s.participant)
                study.set_user_attr("session", s.session)
                guarded(f"MLflow tags of {s.id}", self.tracker.tag_subject, s.id,
                        {"participant": s.participant, "session": s.session})
        self.frozen_text = (self.study_dir / "study.yaml").read_text() if (self.study_dir / "study.yaml").is_file() \
            else cfg.to_yaml()

    def _forget_signals(self, sid: str):
        def forget(trial) -> None:
            if self.store is not None:
                guarded(f"deleting partial signals of {sid} trial {trial.number}", self.store.delete_trial,
                        sid, trial.number)
        return forget

    # -- main -----------------------------------------------------------------------------
    def run(self) -> RunResult:
        from explorer.search import best_summary, finished_trials

        t_begin = time.monotonic()
        self._open()
        from explorer.runner.progress import Progress

        self.progress = Progress(self.cfg.name, self.cfg.objectives, self.cfg.directions, self.console, self.live)
        for sid, study in self.studies.items():
            c = self.counts[sid]
            best = best_summary(study, self.cfg.objectives).get("scores", {}).get(self.cfg.objectives[0])
            self.progress.set_subject(sid, self.target, c.complete, c.failed, best)
        self.done = {sid: c.done for sid, c in self.counts.items()}
        self.inflight_n = {sid: 0 for sid in self.studies}
        todo = [sid for sid in self.studies if self.done[sid] < self.target]
        # subjects finished by an earlier session that died before its finishing hooks
        for sid in self.studies:
            if sid not in todo and finished_trials(self.studies[sid]) != self.done[sid]:
                self._finish_subject(sid)
        if not todo:
            self.console.print(f"study {self.cfg.name}: every subject already has {self.target} trials "
                               f"(use `explorer extend {self.cfg.name} --trials N` for more)")
            self._summarise(time.monotonic() - t_begin)
            return self.result
        if self.store is not None:
            for s in self.cohort:
                if s.id in todo:
                    guarded(f"storing empirical data of {s.id}", self.store.write_empirical, s.id, s.bold, s.fc,
                            s.tr_s, list(s.labels))
        if self.stop.requested:
            return self._stopped_before_start(t_begin)
        own_ray = _init_ray(self.cfg, self.actors_override)
        self.stop.install()  # ray.init sets a SIGTERM handler of its own (sys.exit): take it back
        try:
            self._loop(todo, t_begin)
        finally:
            if own_ray:
                import ray

                ray.shutdown()
        return self.result

    def _stopped_before_start(self, t_begin: float) -> RunResult:
        self.result.interrupted = True
        self.console.print(f"\n[bold yellow]interrupted[/] ({self.stop.name}) before any trial started; nothing "
                           f"to clean up. Resume with: [bold]explorer resume {self.cfg.name}[/]")
        self._summarise(time.monotonic() - t_begin)
        return self.result

    def _loop(self, todo: list[str], t_begin: float) -> None:
        import ray

        cfg = self.cfg
        n = _default_actors(cfg, self.actors_override, local=ray_address(cfg) is None)
        spec = worker_spec(cfg, bold_tr(cfg, self.cohort.subjects[0]), self.store_url)
        from explorer.runner.pool import ActorPool

        self.pool = pool = ActorPool(spec, n, cfg.name)
        self.result.actors = n
        self.inflight: dict[Any, _Batch] = {}
        self.retry: deque[tuple[str, list[dict[str, Any]]]] = deque()
        self.trials: dict[tuple[str, int], Any] = {}
        self.rr = 0
        self.todo = todo
        interrupted = False
        t0 = t1 = None
        try:
            for s in self.cohort:
                if s.id in todo:
                    pool.put_subject(s.id, subject_payload(cfg, s, self.spaces[s.id], self.fc_mean))
            pool.wait_ready(should_stop=lambda: self.stop.requested)
            t0 = time.monotonic()
            self.result.startup_s = t0 - t_begin
            self.progress.started = time.monotonic()
            with self.progress:
                self._fill()
                while self.inflight and not self.stop.requested:
                    ready, _ = ray.wait(list(self.inflight), num_returns=1, timeout=0.5)
                    if ready:
                        ready, _ = ray.wait(list(self.inflight), num_returns=len(self.inflight), timeout=0)
                        for ref in ready:   # results already back are recorded even after a signal
                            if self.stop.forced:
                                break
                            self._collect(ref)
                        self._fill()
                    self.progress.refresh()
            self.stop.check()
            t1 = time.monotonic()
        except (KeyboardInterrupt, Interrupted):
            interrupted = True
            t1 = time.monotonic()
            self._interrupt()
        except BaseException:
            self._interrupt(quiet=True)
            raise
        finally:
            pool.shutdown()
        self.result.interrupted = interrupted
        wall = max(t1 - t0, 1e-9) if t0 is not None and t1 is not None else 0.0
        self.result.driver_wall_s = wall
        self.result.actors_replaced = pool.replaced
        if wall > 0:
            self.result.utilisation = self.result.simulate_s / (n * wall)
            self.result.trials_per_min = self.result.trials_run / (wall / 60.0)
        self._summarise(time.monotonic() - t_begin)
        self._append_run()

    # -- scheduling -----------------------------------------------------------------------
    def _remaining(self, sid: str) -> int:
        return self.target - self.done[sid] - self.inflight_n[sid]

    def _next_subject(self) -> str | None:
        for i in range(len(self.todo)):
            sid = self.todo[(self.rr + i) % len(self.todo)]
            if self._remaining(sid) > 0:
                self.rr = (self.rr + i + 1) % len(self.todo)
                return sid
        return None

    def _fill(self) -> None:
        """Queue batches until every live actor has IN_FLIGHT_PER_ACTOR of them (or nothing is left)."""
        from explorer.search import ask_params, trial_seed

        cfg = self.cfg
        for _ in range(IN_FLIGHT_PER_ACTOR):
            for slot in sorted(self.pool.slots, key=lambda s: s.inflight):
                if self.stop.requested:
                    return
                if slot.inflight >= IN_FLIGHT_PER_ACTOR:
                    continue
                if self.retry:
                    sid, tasks = self.retry.popleft()
                else:
                    sid = self._next_subject()
                    if sid is None:
                        return
                    tasks, refused = [], []
                    for _k in range(min(cfg.ray.batch_size, self._remaining(sid))):
                        trial, free = ask_params(self.studies[sid], cfg)
                        self.trials[(sid, trial.number)] = trial
                        task = {"number": trial.number, "free": free,
                                "seed": trial_seed(cfg.sampler.seed, sid, trial.number), "attempt": 0}
                        why = self.spaces[sid].refusal(free)
                        (refused if why else tasks).append((task, why))
                    self.inflight_n[sid] += len(tasks) + len(refused)
                    if refused:   # outside the hard limits: told FAIL at once, never simulated
                        now = time.time()
                        self._tell(sid, [self._fail_record(sid, t, why, now) for t, why in refused])
                    tasks = [t for t, _ in tasks]
                    if not tasks:
                        continue
                submitted = time.time()
                ref = self.pool.submit(slot, sid, tasks)
                self.inflight[ref] = _Batch(slot, sid, tasks, submitted)

    def _collect(self, ref: Any) -> None:
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        batch = self.inflight.pop(ref)
        batch.slot.inflight -= 1
        sid = batch.subject
        try:
            out = ray.get(ref)  # ready: does not block
        except (RayActorError, ray.exceptions.WorkerCrashedError, ray.exceptions.OutOfMemoryError,
                ray.exceptions.ActorUnavailableError) as exc:
            self.pool.replace(batch.slot)
            again = [dict(t, attempt=t["attempt"] + 1) for t in batch.tasks]
            if again[0]["attempt"] <= self.cfg.ray.max_retries:
                log.warning("retrying %d trial(s) of %s after %s (attempt %d)", len(again), sid,
                            type(exc).__name__, again[0]["attempt"])
                self.retry.append((sid, again))
                return
            records = [self._fail_record(sid, t, ACTOR_DIED, batch.submitted) for t in batch.tasks]
            self._tell(sid, records)
            return
        except RayTaskError as exc:
            cause = exc.cause if getattr(exc, "cause", None) is not None else exc
            records = [self._fail_record(sid, t, f"error: {type(cause).__name__}: {cause}"[:500], batch.submitted)
                       for t in batch.tasks]
            self._tell(sid, records)
            return
        self.result.simulate_s += float(out["simulate_s"])
        self.result.actor_call_s += float(out["call_s"])
        self._tell(sid, [TrialRecord(**r) for r in out["records"]])

    def _fail_record(self, sid: str, task: dict[str, Any], reason: str, submitted: float = 0.0) -> TrialRecord:
        """A trial the actor never returned: no actor times; started/ended are the driver's submit/collect."""
        return TrialRecord(subject=sid, number=task["number"], params=dict(task["free"]), seed=task["seed"],
                           state="FAIL", reason=reason, attempt=task["attempt"], started_at=submitted,
                           ended_at=time.time() if submitted else 0.0)

    def _tell(self, sid: str, records: list[TrialRecord]) -> None:
        from optuna.trial import TrialState

        from explorer.features import objective_value
        from explorer.search import set_trial_user_attrs

        study = self.studies[sid]
        for rec in records:
            trial = self.trials.pop((sid, rec.number))
            attrs = {"seed": rec.seed, "sim_seconds": rec.sim_seconds, "wall_seconds": rec.wall_seconds,
                     "simulate_wall_seconds": rec.simulate_wall_seconds, "score_wall_seconds": rec.score_wall_seconds,
                     "store_wall_seconds": rec.store_wall_seconds, "started_at": rec.started_at,
                     "ended_at": rec.ended_at, "actor": rec.actor, "node": rec.node, "signals": rec.signals,
                     "attempt": rec.attempt, "scores": {k: v for k, v in rec.scores.items() if math.isfinite(v)}}
            if rec.state == "FAIL":
                attrs["reason"] = rec.reason
            set_trial_user_attrs(study, trial, attrs)
            if rec.state == "COMPLETE":
                frozen = study.tell(trial, [objective_value(rec.scores, o) for o in self.cfg.objectives])
            else:
                frozen = study.tell(trial, state=TrialState.FAIL)
            # the MLflow child run spans the Optuna trial exactly (ask -> tell)
            rec.asked_at = frozen.datetime_start.timestamp() if frozen.datetime_start else 0.0
            rec.told_at = frozen.datetime_complete.timestamp() if frozen.datetime_complete else 0.0
            self.inflight_n[sid] -= 1
            self.done[sid] += 1
            self.result.trials_run += 1
            self.progress.trial(sid, rec.state, _score_for_progress(rec, self.cfg.objectives[0]))
        guarded(f"MLflow logging of {sid}", self.tracker.log_trials, sid, records)
        if self.done[sid] >= self.target and self.inflight_n[sid] == 0:
            self._finish_subject(sid)

    def _finish_subject(self, sid: str) -> None:
        """Subject done: best-k pruning and packing of its signals, MLflow parent summary."""
        from explorer.search import FINISHED_ATTR, best_summary, complete_trials, subject_counts

        study = self.studies[sid]
        best = best_summary(study, self.cfg.objectives)
        counts = subject_counts(study)
        if self.store is not None:
            if self.cfg.store.mode == "best" and best:
                obj = self.cfg.objectives[0]
                guarded(f"keeping the best {self.cfg.store.best_k} signals of {sid}", self.store.keep_best, sid,
                        self.cfg.store.best_k, obj, self.cfg.directions[0] == "maximize", (best["number"],))
            guarded(f"packing the signals of {sid}", self.store.pack, sid)
        if best:
            from explorer.runner.hooks import subject_summary_arrays

            arrays = guarded(f"figure data of {sid}", subject_summary_arrays, self.store, self.cohort[sid],
                             best["number"], self.cfg.cohort.features.model_dump(mode="python"),
                             bold_tr(self.cfg, self.cohort[sid])) or {}
            cfg = self.cfg
            guarded(f"MLflow summary of {sid}", self.tracker.finish_subject, sid, best["params"], best["scores"],
                    {}, self.frozen_text, objective=cfg.objectives[0], maximise=cfg.directions[0] == "maximize",
                    best_trial=best["number"], model=cfg.model, fixed_params=dict(cfg.params.fixed),
                    objectives=list(cfg.objectives), directions=list(cfg.directions),
                    history=complete_trials(study), **arrays)
        study.set_user_attr(FINISHED_ATTR, counts.done)
        note = ""
        if counts.complete == 0:
            self.result.failed_subjects.append(sid)
            note = f"[every trial failed: {counts.reasons}]"
        if self.progress is not None:
            self.progress.finished(sid, note)

    # -- stopping -------------------------------------------------------------------------
    def _interrupt(self, quiet: bool = False) -> None:
        """Ctrl-C: stop actors, mark in-flight trials FAIL "interrupted", re-enqueue their params.

        Signals are still deferred here. A second one (``stop.forced``) ends the clean-up at the
        next subject boundary, between storage writes; what is left RUNNING is reaped on resume.
        """
        from explorer.search import reap_interrupted

        self.pool.shutdown()
        # Every RUNNING trial of these studies is ours: the study lock keeps other drivers out.
        # Reaping them all (not only those in self.trials) also catches a trial that Optuna had
        # created when Ctrl-C arrived but that the driver had not yet recorded.
        n, left = 0, []
        for sid, study in self.studies.items():
            if self.stop.forced:
                left.append(sid)
                continue
            n += len(reap_interrupted(study, on_reaped=self._forget_signals(sid)))
        self.trials.clear()
        self.inflight.clear()
        if quiet:
            return
        self.console.print(f"\n[bold yellow]interrupted[/] ({self.stop.name or 'KeyboardInterrupt'}): {n} in-flight "
                           f"trial(s) marked FAIL 'interrupted' and re-enqueued. Resume with: "
                           f"[bold]explorer resume {self.cfg.name}[/]")
        if left:
            self.console.print(f"[bold yellow]second interrupt[/]: clean-up stopped between two storage writes; "
                               f"the in-flight trials of {', '.join(left)} are still RUNNING, and `explorer resume "
                               f"{self.cfg.name}` marks and re-enqueues them first.")

    def _summarise(self, total_s: float) -> None:
        from explorer.search import best_summary, subject_counts

        for sid, study in self.studies.items():
            c = subject_counts(study)
            self.result.subjects[sid] = {**asdict(c), "target": self.target,
                                         "best": best_summary(study, self.cfg.objectives)}
            if c.done >= self.target and c.complete == 0 and sid not in self.result.failed_subjects:
                self.result.failed_subjects.append(sid)
        for sid in self.result.failed_subjects:
            self.console.print(f"[bold red]subject {sid}: every trial failed[/] "
                               f"({self.result.subjects[sid]['reasons']}); the other subjects continued")

    def _append_run(self) -> None:
        r = self.result
        row = {"ended": time.strftime("%Y-%m-%dT%H:%M:%S"), "actors": r.actors, "trials": r.trials_run,
               "interrupted": r.interrupted, "driver_wall_s": round(r.driver_wall_s, 3),
               "startup_s": round(r.startup_s, 3), "simulate_s": round(r.simulate_s, 3),
               "actor_call_s": round(r.actor_call_s, 3), "utilisation": r.utilisation,
               "trials_per_min": round(r.trials_per_min, 2), "actors_replaced": r.actors_replaced,
               "subjects": sorted(self.todo), "batch_size": self.cfg.ray.batch_size,
               "duration_s": self.cfg.simulation.duration_s}
        with open(self.study_dir / RUNS_FILE, "a") as f:
            f.write(json.dumps(row) + "\n")

