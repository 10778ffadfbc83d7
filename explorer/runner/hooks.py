"""The driver's hooks into the signals store (zarr) and tracking (MLflow).

Both are optional at run time: ``store: none`` disables signals. Failures inside a hook are
logged and do not stop the search (``explorer verify --repair`` re-creates what is missing).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from explorer.config import StudyConfig, mlflow_artifacts, mlflow_uri, zarr_url

log = logging.getLogger(__name__)


def open_store(cfg: StudyConfig, study_dir: Path) -> tuple[Any, str | None]:
    """(SignalStore or None, its URL or None) for the study's ``store.mode``."""
    if cfg.store.mode == "none":
        return None, None
    from explorer.store import SignalStore

    url = zarr_url(cfg, study_dir)
    return SignalStore(url), url


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
    from explorer.config import optuna_storage_url

    try:
        from explorer.tracking import Tracker, check_separate_databases
    except ImportError as exc:
        log.warning("MLflow tracking unavailable (%s); trials are recorded in Optuna only", exc)
        return NullTracker()

    check_separate_databases(optuna_storage_url(cfg, study_dir), mlflow_uri(cfg, study_dir))
    if mlflow_uri(cfg, study_dir) == f"sqlite:///{Path(study_dir).resolve() / 'mlflow.db'}":
        # the embedded store of a folder that may have been moved: point its artifacts here again,
        # or new figures would go to (or be read from) the old folder
        from explorer.tracking.relocate import repair_artifact_locations

        repair_artifact_locations(study_dir)
    return Tracker(mlflow_uri(cfg, study_dir), experiment=cfg.name,
                   artifact_location=mlflow_artifacts(cfg, study_dir))


def guarded(what: str, fn, *args: Any, **kwargs: Any) -> Any:
    """Call a hook; log (not raise) its failure."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001
        log.warning("%s failed: %s: %s (run `explorer verify NAME --repair` afterwards)", what,
                    type(exc).__name__, exc, exc_info=log.isEnabledFor(logging.DEBUG))
        return None


def subject_summary_arrays(store: Any, subject: Any, best_number: int, features: dict[str, Any],
                           tr_s: float) -> dict[str, Any]:
    """Arrays for the parent run's figures: empirical vs best simulated FC and FCD values."""
    import numpy as np

    from explorer.features import FeatureOptions, fcd, preprocess

    out: dict[str, Any] = {"emp_fc": subject.fc}
    if store is None:
        return out
    trial = store.read_trial(subject.id, best_number)
    out["best_fc"] = trial.get("fc")
    opts = FeatureOptions(**features)
    bold = trial.get("bold")
    if subject.fcd is not None and bold is not None:
        skip = int(round(opts.discard_s / tr_s)) if opts.discard_s > 0 else 0
        with np.errstate(invalid="ignore", divide="ignore"):
            sim = fcd(preprocess(np.asarray(bold, dtype=np.float64)[skip:], tr_s, opts), opts.fcd_window,
                      opts.fcd_step)
        iu = np.triu_indices(subject.fcd.shape[0], k=1)
        ju = np.triu_indices(sim.shape[0], k=1)
        out["emp_fcd_values"] = subject.fcd[iu]
        out["best_fcd_values"] = sim[ju]
    return out
