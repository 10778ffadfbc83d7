"""One Optuna study per subject, all in one storage, named ``<study>/<subject>``.

Trial bookkeeping used by the runner and ``explorer status``:

* a trial's FAIL reason is its user attr ``reason`` (``"diverged"``, ``"actor died"``,
  ``"interrupted"``, ``"error: ..."``);
* ``interrupted`` trials do not count against the per-subject budget: their parameter sets are
  re-enqueued (a WAITING trial with user attr ``requeued_from``) and evaluated again;
* ``aborted: ...`` trials (the first batches of a study whose config is broken) do not count either;
* every other finished trial (COMPLETE, or FAIL for another reason) counts as done.

Study attributes: the metric names are the config's objectives (``study.metric_names``, which
optuna-dashboard shows); user attrs ``subject``, ``objectives``, ``participant``/``session``
(cohorts with sessions) and ``finished_trials``: the number of done trials when the subject's
finishing hooks (signals packing, MLflow summary) last ran. Studies written before it was named
so hold the same number as ``finished_at`` (:func:`finished_trials` reads both).
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable

import numpy as np

from explorer.errors import StudyError
from explorer.scoring.ranking import objective_of, rank
from explorer.search.records import FAIL_REASON_ATTR, to_user_attrs, trial_times
from explorer.search.samplers import draw_sampler, make_sampler, subject_seed
from explorer.search.space import distributions

if TYPE_CHECKING:  # pragma: no cover
    import optuna
    from optuna.storages import BaseStorage
    from optuna.trial import FrozenTrial

    from explorer.config import StudyConfig
    from explorer.records import TrialRecord

log = logging.getLogger(__name__)

REQUEUED_ATTR = "requeued_from"
#: user attr: the number of the subject's trials finished (told, or reaped) before this one was told
TOLD_ORDER_ATTR = "told_order"
INTERRUPTED = "interrupted"
#: reason prefix of a trial of a broken study's first batches: failed, but not counted against the budget
ABORTED = "aborted"
SEP = "/"
FINISHED_ATTR = "finished_trials"
OLD_FINISHED_ATTR = "finished_at"   # its name before: it held a trial count, never a time


def study_name(name: str, subject: str) -> str:
    """Optuna study name of one subject of study ``name``."""
    return f"{name}{SEP}{subject}"


def list_subject_studies(storage: "BaseStorage", name: str) -> dict[str, str]:
    """subject id -> Optuna study name, for every subject study of ``name`` in ``storage``."""
    prefix = name + SEP
    out = {}
    for s in storage.get_all_studies():
        if s.study_name.startswith(prefix):
            out[s.study_name[len(prefix):]] = s.study_name
    return dict(sorted(out.items()))


def open_subject_study(storage: "BaseStorage", cfg: "StudyConfig", subject: str,
                       create: bool = True) -> "optuna.Study":
    """Create or load the subject's study, with a sampler seeded for this session.

    The seed depends on ``sampler.seed``, the subject and the number of trials already in the
    study, so a fresh study is reproducible and a resumed one does not replay old draws.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sname = study_name(cfg.name, subject)
    if create:
        study = optuna.create_study(storage=storage, study_name=sname, directions=cfg.directions,
                                    load_if_exists=True)
    else:
        study = optuna.load_study(study_name=sname, storage=storage)
    if [d.name.lower() for d in study.directions] != cfg.directions:
        raise StudyError(f"study {sname!r} optimises {[d.name.lower() for d in study.directions]}, "
                         f"but the config's objective {cfg.objectives} needs {cfg.directions}; "
                         "use a new study name")
    if create and "subject" not in study.user_attrs:
        study.set_user_attr("subject", subject)
        study.set_user_attr("objectives", cfg.objectives)
    if create and study.metric_names is None:
        set_metric_names(study, cfg.objectives)
    offset = len(study.get_trials(deepcopy=False))
    study.sampler = make_sampler(cfg, subject_seed(cfg.sampler.seed, subject, offset))
    return study


def finished_trials(study: "optuna.Study") -> int | None:
    """Done trials when the subject's finishing hooks last ran (None: never)."""
    ua = study.user_attrs
    value = ua.get(FINISHED_ATTR, ua.get(OLD_FINISHED_ATTR))
    return None if value is None else int(value)


def set_metric_names(study: "optuna.Study", names: list[str]) -> None:
    """Name the study's objective values (optuna-dashboard and ``trials_dataframe`` show them)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ExperimentalWarning: the API is stable enough for a system attr
        study.set_metric_names(list(names))


def ask_params(study: "optuna.Study", cfg: "StudyConfig", subject: str = "", draw: int | None = None
               ) -> tuple["optuna.Trial", dict[str, float]]:
    """Ask one trial (an enqueued WAITING trial first, else a new sample) and its free values.

    ``draw`` (deterministic mode): the trial's place among ``subject``'s counted trials; the study's sampler
    is then seeded for this draw alone (:func:`~explorer.search.samplers.draw_sampler`).
    """
    if draw is not None:
        study.sampler = draw_sampler(cfg, subject, draw)
    trial = study.ask(distributions(cfg))
    return trial, dict(trial.params)


@dataclass
class SubjectCounts:
    """Trial counts of one subject study."""

    complete: int = 0
    failed: int = 0          # FAIL for any reason but "interrupted" or "aborted" (counts against the budget)
    interrupted: int = 0     # FAIL "interrupted" (re-enqueued, does not count)
    aborted: int = 0         # FAIL "aborted: ..." (a broken config's first batches, does not count)
    running: int = 0
    waiting: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def done(self) -> int:
        """Trials that count against the per-subject budget."""
        return self.complete + self.failed


def reason_kind(reason: str) -> str:
    """A FAIL reason without its per-trial details, for counting: ``"fic did not converge: fixed point
    unstable (max Re eig = 0.001 /ms)"`` -> ``"fic did not converge: fixed point unstable"``.

    Details start at the first digit, parenthesis, '=' or '['; the full text stays in the trial's ``reason``.
    """
    head, sep, rest = reason.partition(": ")
    if not sep:
        return re.split(r"\s*[(=\[\d]", reason)[0].strip() or reason
    detail = re.split(r"\s*[(=\[\d]", rest)[0].strip(" ,;:")
    return f"{head}: {detail}" if detail else head


def subject_counts(study_or_trials: Any) -> SubjectCounts:
    from optuna.trial import TrialState

    trials = _trials(study_or_trials)
    c = SubjectCounts()
    reasons: Counter[str] = Counter()
    for t in trials:
        if t.state == TrialState.COMPLETE:
            c.complete += 1
        elif t.state == TrialState.FAIL:
            reason = str(t.user_attrs.get(FAIL_REASON_ATTR, "error: unknown"))
            if reason == INTERRUPTED:
                c.interrupted += 1
            elif reason.startswith(ABORTED):
                c.aborted += 1
            else:
                c.failed += 1
                reasons[reason_kind(reason)] += 1
        elif t.state == TrialState.RUNNING:
            c.running += 1
        elif t.state == TrialState.WAITING:
            c.waiting += 1
    c.reasons = dict(reasons)
    return c


def _trials(study_or_trials: Any) -> list["FrozenTrial"]:
    if isinstance(study_or_trials, list):
        return study_or_trials
    return study_or_trials.get_trials(deepcopy=False)


def reap_interrupted(study: "optuna.Study", numbers: set[int] | None = None,
                     on_reaped: Callable[["FrozenTrial"], None] | None = None,
                     names: Iterable[str] | None = None) -> list[int]:
    """Mark RUNNING trials FAIL ``"interrupted"`` and re-enqueue their parameter sets.

    Only call this while holding the subject's lease (no live driver owns those trials).
    ``numbers`` restricts it to those trial numbers (a driver reaping its own in-flight trials).
    Idempotent: a trial whose parameters were already re-enqueued is not enqueued twice,
    so a crash half-way through reaping loses nothing and duplicates nothing.
    ``on_reaped`` is called for each reaped trial (e.g. to delete partial signals). ``names``: the free
    parameters of a trial; one killed while it was being asked (Optuna writes a new trial, then its
    parameters one by one) lacks some, was never simulated, and is not re-enqueued.
    """
    from optuna.trial import TrialState

    # Optuna has no public call that annotates and fails a RUNNING trial of another (dead) process
    # without `tell`, which logs each one as a failed trial: the storage does it, by trial id
    storage = study._storage
    trials = study.get_trials(deepcopy=False)
    requeued = {t.user_attrs.get(REQUEUED_ATTR) for t in trials if REQUEUED_ATTR in t.user_attrs}
    reaped = []
    for t in trials:
        if t.state != TrialState.RUNNING or (numbers is not None and t.number not in numbers):
            continue
        storage.set_trial_user_attr(t._trial_id, FAIL_REASON_ATTR, INTERRUPTED)
        complete = bool(t.params) and (names is None or set(names) <= set(t.params))
        if t.number not in requeued and complete:
            study.enqueue_trial(dict(t.params), user_attrs={REQUEUED_ATTR: t.number})
        storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        reaped.append(t.number)
        if on_reaped is not None:
            on_reaped(t)
    if reaped:
        log.info("study %s: %d interrupted trial(s) marked FAIL and re-enqueued: %s",
                 study.study_name, len(reaped), reaped)
    return reaped


def tell_record(study: "optuna.Study", trial: "optuna.Trial", rec: "TrialRecord", objectives: list[str],
                told_order: int | None = None) -> None:
    """Tell Optuna ``rec``: its user attributes (:func:`~explorer.search.records.to_user_attrs`, and
    ``told_order`` when given: :data:`TOLD_ORDER_ATTR`) in one write, then COMPLETE with the objective
    values or FAIL.

    Sets ``rec.asked_at``/``rec.told_at`` from the trial's own start and completion times, so that
    the MLflow child run spans the Optuna trial exactly.
    """
    from optuna.trial import TrialState

    attrs = to_user_attrs(rec)
    if told_order is not None:
        attrs[TOLD_ORDER_ATTR] = int(told_order)
    set_trial_user_attrs(study, trial, attrs)
    if rec.state == "COMPLETE":
        frozen = study.tell(trial, [objective_of(rec.scores, o) for o in objectives])
    else:
        frozen = study.tell(trial, state=TrialState.FAIL)
    rec.asked_at, rec.told_at = trial_times(frozen)


def set_trial_user_attrs(study: "optuna.Study", trial: "optuna.Trial", attrs: dict[str, Any]) -> None:
    """Write a trial's user attributes in one storage call where the storage allows it.

    Optuna's public API writes one attribute per call: a journal file then takes one lock, one
    append and one fsync per attribute, a SQL database one transaction (commit) per attribute. For
    a ``JournalStorage`` the attributes go in one append instead (the same records Optuna writes,
    one per attribute); for an ``RDBStorage`` in one transaction (the same upserts Optuna makes).
    Either way the whole set lands in a single write. Other storages get one call per attribute.
    """
    from optuna.storages import JournalStorage

    storage = study._storage
    trial_id = trial._trial_id
    rdb = _rdb_backend(storage)
    if rdb is not None and attrs:
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session

        with _create_scoped_session(rdb.scoped_session, True) as session:
            for k, v in attrs.items():
                rdb._set_trial_attr_without_commit(session, models.TrialUserAttributeModel, trial_id, k, v)
        return
    if isinstance(storage, JournalStorage) and attrs and _journal_internals(storage):
        from optuna.storages.journal._storage import JournalOperation

        with storage._thread_lock:
            worker = storage._replay_result.worker_id
            storage._backend.append_logs([{"op_code": JournalOperation.SET_TRIAL_USER_ATTR, "worker_id": worker,
                                           "trial_id": trial_id, "user_attr": {k: v}} for k, v in attrs.items()])
            storage._sync_with_backend()
        return
    for k, v in attrs.items():
        storage.set_trial_user_attr(trial_id, k, v)


def _rdb_backend(storage: Any) -> Any:
    """The ``RDBStorage`` behind ``storage`` (Optuna wraps it in a cache) when it has the internals
    :func:`set_trial_user_attrs` uses, else None."""
    try:
        from optuna.storages import RDBStorage
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session  # noqa: F401
    except ImportError:  # pragma: no cover - another Optuna layout: the public API then
        return None
    backend = getattr(storage, "_backend", storage)
    if isinstance(backend, RDBStorage) and hasattr(backend, "_set_trial_attr_without_commit") \
            and hasattr(models, "TrialUserAttributeModel"):
        return backend
    return None


def _journal_internals(storage: Any) -> bool:
    """Whether this Optuna's JournalStorage has the internals :func:`set_trial_user_attrs` uses."""
    return all(hasattr(storage, a) for a in ("_thread_lock", "_replay_result", "_backend", "_sync_with_backend"))


def complete_trials(study: "optuna.Study") -> list[dict[str, Any]]:
    """Every COMPLETE trial with finite values, in trial order: ``{"number", "params", "values", "ended_at"}``.

    ``ended_at``: epoch seconds, Optuna's ``datetime_complete`` (the tell time, where the trial's
    MLflow child run ends too), else the actor's user attr ``ended_at``, else None.
    """
    out = []
    for t in sorted(_finite_complete(study), key=lambda t: t.number):
        ended = t.datetime_complete.timestamp() if t.datetime_complete else t.user_attrs.get("ended_at")
        out.append({"number": t.number, "params": dict(t.params), "values": list(t.values),
                    "ended_at": float(ended) if ended else None})
    return out


def _finite_complete(study: "optuna.Study") -> list["FrozenTrial"]:
    """The COMPLETE trials whose values are all finite."""
    from optuna.trial import TrialState

    return [t for t in _trials(study) if t.state == TrialState.COMPLETE and t.values
            and all(math.isfinite(v) for v in t.values)]


def _score_of(t: "FrozenTrial", objectives: list[str]) -> dict[str, float]:
    return {o: float(v) for o, v in zip(objectives, t.values or [])}


def best_summary(study: "optuna.Study", objectives: list[str]) -> dict[str, Any]:
    """Best trial of a subject study: number, params, scores (+ the Pareto front for several objectives).

    For several objectives the twin is the front's compromise (:func:`compromise`): the Pareto
    trial nearest the utopia point once each objective is scaled to [0, 1] over the front. One objective
    ranks by :func:`explorer.scoring.ranking.rank` (ties to the lower trial number).
    ``pareto`` is the front's size and ``pareto_front`` its trial numbers.
    """
    done = _finite_complete(study)
    if not done:
        return {}
    front_numbers: list[int] = []
    if len(objectives) == 1:
        by_number = {t.number: t for t in sorted(done, key=lambda t: t.number)}
        maximise = study.direction.name.lower() == "maximize"
        best = by_number[rank({n: t.values[0] for n, t in by_number.items()}, maximise, 1)[0]]
        pareto = 1
    else:
        front = sorted(study.best_trials, key=lambda t: t.number)
        pareto = len(front)
        front_numbers = [t.number for t in front]
        best = front[compromise([t.values for t in front], [d.name.lower() for d in study.directions])]
    scores = dict(best.user_attrs.get("scores", {}))
    scores.update(_score_of(best, objectives))
    out = {"number": best.number, "params": dict(best.params), "scores": scores, "pareto": pareto}
    if front_numbers:
        out["pareto_front"] = front_numbers
    return out


def compromise(values: list[list[float]], directions: list[str]) -> int:
    """Index of the compromise among Pareto-optimal ``values`` (one list per trial, one value per objective).

    Each objective is scaled to [0, 1] over the front (1 = its best value there); the trial with the
    smallest Euclidean distance to (1, ..., 1) wins, ties to the earliest.
    """
    v = np.asarray(values, dtype=np.float64)
    sign = np.array([1.0 if d == "maximize" else -1.0 for d in directions])
    g = v * sign
    lo, hi = g.min(axis=0), g.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    u = (g - lo) / span
    return int(np.argmin(np.sqrt(((1.0 - u) ** 2).sum(axis=1))))
