"""Reading matrices and time series from .npy, .csv/.tsv/.txt, .mat files and TVB connectivity zips.

Readers raise :class:`ReadProblem` with a message naming the file and what to do; the loaders
prefix the subject id and collect the problems (they never stop at the first one).
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

ARRAY_SUFFIXES = (".npy", ".csv", ".tsv", ".txt", ".mat")

#: default .mat keys tried, in order, per role
MAT_KEYS: dict[str, tuple[str, ...]] = {
    "weights": ("sc", "weights", "SC", "W"),
    "lengths": ("len", "lengths", "tract_lengths", "LEN", "L"),
    "bold": ("tc", "bold", "data", "BOLD"),
    "fc": ("fc", "FC"),
}


class ReadProblem(Exception):
    """A file cannot be read as asked; the message names the file and what to do."""


def split_key(spec: str) -> tuple[str, str | None]:
    """``"path/file.mat:key"`` -> (``"path/file.mat"``, ``"key"``); other specs -> (spec, None)."""
    head, sep, tail = spec.rpartition(":")
    if sep and head.lower().endswith(".mat") and tail and "/" not in tail and "\\" not in tail:
        return head, tail
    return spec, None


def resolve(spec: str, base: Path | None) -> Path:
    p = Path(spec).expanduser()
    if not p.is_absolute() and base is not None:
        p = base / p
    return p


def _read_text(path: Path, text: str) -> np.ndarray:
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise ReadProblem(f"{path}: the file is empty: write the matrix, one row per line")
    first = lines[0]
    delimiter = "\t" if "\t" in first else ("," if "," in first else None)
    rows = []
    try:
        for ln in lines:
            parts = ln.split(delimiter) if delimiter else ln.split()
            rows.append([float(v) if v.strip() else np.nan for v in parts])
    except ValueError as exc:
        raise ReadProblem(
            f"{path}: not a numeric matrix ({exc}): write plain numbers, one row per line, "
            "without header row or column"
        ) from None
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise ReadProblem(f"{path}: rows have different numbers of values {sorted(widths)}: fix the file")
    return np.array(rows, dtype=np.float64)


def _mat_variables(path: Path) -> dict[str, np.ndarray]:
    """Variables of a .mat file (v4-v7 via scipy; v7.3/HDF5 via h5py when installed)."""
    from scipy import io as sio

    try:
        d = sio.loadmat(str(path))
        return {k: v for k, v in d.items() if not k.startswith("__")}
    except NotImplementedError:  # MATLAB v7.3 = HDF5
        try:
            import h5py
        except ImportError:
            raise ReadProblem(
                f"{path}: a MATLAB v7.3 (HDF5) file: install h5py, or re-save it with save(..., '-v7')"
            ) from None
        out: dict[str, np.ndarray] = {}
        with h5py.File(path, "r") as f:
            for k, v in f.items():
                if isinstance(v, h5py.Dataset) and not k.startswith("#"):
                    out[k] = np.asarray(v).T  # HDF5 MATLAB arrays are stored transposed
        return out
    except Exception as exc:  # corrupt file, not a .mat file
        raise ReadProblem(f"{path}: cannot read as a .mat file ({exc}): check the file") from None


def read_array(spec: str, base: Path | None, role: str, key: str | None = None) -> tuple[np.ndarray, str]:
    """Read a 2-D float64 array for ``role`` (weights, lengths, bold, fc).

    ``spec`` is a path (relative to ``base``), optionally ``file.mat:key``. Returns the array and
    the source string recorded in ``Subject.sources`` (the resolved path, plus ``:key`` for .mat).
    """
    spec = str(spec).strip()
    spec, spec_key = split_key(spec)
    key = spec_key or key
    path = resolve(spec, base)
    if not path.is_file():
        raise ReadProblem(
            f"{path}: file not found: check the path (relative paths resolve against the manifest's folder)"
        )
    suffix = path.suffix.lower()
    source = str(path)
    if suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except Exception as exc:
            raise ReadProblem(f"{path}: cannot read as .npy ({exc}): save it with numpy.save") from None
    elif suffix in (".csv", ".tsv", ".txt"):
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            raise ReadProblem(f"{path}: not a text file: save the matrix as plain text numbers") from None
        arr = _read_text(path, text)
    elif suffix == ".mat":
        variables = _mat_variables(path)
        tried = (key,) if key else MAT_KEYS.get(role, ())
        found = next((k for k in tried if k in variables), None)
        if found is None:
            what = f"key {key!r}" if key else f"any of the keys {list(tried)}"
            raise ReadProblem(
                f"{path}: no {what} for {role}; keys found: {sorted(variables)}: "
                f"name the key as '{path.name}:KEY' (or in a {role}_key column)"
            )
        arr = variables[found]
        source = f"{path}:{found}"
    else:
        raise ReadProblem(
            f"{path}: unsupported file type {suffix!r} for {role}: use one of {list(ARRAY_SUFFIXES)}"
            + (" or a TVB connectivity .zip" if role == "weights" else "")
        )
    try:
        arr = np.asarray(arr, dtype=np.float64)
    except (TypeError, ValueError):
        raise ReadProblem(f"{path}: {role} is not numeric: store a numeric matrix") from None
    if arr.ndim != 2:
        raise ReadProblem(f"{path}: {role} must be a 2-D matrix, got shape {arr.shape}: store a 2-D matrix")
    return arr, source


@dataclass
class TVBConnectivity:
    weights: np.ndarray
    lengths: np.ndarray
    labels: list[str] | None
    centres: np.ndarray | None
    source: str


def _zip_member(zf: zipfile.ZipFile, names: Sequence[str]) -> str | None:
    by_base = {Path(n).name: n for n in zf.namelist() if not n.endswith("/")}
    for name in names:
        if name in by_base:
            return by_base[name]
    return None


def read_tvb_zip(spec: str, base: Path | None) -> TVBConnectivity:
    """Read a TVB connectivity zip (weights.txt, tract_lengths.txt, centres.txt) as tvb-data ships it."""
    path = resolve(str(spec).strip(), base)
    if not path.is_file():
        raise ReadProblem(
            f"{path}: file not found: check the path (relative paths resolve against the manifest's folder)"
        )
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise ReadProblem(f"{path}: not a valid zip file: use a TVB connectivity zip") from None
    with zf:
        members = sorted(n for n in zf.namelist() if not n.endswith("/"))

        def text(names: Sequence[str], what: str, required: bool = True) -> tuple[str, str] | None:
            m = _zip_member(zf, names)
            if m is None:
                if required:
                    raise ReadProblem(
                        f"{path}: no {what} ({' or '.join(names)}) in the zip; members: {members}: "
                        "use a TVB connectivity zip"
                    )
                return None
            return m, zf.read(m).decode("utf-8", errors="replace")

        wm, wt = text(["weights.txt"], "weights")  # type: ignore[misc]
        lm, lt = text(["tract_lengths.txt", "tract_length.txt", "distances.txt"], "tract lengths")  # type: ignore[misc]
        weights = _read_text(Path(f"{path}!{wm}"), wt)
        lengths = _read_text(Path(f"{path}!{lm}"), lt)
        labels: list[str] | None = None
        centres: np.ndarray | None = None
        c = text(["centres.txt", "centers.txt"], "centres", required=False)
        if c is not None:
            rows = [ln.split() for ln in c[1].splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
            labels = [r[0] for r in rows]
            try:
                centres = np.array([[float(v) for v in r[1:4]] for r in rows])
            except ValueError:
                centres = None
    return TVBConnectivity(weights, lengths, labels, centres, str(path))


def read_labels(spec: str, base: Path | None) -> tuple[list[str], str]:
    """Region labels from a text file: one per line (the first whitespace/comma field of each line)."""
    path = resolve(str(spec).strip(), base)
    if not path.is_file():
        raise ReadProblem(f"{path}: labels file not found: check the path")
    out = []
    for ln in io.StringIO(path.read_text()):
        ln = ln.strip()
        if ln and not ln.startswith("#"):
            out.append(re.split(r"[\t,]", ln)[0].strip())
    return out, str(path)
