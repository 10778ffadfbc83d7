"""Relocatable study folders: point the embedded MLflow store at the folder's own ``mlartifacts``.

MLflow records absolute artifact locations (``file:///<study>/mlartifacts/...``) in
``<study>/mlflow.db``. After a study folder is copied or moved, those still name the old folder:
figures vanish ("No Artifacts Recorded"), or are silently served from the original.
:func:`repair_artifact_locations` rewrites them, as prefix replacements in one SQLite transaction.
Only for the embedded default store; server and remote stores are never touched.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from explorer.errors import TrackingError
from explorer.layout import ARTIFACTS_DIR, MLFLOW_DB

log = logging.getLogger(__name__)


#: (table, column, extra condition): every place the SQLite store keeps an artifact location
_COLUMNS = (("experiments", "artifact_location", ""),
            ("runs", "artifact_uri", ""),
            ("logged_models", "artifact_location", ""),
            ("trace_tags", "value", " AND key = 'mlflow.artifactLocation'"))


@dataclass(frozen=True)
class Relocation:
    """One rewritten prefix ``old`` -> ``new`` and how many rows of each table changed."""

    old: str
    new: str
    rows: dict[str, int]

    def describe(self) -> str:
        counts = ", ".join(f"{n} {t}" for t, n in self.rows.items() if n)
        return f"{self.old} -> {self.new} ({counts})"


def _local_path(location: str) -> Path | None:
    """The local path of a ``file:`` URI or absolute path; None for any other scheme."""
    if location.startswith("file:"):
        return Path(unquote(urlparse(location).path))
    if location.startswith("/") or (os.name == "nt" and Path(location).is_absolute()):
        return Path(location)
    return None


def _same_path(a: Path, b: Path) -> bool:
    return os.path.normpath(a) == os.path.normpath(b) or a.resolve() == b.resolve()


def _old_roots(con: sqlite3.Connection, target: Path) -> list[str]:
    """Recorded ``.../mlartifacts`` prefixes (as stored) that are not ``target``."""
    found = [r[0] for r in con.execute("SELECT DISTINCT artifact_location FROM experiments")]
    # a run's location is <experiment location>/<run_uuid>/artifacts
    found += [r[0] for r in con.execute(
        "SELECT DISTINCT substr(artifact_uri, 1, length(artifact_uri) - length(run_uuid) - 11) FROM runs "
        "WHERE artifact_uri LIKE '%/' || run_uuid || '/artifacts'")]
    roots = []
    for loc in {str(x).rstrip("/") for x in found if x}:
        path = _local_path(loc)
        if path is not None and path.name == ARTIFACTS_DIR and not _same_path(path, target) and loc not in roots:
            roots.append(loc)
    return sorted(roots)


def _tables(con: sqlite3.Connection) -> set[str]:
    return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def repair_artifact_locations(study_dir: str | Path) -> list[Relocation]:
    """Rewrite artifact locations of ``<study>/mlflow.db`` that name another folder's ``mlartifacts``.

    Each old ``.../mlartifacts`` prefix found in ``experiments.artifact_location`` or
    ``runs.artifact_uri`` becomes ``<study>/mlartifacts`` (same form: ``file://`` URI or path) in
    experiments, runs, logged models and trace artifact tags, in one transaction, with a log line per
    prefix. Nothing happens when the locations are already right, when there is no ``mlflow.db``, or
    when the folder has no ``mlartifacts`` (then a warning says so). Returns what was rewritten.
    """
    study_dir = Path(study_dir).resolve()
    db, target = study_dir / MLFLOW_DB, study_dir / ARTIFACTS_DIR
    if not db.is_file():
        return []
    try:
        con = sqlite3.connect(db, timeout=30.0, isolation_level=None)
    except sqlite3.Error as exc:
        raise TrackingError(f"cannot open {db}: {exc}; is the study folder readable?") from None
    try:
        tables = _tables(con)
        if not {"experiments", "runs"} <= tables:
            return []
        roots = _old_roots(con, target)
        if not roots:
            return []
        if not target.is_dir():
            log.warning("MLflow artifacts of %s are recorded under %s, but %s does not exist: figures will not "
                        "be found. Copy the study folder with its %s/ folder", study_dir, ", ".join(roots), target,
                        ARTIFACTS_DIR)
            return []
        done = []
        con.execute("BEGIN IMMEDIATE")
        try:
            for old in roots:
                new = target.as_uri() if old.startswith("file:") else str(target)
                rows = {}
                for table, col, extra in _COLUMNS:
                    if table not in tables:
                        continue
                    cur = con.execute(
                        f"UPDATE {table} SET {col} = ? || substr({col}, ?) "
                        f"WHERE ({col} = ? OR substr({col}, 1, ?) = ?){extra}",
                        (new, len(old) + 1, old, len(old) + 1, old + "/"))
                    rows[table] = cur.rowcount
                done.append(Relocation(old, new, rows))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    except sqlite3.Error as exc:
        raise TrackingError(f"cannot repair the MLflow artifact locations in {db}: {exc}; is another process "
                            "writing it? Retry once it is done") from None
    finally:
        con.close()
    for r in done:
        log.warning("study folder %s was moved: rewrote MLflow artifact locations %s", study_dir, r.describe())
    return done
