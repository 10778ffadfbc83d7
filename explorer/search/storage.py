"""Optuna storage URLs: a journal file (default), SQLite, or PostgreSQL.

* ``<path>.log`` / ``journal:<path>`` / any plain path: ``JournalStorage(JournalFileBackend)``,
  safe for concurrent writers on one file system (the embedded default, ``<study>/optuna.log``);
* ``sqlite:///<path>``: ``RDBStorage`` (fine for one driver);
* ``postgresql://user:pass@host/db`` (or ``postgresql+psycopg2://``): ``RDBStorage`` for clusters.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from explorer.errors import StudyError

if TYPE_CHECKING:  # pragma: no cover
    from optuna.storages import BaseStorage


def storage_kind(url: str) -> str:
    """``"journal"``, ``"sqlite"``, ``"postgresql"`` or ``"rdb"`` (another SQLAlchemy URL)."""
    if url.startswith("journal:"):
        return "journal"
    if url.startswith("sqlite:"):
        return "sqlite"
    if url.startswith(("postgresql:", "postgresql+", "postgres:")):
        return "postgresql"
    if re.match(r"^[a-z][a-z0-9+]*://", url):
        return "rdb"
    return "journal"


def journal_path(url: str) -> Path:
    path = url[len("journal:"):] if url.startswith("journal:") else url
    if path.startswith("//"):
        path = path[2:]
    return Path(path)


def redact(url: str) -> str:
    """The URL with any password replaced by ``***`` (for logs and provenance)."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def open_storage(url: str) -> "BaseStorage":
    """Open (creating if needed) the Optuna storage at ``url``."""
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    kind = storage_kind(url)
    try:
        if kind == "journal":
            path = journal_path(url)
            path.parent.mkdir(parents=True, exist_ok=True)
            # Optuna's default (symlink) lock, the same one optuna-dashboard and `optuna` use.
            return JournalStorage(JournalFileBackend(str(path)))
        if kind == "postgresql" and url.startswith("postgres:"):
            url = "postgresql:" + url[len("postgres:"):]
        engine = {"connect_args": {"timeout": 60}} if kind == "sqlite" else {"pool_pre_ping": True}
        if kind == "sqlite":
            Path(url.split("sqlite:///", 1)[-1]).parent.mkdir(parents=True, exist_ok=True)
        return RDBStorage(url, engine_kwargs=engine, heartbeat_interval=None)
    except Exception as exc:  # noqa: BLE001 - sqlalchemy/driver errors vary by backend
        raise StudyError(f"cannot open the Optuna storage {redact(url)}: {exc}. Check the "
                         "storage.optuna field or $EXPLORER_OPTUNA_STORAGE") from None
