"""Optuna storage URLs: a journal file (default), SQLite, or PostgreSQL.

* ``<path>.log`` / ``journal:<path>`` / any plain path: ``JournalStorage(JournalFileBackend)``,
  safe for concurrent writers on one file system (the embedded default, ``<study>/optuna.log``),
  a cluster's shared NFS or Lustre file system included: its lock is Optuna's
  ``JournalFileSymlinkLock`` (an atomic ``symlink``, which NFS has from v2 on and Lustre has;
  ``JournalFileOpenLock``'s ``O_EXCL`` needs NFSv3 and kernel >= 2.6), the lock optuna-dashboard
  and the ``optuna`` CLI take too: two writers with different locks would not exclude each other;
  every append is one ``fsync``;
* ``sqlite:///<path>``: ``RDBStorage`` (fine for one driver);
* ``postgresql://user:pass@host/db`` (or ``postgresql+psycopg2://``): ``RDBStorage`` for clusters.
"""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

from explorer.errors import AccessError, StudyError
from explorer.secrets import redact_text, redact_url

if TYPE_CHECKING:  # pragma: no cover
    from optuna.storages import BaseStorage

log = logging.getLogger(__name__)

#: suffixes of Optuna's symlink lock on a journal file, and of its release's temporary rename
LOCK_SUFFIX, RENAME_SUFFIX = ".lock", ".rename"


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


def open_storage(url: str) -> "BaseStorage":
    """Open (creating if needed) the Optuna storage at ``url``."""
    import optuna
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

    optuna.logging.set_verbosity(optuna.logging.WARNING)   # not a line per study or lease created
    kind = storage_kind(url)
    try:
        if kind == "journal":
            path = journal_path(url)
            path.parent.mkdir(parents=True, exist_ok=True)
            # the symlink lock: NFSv2+ and Lustre, and the one optuna-dashboard and `optuna` take
            return JournalStorage(JournalFileBackend(str(path), lock_obj=JournalFileSymlinkLock(str(path))))
        if kind == "postgresql" and url.startswith("postgres:"):
            url = "postgresql:" + url[len("postgres:"):]
        engine = {"connect_args": {"timeout": 60}} if kind == "sqlite" else {"pool_pre_ping": True}
        if kind == "sqlite":
            Path(url.split("sqlite:///", 1)[-1]).parent.mkdir(parents=True, exist_ok=True)
        return RDBStorage(url, engine_kwargs=engine, heartbeat_interval=None)
    except Exception as exc:  # noqa: BLE001 - sqlalchemy/driver errors vary by backend
        if kind == "postgresql" and re.search(r"password|pg_hba", str(exc)):
            why = redact_text(str(exc).strip().splitlines()[0])
            raise AccessError(f"PostgreSQL refused the Optuna storage {redact_url(url)}: {why}. Set PGPASSFILE "
                              "to the password file of `cluster/start_postgres.sh --listen` (or add its line to "
                              "~/.pgpass); keep the password out of the URL") from None
        raise StudyError(f"cannot open the Optuna storage {redact_url(url)}: {redact_text(str(exc))}. Check the "
                         "storage.optuna field or $EXPLORER_OPTUNA_STORAGE") from None


def recover_journal(url: str, wait_s: float = 2.0) -> list[str]:
    """Repair what a killed writer left in a journal file; returns what was done (also logged).

    Call it only while holding the study lock, when no other driver can be writing:

    * Optuna's lock (``<journal>.lock``, a symlink) left by a process killed inside an append is
      removed, once it has stayed for ``wait_s`` seconds (a live reader's append takes milliseconds);
    * leftover ``<journal>.lock<uuid>.rename`` files of a cut lock release are removed;
    * a torn last record (a line without its newline, from a kill inside the write) is cut off,
      since the next append would otherwise glue onto it and make the journal unreadable.

    SQL storages need nothing: their transactions roll back by themselves.
    """
    if storage_kind(url) != "journal":
        return []
    path = journal_path(url)
    lock = Path(str(path) + LOCK_SUFFIX)
    done = []
    deadline = time.monotonic() + wait_s
    while os.path.lexists(lock) and time.monotonic() < deadline:
        time.sleep(0.05)
    if os.path.lexists(lock):
        lock.unlink(missing_ok=True)
        done.append(f"removed the journal lock {lock.name} left by a killed process")
    for leftover in path.parent.glob(path.name + LOCK_SUFFIX + "*" + RENAME_SUFFIX):
        leftover.unlink(missing_ok=True)
        done.append(f"removed {leftover.name}, left by a cut lock release")
    torn = _cut_torn_tail(path)
    if torn:
        done.append(f"cut a torn last record ({torn} bytes) from {path.name}, left by a killed write")
    for line in done:
        log.warning("journal %s: %s", path, line)
    return done


def _cut_torn_tail(path: Path) -> int:
    """Truncate ``path`` after its last newline; returns the number of bytes cut (0 if intact)."""
    if not path.is_file():
        return 0
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb+") as f:
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        end = size
        block = 1 << 16
        while end > 0:
            start = max(0, end - block)
            f.seek(start)
            chunk = f.read(end - start)
            i = chunk.rfind(b"\n")
            if i >= 0:
                keep = start + i + 1
                break
            end = start
        else:
            keep = 0
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    return size - keep
