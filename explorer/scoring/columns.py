"""Compiled passes over the columns of a ``(T, N)`` float64 series (time x regions), in place or into
a second array: what batch scoring (:func:`explorer.scoring.batch.fit_scores_batch`) does to each trial.

Each pass reads one trial (~0.4 MB at 700 TRs x 80 regions, so it stays in the L2 cache), the region
axis innermost. Compiled on first use, or loaded from numba's cache (:func:`warm_up`).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, error_model="numpy")
def detrend_columns(x: np.ndarray) -> None:
    """Remove each column's least-squares line from ``(T, N)`` float64 x, in place, in two passes
    over x (what ``signal.detrend(x, axis=0, type="linear")`` computes, to rounding)."""
    t, n = x.shape
    mid = (t - 1) / 2.0
    tt = 0.0
    mean = np.zeros(n)
    slope = np.zeros(n)
    for k in range(t):
        tc = k - mid
        tt += tc * tc
        for j in range(n):
            mean[j] += x[k, j]
            slope[j] += tc * x[k, j]
    for j in range(n):
        mean[j] /= t
        slope[j] = slope[j] / tt if tt > 0.0 else 0.0
    for k in range(t):
        tc = k - mid
        for j in range(n):
            x[k, j] = x[k, j] - mean[j] - tc * slope[j]


@njit(cache=True, nogil=True, error_model="numpy")
def centre_columns(x: np.ndarray, out: np.ndarray, unit: bool) -> None:
    """Each column of ``(T, N)`` float64 x, centred and divided into ``out`` (may be x) by its population
    sd (``unit=False``: z-scores; a flat column, sd <= 1e-12 max(1, |mean|), becomes NaN, as
    :func:`explorer.scoring.features.preprocess` says) or by its norm (``unit=True``: the columns whose products are Pearson
    correlations; a zero-norm column becomes NaN, as :func:`explorer.scoring.features.fc` says). Three passes over x."""
    t, n = x.shape
    mean = np.zeros(n)
    sq = np.zeros(n)
    for k in range(t):
        for j in range(n):
            mean[j] += x[k, j]
    for j in range(n):
        mean[j] /= t
    for k in range(t):
        for j in range(n):
            d = x[k, j] - mean[j]
            sq[j] += d * d
    for j in range(n):
        if unit:
            sq[j] = 1.0 / np.sqrt(sq[j]) if sq[j] > 0.0 else np.nan
        else:
            sd = np.sqrt(sq[j] / t)
            sq[j] = np.nan if sd <= 1e-12 * max(1.0, abs(mean[j])) else 1.0 / sd
    for k in range(t):
        for j in range(n):
            out[k, j] = (x[k, j] - mean[j]) * sq[j]


def warm_up() -> None:
    """Compile (or load from numba's on-disk cache) the passes, so that a first batch does not wait for it."""
    x = np.arange(6.0).reshape(3, 2)
    detrend_columns(x)
    centre_columns(x, x, False)
    centre_columns(x, np.empty_like(x), True)
