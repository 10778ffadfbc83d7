"""What a study folder holds, where its stores are, and how a name becomes a folder.

A leaf of the package: it imports only :mod:`explorer.errors` (the config only for type hints), so
every layer (search, store, tracking, study, the command lines) can read it.

A study folder ``<studies_dir>/<name>/``::

    study.yaml              the frozen config + provenance (FROZEN_FILE)
    optuna.log              Optuna journal, one study per subject (default Optuna storage)
    mlflow.db, mlartifacts/ the embedded MLflow tracking store and its artifacts
    signals.zarr/           simulated BOLD and FC of every stored trial
    cohort_reference.npz    the cohort-mean empirical FC, fixed at the first run
    runs.jsonl              one line per driver session (trials, wall time, utilisation)
    report/                 the twin report (``explorer report``)
    .driver.lock            shared by the drivers of this host; `verify --repair` holds it alone
    .setup.lock             held while a driver opens (and first creates) the study's databases

The environment variables of :data:`ENV_OVERRIDES` move a store elsewhere (a PostgreSQL
database, an MLflow server, an object store) without editing the config.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from explorer.errors import StudyError

if TYPE_CHECKING:
    from explorer.config import StudyConfig

FROZEN_FILE = "study.yaml"
OPTUNA_FILE = "optuna.log"
MLFLOW_DB = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
SIGNALS_NAME = "signals.zarr"
REFERENCE_FILE = "cohort_reference.npz"
RUNS_FILE = "runs.jsonl"
REPORT_DIR = "report"
LOCK_FILE = ".driver.lock"
SETUP_LOCK_FILE = ".setup.lock"

STUDIES_DIR_ENV = "EXPLORER_STUDIES_DIR"
ENV_OVERRIDES = {
    "optuna": "EXPLORER_OPTUNA_STORAGE",
    "mlflow": "EXPLORER_MLFLOW_URI",
    "zarr": "EXPLORER_ZARR_URL",
    "ray": "EXPLORER_RAY_ADDRESS",
}


def is_study_dir(path: str | Path) -> bool:
    return (Path(path) / FROZEN_FILE).is_file()


def resolve(name: str, studies_dir: str | None = None) -> Path:
    """A study folder from a name (``<studies_dir>/<name>``) or a path to the folder.

    ``studies_dir`` defaults to ``$EXPLORER_STUDIES_DIR``, else ``./studies``. StudyError when there
    is no such study.
    """
    p = Path(name)
    if is_study_dir(p):
        return p
    base = Path(studies_dir or os.environ.get(STUDIES_DIR_ENV) or "studies")
    d = base / name
    if not is_study_dir(d):
        raise StudyError(f"no study {name!r} in {base}/ (no {d / FROZEN_FILE}); start it with "
                         "`explorer run CONFIG`, or pass --studies-dir")
    return d


def add_study_name(p: argparse.ArgumentParser) -> None:
    """The ``NAME`` and ``--studies-dir`` arguments of every command that opens a study folder (see :func:`resolve`)."""
    p.add_argument("name", metavar="NAME", help="study name (looked up in --studies-dir) or a study folder")
    p.add_argument("--studies-dir", default=None, metavar="DIR",
                   help=f"folder holding the studies (default: ${STUDIES_DIR_ENV} or ./studies)")


def optuna_storage_url(cfg: "StudyConfig", study_dir: Path | None = None) -> str:
    """Optuna storage: $EXPLORER_OPTUNA_STORAGE, storage.optuna, or ``<study>/optuna.log`` (journal file)."""
    d = Path(study_dir or cfg.study_dir)
    return os.environ.get(ENV_OVERRIDES["optuna"]) or cfg.storage.optuna or str(d / OPTUNA_FILE)


def embedded_mlflow_uri(study_dir: str | Path) -> str:
    """``sqlite:///<study>/mlflow.db``: the embedded MLflow store of a study folder."""
    return f"sqlite:///{Path(study_dir).resolve() / MLFLOW_DB}"


def mlflow_uri(cfg: "StudyConfig", study_dir: Path | None = None) -> str:
    """MLflow tracking URI: $EXPLORER_MLFLOW_URI, storage.mlflow, or ``sqlite:///<study>/mlflow.db``."""
    return (os.environ.get(ENV_OVERRIDES["mlflow"]) or cfg.storage.mlflow
            or embedded_mlflow_uri(study_dir or cfg.study_dir))


def mlflow_artifacts(cfg: "StudyConfig", study_dir: Path | None = None) -> str | None:
    """Artifact location for the embedded tracking store: ``<study>/mlartifacts`` (None with a server)."""
    if os.environ.get(ENV_OVERRIDES["mlflow"]) or cfg.storage.mlflow:
        return None
    return str(Path(study_dir or cfg.study_dir).resolve() / ARTIFACTS_DIR)


def zarr_url(cfg: "StudyConfig", study_dir: Path | None = None) -> str:
    """Signals store: $EXPLORER_ZARR_URL, storage.zarr, or ``<study>/signals.zarr``."""
    d = Path(study_dir or cfg.study_dir).resolve()
    return os.environ.get(ENV_OVERRIDES["zarr"]) or cfg.storage.zarr or str(d / SIGNALS_NAME)


def ray_address(cfg: "StudyConfig") -> str | None:
    """Ray address: $EXPLORER_RAY_ADDRESS, ray.address, or None (a local Ray)."""
    return os.environ.get(ENV_OVERRIDES["ray"]) or cfg.ray.address
