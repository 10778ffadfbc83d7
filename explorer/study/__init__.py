"""The study folder: its frozen config and provenance, lock, status and verification.

The folder's layout (file names, store locations, how a name becomes a folder) sits at the bottom of
the package, in :mod:`explorer.layout`, so that search, store and tracking can read it too.
Light to import: :mod:`explorer.study.status` and :mod:`explorer.study.verify` (which open Optuna,
MLflow and zarr) are imported by name where they are used.
"""

from explorer.study.frozen import (
    IDENTITY_FIELDS, frozen_text, git_revision, incompatible_fields, load_frozen, package_versions, prepare,
    provenance, save_frozen,
)
from explorer.study.lock import StudyLock

__all__ = [
    "IDENTITY_FIELDS", "StudyLock", "frozen_text", "git_revision", "incompatible_fields", "load_frozen",
    "package_versions", "prepare", "provenance", "save_frozen",
]
