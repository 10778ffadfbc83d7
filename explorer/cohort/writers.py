"""Writing a cohort back to disk as a manifest (e.g. synthetic twins to use as a study's ``cohort.source``)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from explorer.errors import CohortError

from .loaders import MANIFEST_COLUMNS
from .sessions import session_id
from .types import Cohort

MANIFEST_FILE = "manifest.csv"


def _cell(value: Any, where: str) -> str:
    """A phenotype value as a manifest cell: numbers as repr(float) (read back as the same float)."""
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, float, np.integer, np.floating)):
        v = float(value)
        return "" if math.isnan(v) else repr(v)
    if isinstance(value, str):
        text = value
    elif isinstance(value, (list, tuple, np.ndarray)):
        text = json.dumps(np.asarray(value).tolist())
    else:
        text = str(value)
    if "\n" in text or "\r" in text:
        raise CohortError(f"{where}: value {text!r} holds a line break: a manifest cell cannot store it")
    return text


def _check_label(label: str, sid: str) -> None:
    if (not label or label != label.strip() or label.startswith("#")
            or any(c in label for c in "\t,\n\r")):
        raise CohortError(
            f"subject {sid}: region label {label!r} cannot be written to a labels file (one per line, no "
            "tab, comma, line break, leading '#' or surrounding spaces): rename the region"
        )


def save_manifest(cohort: Cohort, folder: str | Path) -> Path:
    """Write ``cohort`` as a manifest that :func:`explorer.cohort.load_cohort` reads back; returns
    the path of ``folder/manifest.csv``.

    Per subject, under ``folder/<id>/``: ``weights.npy``, ``lengths.npy``, ``labels.txt`` (one label
    per line), and ``bold.npy`` (regions x time, as loaders expect) or, for an FC-only subject,
    ``fc.npy``. ``manifest.csv`` has the columns subject, session (when some subject has one),
    weights, lengths, labels, bold, fc, tr_s (as needed) and every phenotype column (union over
    subjects; empty where a subject has none). Paths are relative to the manifest, so the folder can
    be moved.

    The arrays written are the *prepared* ones: regions already selected and weights already
    normalised. Load the manifest back with ``cohort.options.replace(drop=[], normalise="none",
    split=1)`` (in a study config: ``drop: []``, ``normalise: none``; ``split`` 1 since the
    sessions are already in the manifest) and you get the same ids, participants, sessions, arrays,
    labels, tr_s, FC/FCD (from the same BOLD with the same ``features``) and phenotype.
    (``zero_diagonal``/``symmetrise``/``normalise: max`` are harmless when they were applied
    already, but ``log1p+max`` is not, and ``drop`` would drop again.)

    Phenotype: numbers are written as floats and come back as floats (ints too); strings come back
    as strings unless they look like a number or NA; lists are written as JSON text.

    Raises CohortError when an id cannot be a folder name, a phenotype column has a manifest
    column's name (subject, session, weights, ...), a label cannot be written one per line, or a
    subject's id is not ``f"{participant}_ses-{session}"`` while it has a session.
    """
    folder = Path(folder).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    pheno_cols: list[str] = []
    for s in cohort:
        for k in s.phenotype:
            if k in MANIFEST_COLUMNS:
                raise CohortError(
                    f"subject {s.id}: phenotype column {k!r} has the name of a manifest column "
                    f"({list(MANIFEST_COLUMNS)}): rename it before saving"
                )
            if k not in pheno_cols:
                pheno_cols.append(k)
    has_session = any(s.session is not None for s in cohort)
    has_bold = any(s.bold is not None for s in cohort)
    has_fc = any(s.bold is None and s.fc is not None for s in cohort)
    cols = ["subject"] + (["session"] if has_session else []) + ["weights", "lengths", "labels"]
    cols += (["bold", "tr_s"] if has_bold else []) + (["fc"] if has_fc else []) + pheno_cols

    rows: list[dict[str, str]] = []
    for s in cohort:
        sid = s.id
        if not sid or sid in (".", "..") or any(c in sid for c in "/\\\n\r") or sid != sid.strip():
            raise CohortError(f"subject id {sid!r} cannot be a folder name: rename the subject")
        row: dict[str, str] = {}
        if s.session is not None:
            if sid != session_id(s.participant, s.session):
                raise CohortError(
                    f"subject {sid}: has session {s.session!r} of participant {s.participant!r} but its id is not "
                    f"{session_id(s.participant, s.session)!r}: a manifest could not give it back its id"
                )
            row.update(subject=s.participant, session=s.session)
        else:
            row["subject"] = sid
        for label in s.labels:
            _check_label(label, sid)
        d = folder / sid
        d.mkdir(exist_ok=True)
        np.save(d / "weights.npy", np.asarray(s.weights, dtype=np.float64))
        np.save(d / "lengths.npy", np.asarray(s.lengths, dtype=np.float64))
        (d / "labels.txt").write_text("".join(f"{lab}\n" for lab in s.labels), encoding="utf-8")
        row.update(weights=f"{sid}/weights.npy", lengths=f"{sid}/lengths.npy", labels=f"{sid}/labels.txt")
        if s.bold is not None:
            np.save(d / "bold.npy", np.asarray(s.bold, dtype=np.float64).T)  # regions x time
            row["bold"] = f"{sid}/bold.npy"
            row["tr_s"] = "" if s.tr_s is None else repr(float(s.tr_s))
        elif s.fc is not None:
            np.save(d / "fc.npy", np.asarray(s.fc, dtype=np.float64))
            row["fc"] = f"{sid}/fc.npy"
        for k in pheno_cols:
            row[k] = _cell(s.phenotype.get(k), f"subject {sid}: phenotype {k!r}")
        rows.append(row)

    path = folder / MANIFEST_FILE
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=cols, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path
