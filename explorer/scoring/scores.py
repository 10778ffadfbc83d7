"""The fit scores of one simulated BOLD series against a subject's empirical FC/FCD (numpy).

Scores (all over the strict upper triangle, diagonal excluded; :data:`~explorer.scoring.objectives.SCORES`
says which way each is better):

- ``fc_r``: Pearson correlation between simulated and empirical FC (higher is better);
- ``fc_rmse``: root-mean-square difference between them (lower is better);
- ``fcd_ks``: two-sample Kolmogorov-Smirnov statistic between the FCD value distributions
  (lower is better; ``nan`` when the subject has no empirical FCD);
- ``fc_r_minus_fcd_ks``: ``fc_r - fcd_ks``, static and dynamic fit in one number, as cuBNM's
  ``+fc_corr -fcd_ks`` (higher is better; ``nan`` without empirical FCD);
- ``fc_r_residual``: Pearson r between simulated and empirical FC after subtracting the cohort-mean
  empirical FC from both: the part of FC that makes the subject who they are (higher is better;
  ``nan`` without a cohort mean).

A simulated signal that diverged (NaN/inf) or that is constant in some region gives ``nan`` scores
instead of raising, so that one bad trial never crashes a batch: the runner records it as failed.
:func:`explorer.scoring.batch.fit_scores_batch` scores ``B`` series at once with the same results.
"""

from __future__ import annotations

import math

import numpy as np

from explorer.errors import SimulationError
from explorer.scoring.features import fc, fcd, preprocess
from explorer.scoring.objectives import SCORES
from explorer.scoring.options import FeatureOptions, min_filter_length

__all__ = ["upper_triangle", "fc_r", "fc_rmse", "ks_statistic", "fcd_ks", "discarded_trs", "fit_scores"]


def upper_triangle(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"expected a square matrix, got shape {a.shape}")
    return a[np.triu_indices(a.shape[0], k=1)]


def fc_r(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r between the upper triangles (diagonal excluded) of two FC matrices; NaN if undefined."""
    x, y = upper_triangle(a), upper_triangle(b)
    if x.shape != y.shape:
        raise ValueError(f"FC shapes differ: {np.shape(a)} vs {np.shape(b)}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        return math.nan
    x = x - x.mean()
    y = y - y.mean()
    den = math.sqrt(float(x @ x) * float(y @ y))
    if den == 0.0:
        return math.nan
    return float(np.clip((x @ y) / den, -1.0, 1.0))


def fc_rmse(a: np.ndarray, b: np.ndarray) -> float:
    """Root-mean-square difference between the upper triangles of two FC matrices; NaN if any is NaN."""
    x, y = upper_triangle(a), upper_triangle(b)
    if x.shape != y.shape:
        raise ValueError(f"FC shapes differ: {np.shape(a)} vs {np.shape(b)}")
    return float(np.sqrt(np.mean((x - y) ** 2)))


def ks_statistic(x: np.ndarray, y: np.ndarray) -> float:
    """Two-sample KS statistic sup|F_x - F_y| (equals ``scipy.stats.ks_2samp(x, y).statistic``).

    Computed directly from the sorted samples (O(n log n)); scipy's exact p-value is not needed.
    """
    x = np.sort(np.asarray(x, dtype=np.float64).ravel())
    y = np.sort(np.asarray(y, dtype=np.float64).ravel())
    if x.size == 0 or y.size == 0:
        return math.nan
    allv = np.concatenate([x, y])
    cdf_x = np.searchsorted(x, allv, side="right") / x.size
    cdf_y = np.searchsorted(y, allv, side="right") / y.size
    return float(np.max(np.abs(cdf_x - cdf_y)))


def fcd_ks(fcd_a: np.ndarray, fcd_b: np.ndarray) -> float:
    """KS distance between the upper-triangle values (diagonal excluded) of two FCD matrices.

    The matrices may have different sizes. NaN when either holds NaN or is empty.
    """
    x, y = upper_triangle(fcd_a), upper_triangle(fcd_b)
    if x.size == 0 or y.size == 0 or not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        return math.nan
    return ks_statistic(x, y)



def discarded_trs(n_time: int, tr_s: float, opts: FeatureOptions, with_fcd: bool) -> int:
    """TRs that ``opts.discard_s`` drops from a simulated series of ``n_time`` TRs.

    Raises SimulationError when the rest is too short for the filter or (``with_fcd``) the FCD window.
    """
    skip = int(round(opts.discard_s / float(tr_s))) if opts.discard_s > 0 else 0
    t = max(n_time - skip, 0)
    need = opts.fcd_window if with_fcd else 2
    if opts.bandpass is not None:
        need = max(need, min_filter_length(opts))
    if t < need:
        raise SimulationError(
            f"simulated BOLD keeps {t} TRs (TR {tr_s} s) after discarding {opts.discard_s} s, but at least "
            f"{need} are needed (FCD window {opts.fcd_window} TRs / band-pass filter): lengthen duration_s, "
            "or shorten discard_s or features.fcd_window"
        )
    return skip


def fit_scores(
    sim_bold: np.ndarray,
    tr_s: float,
    emp_fc: np.ndarray,
    emp_fcd: np.ndarray | None,
    opts: FeatureOptions | None = None,
    fc_mean: np.ndarray | None = None,
    *,
    return_fc: bool = False,
) -> dict[str, float] | tuple[dict[str, float], np.ndarray]:
    """Scores of one simulated ``(T, N)`` BOLD against a subject's empirical FC/FCD.

    Drops the first ``opts.discard_s`` seconds, preprocesses like the empirical side, and returns
    every score of :data:`SCORES`: ``fcd_ks`` and ``fc_r_minus_fcd_ks`` are NaN when ``emp_fcd`` is
    None, ``fc_r_residual`` when ``fc_mean`` (the cohort-mean empirical FC) is None, and every
    score when ``emp_fc`` is None (for callers that want only the simulated FC). A diverged
    (non-finite) or constant-region simulation gives NaN scores rather than raising.
    With ``return_fc``, returns ``(scores, sim_fc)``: the ``(N, N)`` simulated FC the scores were
    computed from (NaN where undefined: all NaN for a non-finite simulation, NaN rows for a
    constant region).
    Raises SimulationError when the kept series is too short for the filter or the FCD window
    (lengthen ``duration_s`` or shorten ``discard_s``/``fcd_window``), and ValueError on a region
    count mismatch.
    """
    opts = opts or FeatureOptions()
    x = np.asarray(sim_bold, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"simulated BOLD must be (time, region), got shape {x.shape}")
    if emp_fc is not None:
        emp_fc = np.asarray(emp_fc, dtype=np.float64)
        if emp_fc.shape != (x.shape[1], x.shape[1]):
            raise ValueError(f"simulated BOLD has {x.shape[1]} regions but the empirical FC is {emp_fc.shape}")
    x = x[discarded_trs(x.shape[0], tr_s, opts, emp_fcd is not None):]
    nan = {k: math.nan for k in SCORES}
    if not np.all(np.isfinite(x)):
        return (nan, np.full((x.shape[1], x.shape[1]), np.nan)) if return_fc else nan
    with np.errstate(invalid="ignore", divide="ignore"):
        p = preprocess(x, tr_s, opts)
        sim_fc = fc(p, fisher_z=opts.fisher_z)
    if not np.all(np.isfinite(p)) or emp_fc is None:
        return (nan, sim_fc) if return_fc else nan  # a constant region: FC undefined
    out = {"fc_r": fc_r(sim_fc, emp_fc), "fc_rmse": fc_rmse(sim_fc, emp_fc), "fcd_ks": math.nan}
    if emp_fcd is not None:
        out["fcd_ks"] = fcd_ks(fcd(p, opts.fcd_window, opts.fcd_step), emp_fcd)
    out["fc_r_minus_fcd_ks"] = out["fc_r"] - out["fcd_ks"]
    out["fc_r_residual"] = math.nan
    if fc_mean is not None:
        mean = np.asarray(fc_mean, dtype=np.float64)
        out["fc_r_residual"] = fc_r(sim_fc - mean, emp_fc - mean)
    return (out, sim_fc) if return_fc else out
