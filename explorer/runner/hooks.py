"""The driver's hooks into the signals store (zarr) and tracking (MLflow).

Both are optional at run time: ``store: none`` disables signals. Failures inside a hook are
logged and do not stop the search (``explorer verify --repair`` re-creates what is missing).
"""

from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path
from typing import Any

from explorer.config import StudyConfig
from explorer.store import SignalStore, simulation_attrs
from explorer.study.frozen import git_revision
from explorer.study.layout import embedded_mlflow_uri, mlflow_artifacts, mlflow_uri, optuna_storage_url, zarr_url
from explorer.tracking import Tracker, check_separate_databases
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


class NullTracker:
    """Stands in for the MLflow tracker while ``explorer.tracking`` is unavailable."""

    def end_stale_runs(self) -> int:
        return 0

    def log_trials(self, subject_id: str, records: list) -> None:
        pass

    def finish_subject(self, *args: Any, **kwargs: Any) -> None:
        pass

    def tag_subject(self, subject_id: str, tags: dict[str, str]) -> None:
        pass


def open_tracker(cfg: StudyConfig, study_dir: Path) -> Any:
    """The study's MLflow tracker (refusing an MLflow URI that is the Optuna database)."""
    check_separate_databases(optuna_storage_url(cfg, study_dir), mlflow_uri(cfg, study_dir))
    if mlflow_uri(cfg, study_dir) == embedded_mlflow_uri(study_dir):
        # the embedded store of a folder that may have been moved: point its artifacts here again,
        # or new figures would go to (or be read from) the old folder
        repair_artifact_locations(study_dir)
    try:  # the Tracker imports mlflow
        return Tracker(mlflow_uri(cfg, study_dir), experiment=cfg.name,
                       artifact_location=mlflow_artifacts(cfg, study_dir), settings=cfg.simulation)
    except ImportError as exc:
        log.warning("MLflow tracking unavailable (%s); trials are recorded in Optuna only", exc)
        return NullTracker()


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


class TrackerThread:
    """The tracker's calls, made in order by one background thread: MLflow stays off the scheduling loop.

    ``log_trials``, ``finish_subject`` and ``tag_subject`` return at once; each call runs later through
    ``guard`` (a failure is logged and recorded, never raised). Calls keep their order, so a subject's
    summary follows its trials. :meth:`close` waits for the queue to drain (``timeout_s``: after
    Ctrl-C, what is not logged by then is left to ``explorer verify --repair``).
    """

    def __init__(self, tracker: Any, guard: Guard):
        self.tracker = tracker
        self.guard = guard
        self.queue: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._work, name="explorer-tracker", daemon=True)
        self.thread.start()

    def _work(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            what, fn, args, kwargs = item
            self.guard(what, fn, *args, **kwargs)

    def _put(self, what: str, method: str, *args: Any, **kwargs: Any) -> None:
        self.queue.put((what, getattr(self.tracker, method), args, kwargs))

    def then(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> None:
        """Call ``fn`` after the tracker calls queued so far (e.g. mark a subject finished once it is logged)."""
        self.queue.put((what, fn, args, kwargs))

    def log_trials(self, subject_id: str, records: list) -> None:
        self._put(f"MLflow logging of {subject_id}", "log_trials", subject_id, list(records))

    def finish_subject(self, subject_id: str, *args: Any, **kwargs: Any) -> None:
        self._put(f"MLflow summary of {subject_id}", "finish_subject", subject_id, *args, **kwargs)

    def tag_subject(self, subject_id: str, tags: dict[str, str]) -> None:
        self._put(f"MLflow tags of {subject_id}", "tag_subject", subject_id, dict(tags))

    def close(self, timeout_s: float | None = None) -> bool:
        """Stop after the calls already queued; returns whether they all ran within ``timeout_s``."""
        self.queue.put(None)
        self.thread.join(timeout_s)
        return not self.thread.is_alive()
