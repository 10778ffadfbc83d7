"""Batch scoring: :func:`fit_scores_batch` scores ``B`` simulated BOLD series against one subject at once,
with the results of ``B`` calls of :func:`explorer.scoring.scores.fit_scores` (to rounding: ~1e-15).

Each row's preprocessing is compiled (:mod:`explorer.scoring.columns`); FC, FCD and the scores are
batched BLAS products and vectorised numpy.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import signal

from explorer.scoring.columns import centre_columns, detrend_columns
from explorer.scoring.features import bandpass_sos, n_windows
from explorer.scoring.objectives import SCORES
from explorer.scoring.options import FeatureOptions
from explorer.scoring.scores import discarded_trs, upper_triangle

__all__ = ["fit_scores_batch"]


#: working memory (bytes) that :func:`fit_scores_batch` allows itself per chunk of FCD windows
_BATCH_WORK_BYTES = 64 * 2**20


def _preprocess_row(x: np.ndarray, tr_s: float, opts: FeatureOptions, unit: np.ndarray) -> np.ndarray:
    """:func:`~explorer.scoring.features.preprocess` of one ``(T, N)`` float64 row (may overwrite x; returns the result), and into
    ``unit`` (``(T, N)``) its columns centred and scaled to unit norm, for :func:`_fc_row`.

    Compiled passes (:mod:`explorer.scoring.columns`) over one trial at a time (~0.4 MB at 700 TRs x 80
    regions: it stays in L2).
    """
    if opts.detrend:
        detrend_columns(x)
    if opts.bandpass is not None:
        x = np.ascontiguousarray(signal.sosfiltfilt(bandpass_sos(tr_s, opts), x, axis=0))
    if opts.zscore:
        centre_columns(x, x, False)
    centre_columns(x, unit, True)
    return x


def _fc_row(unit: np.ndarray, fisher_z: bool, out: np.ndarray) -> None:
    """:func:`~explorer.scoring.features.fc` into ``out`` ``(N, N)`` from the unit columns of :func:`_preprocess_row`: one symmetric
    BLAS product (``unit.T @ unit``)."""
    np.matmul(unit.T, unit, out=out)
    np.clip(out, -1.0, 1.0, out=out)
    idx = np.arange(out.shape[0])
    out[idx, idx] = np.where(np.isnan(unit[0]), np.nan, 1.0)
    if fisher_z:
        np.arctanh(np.clip(out, -1.0 + 1e-7, 1.0 - 1e-7), out=out)
        out[idx, idx] = 0.0


class _FcdWork:
    """Buffers for :func:`_fcd_upper`, reused across the rows of a batch (no page faults per row)."""

    def __init__(self, n_time: int, n: int, window: int, step: int):
        self.n, self.window, self.step = n, window, step
        self.w = n_windows(n_time, window, step)
        self.chunk = max(1, min(self.w, _BATCH_WORK_BYTES // (8 * n * (window + n))))
        self.centred = np.empty((self.chunk, n, window))
        self.fcs = np.empty((self.chunk, n, n))
        self.upper = np.empty((self.w, n * (n - 1) // 2))
        self.iu_w = _triu_flat(self.w)
        self.iu_w_rows, self.iu_w_cols = np.divmod(self.iu_w, self.w)


def _fcd_upper(p: np.ndarray, work: _FcdWork) -> np.ndarray:
    """The strict upper triangle of ``explorer.scoring.features.fcd(p, work.window, work.step)`` of ``(T, N)`` p, row-major.

    Windows are strided views of p; their FCs come from batched matrix products (in chunks of
    windows that bound memory) and the FCD from one symmetric product of their upper triangles.
    """
    n, window, w = work.n, work.window, work.w
    iu_n = _triu_flat(n)
    u = work.upper
    views = np.lib.stride_tricks.sliding_window_view(p, window, axis=0)[::work.step]  # (W, N, window), no copy
    for a in range(0, w, work.chunk):
        win = views[a:a + work.chunk]
        k = len(win)
        c = work.centred[:k]
        np.subtract(win, win.mean(axis=2, keepdims=True), out=c)  # as fcd(): a constant window gives exact 0
        norm = np.sqrt(np.einsum("wnt,wnt->wn", c, c))
        c /= np.where(norm > 0, norm, np.nan)[:, :, None]
        g = np.matmul(c, c.transpose(0, 2, 1), out=work.fcs[:k])  # window FCs
        np.take(g.reshape(k, n * n), iu_n, axis=1, out=u[a:a + k], mode="clip")
    u -= u.mean(axis=1, keepdims=True)
    norm = np.sqrt(np.einsum("wm,wm->w", u, u))
    norm = np.where(norm > 0, norm, np.nan)
    d = u @ u.T  # symmetric: one syrk
    out = d.reshape(-1)[work.iu_w]
    out /= norm[work.iu_w_rows] * norm[work.iu_w_cols]
    np.clip(out, -1.0, 1.0, out=out)
    return out


_TRIU: dict[int, np.ndarray] = {}


def _triu_flat(n: int) -> np.ndarray:
    """Flat (row-major) indices of the strict upper triangle of an ``(n, n)`` matrix (cached, read-only)."""
    got = _TRIU.get(n)
    if got is None:
        i, j = np.triu_indices(n, k=1)
        got = i * n + j
        got.flags.writeable = False
        if len(_TRIU) < 64:
            _TRIU[n] = got
    return got


def _ks_rows(x: np.ndarray, y_sorted: np.ndarray) -> np.ndarray:
    """:func:`~explorer.scoring.scores.ks_statistic` of each row of ``(R, n)`` x against one sorted sample y: ``(R,)``.

    Exactly the values of ``ks_statistic`` (the same pairs of counts, divided alike), with one sort
    of the whole batch and, per row, a search of the y values among its sorted x. Between two
    consecutive distinct y values F_y is constant, so |F_x - F_y| is largest at the left end (the y
    value) or at the largest x before the next y value: F_x there is #x < next y.
    """
    r, n = x.shape
    m = y_sorted.size
    xs = np.sort(x, axis=1)
    bins = np.arange(m + 1)
    last = np.ones(m + 1, dtype=bool)  # bin b = [y_(b-1), y_(b)): its y value is the last of its ties
    last[1:m] = y_sorted[:-1] < y_sorted[1:]
    fy = bins[last] / m
    out = np.empty(r)
    for i in range(r):
        below = np.searchsorted(xs[i], y_sorted, side="left")  # #x < each y value
        upto = below
        if np.any(xs[i][np.minimum(below, n - 1)] == y_sorted):  # an x equals a y value
            upto = np.searchsorted(xs[i], y_sorted, side="right")
        at_x = np.abs(np.append(below, n)[last] / n - fy).max()
        at_y = np.abs(upto[last[1:]] / n - fy[1:]).max()  # (#x <= y, #y <= y) at each distinct y value
        out[i] = max(at_x, at_y)
    return out


def _fc_r_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """:func:`~explorer.scoring.scores.fc_r` of each row of ``(R, M)`` upper triangles x against one upper triangle y."""
    out = np.full(x.shape[0], np.nan)
    if not np.all(np.isfinite(y)):
        return out
    ok = np.all(np.isfinite(x), axis=1)
    xc = x[ok] - x[ok].mean(axis=1, keepdims=True)
    yc = y - y.mean()
    den = np.sqrt(np.einsum("rm,rm->r", xc, xc) * float(yc @ yc))
    with np.errstate(invalid="ignore", divide="ignore"):
        out[ok] = np.where(den == 0.0, np.nan, np.clip((xc @ yc) / den, -1.0, 1.0))
    return out


def fit_scores_batch(
    sim_bold: np.ndarray,
    tr_s: float,
    emp_fc: np.ndarray | None,
    emp_fcd: np.ndarray | None,
    opts: FeatureOptions | None = None,
    fc_mean: np.ndarray | None = None,
) -> tuple[list[dict[str, float]], np.ndarray]:
    """:func:`~explorer.scoring.scores.fit_scores` of ``B`` simulated BOLD series ``(B, T, N)`` (one TR) against one subject, at once.

    Returns ``(scores, sim_fc)``: ``scores[b]`` is ``fit_scores(sim_bold[b], ...)`` (the same keys,
    values equal to ~1e-15, the same NaN rules: a non-finite or constant-region row gives all-NaN
    scores, never raising) and ``sim_fc`` the ``(B, N, N)`` float64 simulated FCs, as
    ``fit_scores(..., return_fc=True)`` returns them (all NaN for a non-finite row, NaN rows and
    columns for a constant region). ``emp_fc=None`` gives NaN scores and the FCs alone.

    Each row is preprocessed by compiled passes over that row alone (it stays in the L2 cache) and its
    FC is one symmetric BLAS product; the FC scores are vectorised over the rows; each row's FCD
    takes one batched product over its windows' strided views and one symmetric product of their
    FCs' upper triangles; the KS distances sort the whole batch at once and need no merge with the
    empirical values. Working memory is one row's (two ``T x N`` float64 arrays) besides the input,
    the ``B x N x N`` FCs returned and, with an FCD, ``W x (N (N-1)/2 + W)`` float64 (~8 MB for 700
    TRs, 80 regions, window 30, step 3) plus ``W (W-1)/2`` per row of ``W`` windows.
    Any real dtype is accepted and computed in float64. The cost is dominated by the FCD (two
    float64 BLAS products per row), so it scales linearly with ``B``; without ``emp_fcd`` a row costs
    a tenth as much (~0.25 ms at 700 TRs x 80 regions on one Zen 4 core).
    Raises SimulationError when the kept series is too short (as :func:`~explorer.scoring.scores.fit_scores`), ConfigError
    for a band-pass above Nyquist, ValueError on a shape mismatch.
    """
    opts = opts or FeatureOptions()
    x = np.asarray(sim_bold)
    if x.ndim != 3:
        raise ValueError(f"simulated BOLD batch must be (batch, time, region), got shape {x.shape}")
    b, _, n = x.shape
    if emp_fc is not None:
        emp_fc = np.asarray(emp_fc, dtype=np.float64)
        if emp_fc.shape != (n, n):
            raise ValueError(f"simulated BOLD has {n} regions but the empirical FC is {emp_fc.shape}")
        if fc_mean is not None:
            fc_mean = np.asarray(fc_mean, dtype=np.float64)
            if fc_mean.shape != (n, n):
                raise ValueError(f"simulated BOLD has {n} regions but the cohort-mean FC is {fc_mean.shape}")
    x = x[:, discarded_trs(x.shape[1], tr_s, opts, emp_fcd is not None):]
    t = x.shape[1]
    scores = [{k: math.nan for k in SCORES} for _ in range(b)]
    sim_fc = np.full((b, n, n), np.nan)
    ys = None  # sorted empirical FCD values, None when fcd_ks is NaN for every row
    if emp_fc is not None and emp_fcd is not None:
        ys = upper_triangle(emp_fcd)
        ys = np.sort(ys) if ys.size and np.all(np.isfinite(ys)) else None
    good = np.flatnonzero(np.all(np.isfinite(x), axis=(1, 2)))
    work = _FcdWork(t, n, opts.fcd_window, opts.fcd_step) if ys is not None and good.size else None
    unit = np.empty((t, n))
    ok, fcd_rows = [], []  # the rows with no constant region (scored), and their FCDs' upper triangles
    with np.errstate(invalid="ignore", divide="ignore"):
        for i in good:
            p = _preprocess_row(np.array(x[i], dtype=np.float64), tr_s, opts, unit)
            _fc_row(unit, opts.fisher_z, sim_fc[i])
            if emp_fc is None or np.isnan(p[0]).any():  # z-scoring made a constant region NaN
                continue
            ok.append(i)
            if work is not None:
                fcd_rows.append(_fcd_upper(p, work))
    if not ok:
        return scores, sim_fc
    ok = np.array(ok)
    iu = _triu_flat(n)
    up = sim_fc[ok].reshape(ok.size, n * n)[:, iu]
    e = emp_fc.reshape(-1)[iu]
    r = _fc_r_rows(up, e)
    rmse = np.sqrt(np.mean((up - e) ** 2, axis=1))
    resid = np.full(ok.size, np.nan)
    if fc_mean is not None:
        mu = fc_mean.reshape(-1)[iu]
        resid = _fc_r_rows(up - mu, e - mu)
    ks = np.full(ok.size, np.nan)
    if fcd_rows:
        d = np.stack(fcd_rows)
        fin = np.flatnonzero(np.all(np.isfinite(d), axis=1)) if d.shape[1] else np.empty(0, dtype=int)
        if fin.size:
            ks[fin] = _ks_rows(d[fin], ys)
    for j, i in enumerate(ok):
        s = scores[i]
        s["fc_r"], s["fc_rmse"], s["fcd_ks"] = float(r[j]), float(rmse[j]), float(ks[j])
        s["fc_r_minus_fcd_ks"] = s["fc_r"] - s["fcd_ks"]
        s["fc_r_residual"] = float(resid[j])
    return scores, sim_fc
