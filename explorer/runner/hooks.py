"""The driver's hooks into the signals store (zarr) and tracking (MLflow).

Both are optional at run time: ``store: none`` disables signals. Failures inside a hook are
logged and do not stop the search (``explorer verify --repair`` re-creates what is missing). A
tracker call that fails because the MLflow server cannot be reached is not a failure yet: it waits,
in order, and is tried again (:class:`~explorer.tracking.spool.TrackerThread`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from explorer.config import StudyConfig
from explorer.layout import embedded_mlflow_uri, mlflow_artifacts, mlflow_uri, optuna_storage_url, zarr_url
from explorer.search import list_subject_studies
from explorer.store import SignalStore, simulation_attrs
from explorer.study.frozen import git_revision
from explorer.study.lock import setup_lock
from explorer.tracking import NullTracker, Tracker, TrackerProtocol, check_separate_databases, describe_children
from explorer.tracking.modes import tracker_options
from explorer.tracking.relocate import repair_artifact_locations

log = logging.getLogger(__name__)


def open_store(cfg: StudyConfig, study_dir: Path) -> tuple[Any, str | None]:
    """(SignalStore or None, its URL or None) for the study's ``store.mode``.

    A new store is described (:meth:`~explorer.store.SignalStore.describe`): its root records the
    model, the run settings and the git revision that simulate its signals."""
    if cfg.store.mode == "none":
        return None, None
    url = zarr_url(cfg, study_dir)
    store = SignalStore(url)
    store.describe(simulation_attrs(cfg.model, cfg.simulation, cfg.simulation.repeats), git_revision())
    return store, url


def study_size(cfg: StudyConfig, subjects: Iterable[str] = (), storage: Any = None) -> int:
    """Subjects of the study: those given (this session's cohort) and those with a study in ``storage``."""
    known = set(subjects)
    if storage is not None:
        known |= set(list_subject_studies(storage, cfg.name))
    return len(known)


def open_tracker(cfg: StudyConfig, study_dir: Path, subjects: Iterable[str] = (), storage: Any = None
                 ) -> Tracker | NullTracker:
    """The study's MLflow tracker (refusing an MLflow URI that is the Optuna database); a
    :class:`~explorer.tracking.NullTracker` where mlflow is not installed.

    ``subjects`` (this session's cohort) and ``storage`` (the Optuna storage, whose subject studies
    count too) size the study for ``tracking.children: auto``; the resolved mode is logged."""
    check_separate_databases(optuna_storage_url(cfg, study_dir), mlflow_uri(cfg, study_dir))
    if mlflow_uri(cfg, study_dir) == embedded_mlflow_uri(study_dir):
        # the embedded store of a folder that may have been moved: point its artifacts here again,
        # or new figures would go to (or be read from) the old folder
        repair_artifact_locations(study_dir)
    n = study_size(cfg, subjects, storage)
    log.info("%s", describe_children(cfg.tracking.children, n, cfg.n_trials, cfg.tracking.best_k))
    try:  # the Tracker imports mlflow
        return Tracker(mlflow_uri(cfg, study_dir), experiment=cfg.name,
                       artifact_location=mlflow_artifacts(cfg, study_dir), settings=cfg.simulation,
                       **tracker_options(cfg, n))
    except ImportError as exc:
        log.warning("MLflow tracking unavailable (%s); trials are recorded in Optuna only", exc)
        return NullTracker()


def tracker_opener(cfg: StudyConfig, study_dir: Path, subjects: Iterable[str], storage: Any
                   ) -> Callable[[], TrackerProtocol]:
    """A callable opening the study's tracker (:func:`open_tracker`) under the study's setup lock, for
    :class:`~explorer.tracking.spool.TrackerThread` to call on its thread; an MLflow URI that is the
    Optuna database is refused now."""
    check_separate_databases(optuna_storage_url(cfg, study_dir), mlflow_uri(cfg, study_dir))
    subjects = list(subjects)

    def open_() -> TrackerProtocol:
        with setup_lock(study_dir):   # another driver may be creating the same MLflow store right now
            return open_tracker(cfg, study_dir, subjects, storage)
    return open_


class Guard:
    """Calls a hook (a store or tracker write), logging instead of raising when it fails.

    The failures are kept (``failures``: one line each) so that the driver writes them to
    ``runs.jsonl`` and ``explorer status`` shows them: a broken tracker never vanishes silently.
    """

    def __init__(self) -> None:
        self.failures: list[str] = []

    def __call__(self, what: str, fn, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            line = f"{what} failed: {type(exc).__name__}: {exc}"
            self.failures.append(line if len(line) <= 300 else line[:297] + "...")
            log.warning("%s (run `explorer verify NAME --repair` afterwards)", line,
                        exc_info=log.isEnabledFor(logging.DEBUG))
            return None
