"""The study folder: its layout, frozen config and provenance, lock, status and verification.

Light to import: :mod:`explorer.study.status` and :mod:`explorer.study.verify` (which open Optuna,
MLflow and zarr) are imported by name where they are used.
"""

from explorer.study.frozen import (
    IDENTITY_FIELDS, frozen_text, git_revision, incompatible_fields, load_frozen, package_versions, prepare,
    provenance, save_frozen,
)
from explorer.study.layout import (
    ENV_OVERRIDES, FROZEN_FILE, REPORT_DIR, RUNS_FILE, is_study_dir, mlflow_artifacts, mlflow_uri,
    optuna_storage_url, ray_address, resolve, zarr_url,
)
from explorer.study.lock import StudyLock

__all__ = [
    "ENV_OVERRIDES", "FROZEN_FILE", "IDENTITY_FIELDS", "REPORT_DIR", "RUNS_FILE", "StudyLock", "frozen_text",
    "git_revision", "incompatible_fields", "is_study_dir", "load_frozen", "mlflow_artifacts", "mlflow_uri",
    "optuna_storage_url", "package_versions", "prepare", "provenance", "ray_address", "resolve", "save_frozen",
    "zarr_url",
]
