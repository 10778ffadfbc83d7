"""Statistics of the twin report: pure numpy/scipy, no side effects.

Connectivity matrices are square ``(N, N)``; they are compared over the strict upper triangle.
An identification matrix is ``(n, n)`` with row ``i`` = twin (simulation) of subject ``i`` and
column ``j`` = empirical subject ``j``; entry = similarity (e.g. Pearson r of FCs).

Identification counts row ``i`` as correct only if ``matrix[i, i]`` is strictly greater than every
other entry of the row: a tie is a failure (conservative). NaN entries count as ``-inf``.
Permutation p-values are exact (all ``n!`` permutations) for small ``n`` and Monte Carlo with
``p = (1 + count) / (1 + n_perm)`` otherwise; the method is returned as a string to report.
"""

from __future__ import annotations

import itertools
import math
from typing import Iterator, Sequence

import numpy as np
from scipy import stats

__all__ = [
    "upper",
    "edge_index",
    "similarity_matrix",
    "residual",
    "identification",
    "identification_p_value",
    "icc_2_1",
    "edgewise_icc",
    "ledoit_wolf",
    "partial_correlation",
    "spearman_permutation",
    "fdr_bh",
    "rel_error",
]

_CHUNK = 1000  # permutations per vectorised block


def upper(a: np.ndarray) -> np.ndarray:
    """Strict upper triangle (diagonal excluded) of a square ``(N, N)`` matrix, as 1-D ``N(N-1)/2``."""
    a = np.asarray(a)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"upper: expected a square 2-D matrix, got shape {a.shape}")
    return a[np.triu_indices(a.shape[0], k=1)]


def edge_index(mats: Sequence[np.ndarray], mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the edges that compare ``(N, N)`` matrices, row-major.

    The strict upper triangle when every matrix is symmetric (FC, partial correlation), else every
    off-diagonal edge (an asymmetric matrix such as EC, where ``[i, j]`` and ``[j, i]`` differ).
    ``mask`` (boolean ``(N, N)``) keeps only the edges it marks, e.g. the connections every EC was
    fitted on, so that the mask's own pattern cannot tell matrices apart. NaN entries do not decide
    symmetry.
    """
    if len(mats) == 0:
        raise ValueError("edge_index: needs at least one matrix")
    shapes = {np.shape(m) for m in mats}
    n = np.shape(mats[0])[0] if len(shapes) == 1 and len(next(iter(shapes))) == 2 else -1
    if len(shapes) != 1 or shapes != {(n, n)}:
        raise ValueError(f"edge_index: all matrices must be square with the same N, got shapes {sorted(shapes)}")
    symmetric = all(np.allclose(m, np.asarray(m).T, equal_nan=True) for m in mats)
    keep = np.triu(np.ones((n, n), dtype=bool), k=1) if symmetric else ~np.eye(n, dtype=bool)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (n, n):
            raise ValueError(f"edge_index: mask has shape {mask.shape}, the matrices ({n}, {n})")
        keep &= mask
    return np.nonzero(keep)


def _zrows(mats: Sequence[np.ndarray], n: int | None,
           edges: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, int]:
    """Edge vectors (default: upper triangles) as unit-norm centred rows ``(len(mats), M)``;
    constant rows become NaN."""
    if len(mats) == 0:
        raise ValueError("similarity_matrix: needs at least one matrix on each side")
    shapes = {np.shape(m) for m in mats}
    if len(shapes) != 1 or (n is not None and shapes != {(n, n)}):
        raise ValueError(f"similarity_matrix: all matrices must be square with the same N, got shapes {sorted(shapes)}")
    if edges is None:
        x = np.stack([upper(m) for m in mats]).astype(float)
    else:
        x = np.stack([np.asarray(m, dtype=float)[edges] for m in mats])
    x = x - x.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(norm > 0, x / norm, np.nan)
    return z, np.shape(mats[0])[0]


def similarity_matrix(rows: Sequence[np.ndarray], cols: Sequence[np.ndarray],
                      edges: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """``(n_rows, n_cols)`` Pearson r between ``upper(rows[i])`` and ``upper(cols[j])``.

    All matrices are ``(N, N)`` with the same N. A constant (or non-finite) upper triangle gives NaN in
    its row/column. ``edges`` (``(rows, cols)`` indices, see :func:`edge_index`) compares those
    edges instead of the upper triangle, e.g. every off-diagonal edge of asymmetric EC matrices.
    """
    zr, n = _zrows(rows, None, edges)
    zc, _ = _zrows(cols, n, edges)
    return np.clip(zr @ zc.T, -1.0, 1.0)


def residual(mats: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Each matrix minus the mean of the list (the cohort-mean pattern removed).

    The mean skips NaN matrices (a twin whose every re-simulation diverged), so one failed twin
    leaves the others' residuals intact; its own residual stays NaN.
    """
    if len(mats) == 0:
        return []
    arr = np.stack([np.asarray(m, dtype=float) for m in mats])
    finite = np.isfinite(arr).all(axis=(1, 2))
    mean = arr[finite].mean(axis=0) if finite.any() else np.full(arr.shape[1:], np.nan)
    return [m - mean for m in arr]


def _square(matrix: np.ndarray) -> np.ndarray:
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] == 0:
        raise ValueError(f"identification: expected a non-empty square (n, n) matrix, got shape {m.shape}")
    return np.where(np.isnan(m), -np.inf, m)


def _strict_argmax(m: np.ndarray) -> np.ndarray:
    """Per row, the column of its unique maximum, or -1 when the maximum is tied."""
    best = m.argmax(axis=1)
    unique = (m == m.max(axis=1, keepdims=True)).sum(axis=1) == 1
    return np.where(unique, best, -1)


def _permutations(n: int, n_perm: int, seed: int, exact_max_n: int) -> tuple[Iterator[np.ndarray], int, str]:
    """Blocks of permutations of ``range(n)`` (rows), their total count and the method string."""
    if n <= exact_max_n:
        total = math.factorial(n)
        perms = np.array(list(itertools.permutations(range(n))), dtype=np.intp).reshape(total, n)
        return iter([perms]), total, f"exact over all {total} permutations"
    if n_perm < 1:
        raise ValueError(f"n_perm must be >= 1, got {n_perm}")
    rng = np.random.default_rng(seed)

    def blocks() -> Iterator[np.ndarray]:
        for start in range(0, n_perm, _CHUNK):
            size = min(_CHUNK, n_perm - start)
            yield rng.permuted(np.tile(np.arange(n), (size, 1)), axis=1)

    return blocks(), n_perm, f"Monte Carlo, {n_perm} permutations"


def _perm_p(count: int, total: int, exact: bool) -> float:
    return count / total if exact else (1 + count) / (1 + total)


def identification_p_value(
    matrix: np.ndarray, n_perm: int = 10000, seed: int = 0, exact_max_n: int = 8
) -> tuple[float, str]:
    """Permutation p of the twin->subject identification accuracy; returns ``(p, method)``.

    Null: twin/subject labels unrelated. Relabelling subjects by a permutation pi makes row i correct
    iff its strict argmax is pi(i); p = fraction of permutations with accuracy >= observed.
    """
    m = _square(matrix)
    n = m.shape[0]
    best = _strict_argmax(m)
    observed = int((best == np.arange(n)).sum())
    blocks, total, method = _permutations(n, n_perm, seed, exact_max_n)
    count = sum(int(((perms == best).sum(axis=1) >= observed).sum()) for perms in blocks)
    return _perm_p(count, total, n <= exact_max_n), method


def identification(matrix: np.ndarray, *, n_perm: int = 10000, seed: int = 0) -> dict:
    """Identifiability of an ``(n, n)`` twin x subject similarity matrix.

    Keys: ``accuracy`` (rows whose strict max is on the diagonal), ``accuracy_subject_to_twin``
    (same over columns), ``i_diff`` (mean diagonal - mean off-diagonal, Amico & Goni 2018; NaN
    entries ignored, NaN for n = 1), ``p_value`` / ``p_method`` (:func:`identification_p_value` of
    the accuracy) and ``n``.
    """
    raw = np.asarray(matrix, dtype=float)
    m = _square(raw)
    n = m.shape[0]
    idx = np.arange(n)
    diag, off = np.diag(raw), raw[~np.eye(n, dtype=bool)]
    diag, off = diag[~np.isnan(diag)], off[~np.isnan(off)]
    i_diff = float(diag.mean() - off.mean()) if diag.size and off.size else math.nan
    p, method = identification_p_value(raw, n_perm=n_perm, seed=seed)
    return {
        "accuracy": float((_strict_argmax(m) == idx).mean()),
        "accuracy_subject_to_twin": float((_strict_argmax(m.T) == idx).mean()),
        "i_diff": i_diff,
        "p_value": p,
        "p_method": method,
        "n": n,
    }


def icc_2_1(data: np.ndarray) -> float:
    """ICC(2,1) (Shrout & Fleiss 1979: two-way random, absolute agreement, single measure).

    ``data`` is ``(n_subjects, k_sessions)``; rows with any NaN are dropped. NaN if n < 2 or k < 2
    (or the data have no variance at all).
    """
    x = np.asarray(data, dtype=float)
    if x.ndim != 2:
        raise ValueError(f"icc_2_1: expected (n_subjects, k_sessions), got shape {x.shape}")
    x = x[~np.isnan(x).any(axis=1)]
    n, k = x.shape
    if n < 2 or k < 2:
        return math.nan
    gm = x.mean()
    ssr = k * ((x.mean(axis=1) - gm) ** 2).sum()
    ssc = n * ((x.mean(axis=0) - gm) ** 2).sum()
    sse = ((x - gm) ** 2).sum() - ssr - ssc
    msr, msc, mse = ssr / (n - 1), ssc / (k - 1), sse / ((n - 1) * (k - 1))
    den = msr + (k - 1) * mse + k * (msc - mse) / n
    return float((msr - mse) / den) if den != 0 else math.nan


def edgewise_icc(mats_a: Sequence[np.ndarray], mats_b: Sequence[np.ndarray],
                 mask: np.ndarray | None = None) -> np.ndarray:
    """ICC(2,1) of every edge over participants, from two sessions' ``(N, N)`` matrices.

    ``mats_a[i]`` and ``mats_b[i]`` are participant i's matrices in sessions a and b. The edges are
    :func:`edge_index` of all the matrices (upper triangle when all are symmetric, every off-diagonal
    edge otherwise, within ``mask``), in its order. Per edge the same as :func:`icc_2_1` of its
    ``(n, 2)`` values: a participant with a NaN on that edge is dropped there; NaN where fewer than 2
    remain or the edge has no variance (e.g. zero in every matrix).
    """
    if len(mats_a) != len(mats_b):
        raise ValueError(f"edgewise_icc: {len(mats_a)} matrices in session a but {len(mats_b)} in session b")
    if len(mats_a) == 0:
        raise ValueError("edgewise_icc: needs the matrices of at least one participant")
    edges = edge_index(list(mats_a) + list(mats_b), mask)
    x = np.stack([np.stack([np.asarray(m, dtype=float)[edges] for m in mats]) for mats in (mats_a, mats_b)],
                 axis=-1).swapaxes(0, 1)  # (E, n, 2)
    n, k = x.shape[1], 2
    out = np.full(x.shape[0], np.nan)
    clean = ~np.isnan(x).any(axis=(1, 2))
    if n >= 2 and clean.any():
        c = x[clean]
        gm = c.mean(axis=(1, 2), keepdims=True)
        ssr = k * ((c.mean(axis=2, keepdims=True) - gm) ** 2).sum(axis=(1, 2))
        ssc = n * ((c.mean(axis=1, keepdims=True) - gm) ** 2).sum(axis=(1, 2))
        sse = ((c - gm) ** 2).sum(axis=(1, 2)) - ssr - ssc
        msr, msc, mse = ssr / (n - 1), ssc / (k - 1), sse / ((n - 1) * (k - 1))
        den = msr + (k - 1) * mse + k * (msc - mse) / n
        with np.errstate(invalid="ignore", divide="ignore"):
            out[clean] = np.where(den != 0, (msr - mse) / den, np.nan)
    for e in np.nonzero(~clean)[0]:
        out[e] = icc_2_1(x[e])
    return out


def ledoit_wolf(x: np.ndarray) -> tuple[np.ndarray, float]:
    """Ledoit-Wolf shrunk covariance of ``(T, N)`` samples, and its shrinkage in [0, 1].

    ``(1 - d) S + d mu I``: S the column-centred sample covariance (divided by T), mu its mean
    variance, d the optimal intensity of Ledoit & Wolf, J. Multivar. Anal. 88 (2004) 365-411 (the
    same estimate as scikit-learn's ``ledoit_wolf``).
    """
    x = np.asarray(x, dtype=float)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"ledoit_wolf: expected (T >= 2, N) samples, got shape {x.shape}")
    t, p = x.shape
    x = x - x.mean(axis=0)
    s = x.T @ x / t
    x2 = x ** 2
    var = x2.sum(axis=0) / t
    mu = var.sum() / p
    delta_ = float((s ** 2).sum())
    delta = (delta_ - 2.0 * mu * var.sum() + p * mu ** 2) / p
    beta = min(((x2.T @ x2).sum() / t - delta_) / (p * t), delta)
    d = 0.0 if beta == 0 else float(beta / delta)
    return (1.0 - d) * s + d * mu * np.eye(p), d


def partial_correlation(ts: np.ndarray, shrinkage: float | None = None) -> np.ndarray:
    """``(N, N)`` partial correlations of a preprocessed ``(T, N)`` series, unit diagonal.

    Each region is z-scored; their correlation matrix is regularised by Ledoit-Wolf shrinkage towards
    the identity (:func:`ledoit_wolf`, or a fixed ``shrinkage`` in [0, 1]) so that its inverse P (the
    precision matrix) exists even when T is not much larger than N; then
    ``pc[i, j] = -P[i, j] / sqrt(P[i, i] P[j, j])``, the correlation of regions i and j once every
    other region is regressed out. Raises ValueError for a constant or non-finite region.
    """
    x = np.asarray(ts, dtype=float)
    if x.ndim != 2 or x.shape[0] < 3:
        raise ValueError(f"partial_correlation: expected a (T >= 3, N) series, got shape {x.shape}")
    finite = np.isfinite(x).all(axis=0)
    sd = np.where(finite, np.nan_to_num(x).std(axis=0), 0.0)
    bad = np.nonzero(sd <= 0)[0]
    if bad.size:
        raise ValueError(f"partial_correlation: regions {bad.tolist()[:10]} are constant or not finite; "
                         "drop them or check the preprocessing")
    z = (x - x.mean(axis=0)) / sd
    if shrinkage is None:
        cov, _ = ledoit_wolf(z)
    elif 0.0 <= shrinkage <= 1.0:
        s = z.T @ z / z.shape[0]
        cov = (1.0 - shrinkage) * s + shrinkage * np.trace(s) / s.shape[0] * np.eye(s.shape[0])
    else:
        raise ValueError(f"partial_correlation: shrinkage must lie in [0, 1], got {shrinkage}")
    prec = np.linalg.inv(cov)
    d = np.sqrt(np.diag(prec))
    pc = -prec / np.outer(d, d)
    pc = (pc + pc.T) / 2  # exact symmetry (inv is symmetric only to rounding)
    np.fill_diagonal(pc, 1.0)
    return pc


def spearman_permutation(x: np.ndarray, y: np.ndarray, n_perm: int = 10000, seed: int = 0) -> dict:
    """Spearman rho of paired samples with a two-sided permutation p of ``|rho|``.

    Pairs with a NaN are dropped. Exact over all permutations of y for n <= 8, else Monte Carlo.
    Keys: ``n``, ``rho``, ``p_value``, ``p_method``; rho and p are NaN when n < 3 or a side is constant.
    """
    x, y = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"spearman_permutation: x and y differ in length ({x.size} vs {y.size})")
    keep = ~(np.isnan(x) | np.isnan(y))
    rx, ry = stats.rankdata(x[keep]), stats.rankdata(y[keep])
    n = int(rx.size)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    den = float(np.linalg.norm(rx) * np.linalg.norm(ry))
    if n < 3 or den == 0:
        return {"n": n, "rho": math.nan, "p_value": math.nan, "p_method": "not computed (n < 3 or constant)"}
    rho = float(np.clip(rx @ ry / den, -1.0, 1.0))
    blocks, total, method = _permutations(n, n_perm, seed, 8)
    thr = abs(rho) - 1e-12
    count = sum(int((np.abs(ry[perms] @ rx / den) >= thr).sum()) for perms in blocks)
    return {"n": n, "rho": rho, "p_value": _perm_p(count, total, n <= 8), "p_method": method}


def fdr_bh(p_values: Sequence[float]) -> np.ndarray:
    """Benjamini-Hochberg q-values; NaN stays NaN, the other p-values are adjusted among themselves."""
    p = np.asarray(p_values, dtype=float).ravel()
    q = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        q[ok] = stats.false_discovery_control(p[ok], method="bh")
    return q


def rel_error(true: np.ndarray, recovered: np.ndarray) -> np.ndarray:
    """Elementwise ``|recovered - true| / |true|``; NaN where ``true == 0``."""
    t, r = np.asarray(true, dtype=float), np.asarray(recovered, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(t == 0, np.nan, np.abs(r - t) / np.abs(t))
