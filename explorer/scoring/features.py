"""Functional features of BOLD signals: preprocessing, FC, FCD and the peak frequency (numpy/scipy).

Arrays are time-major: a BOLD time series is ``(T, N)`` (time points x regions), sampled every
``tr_s`` seconds. FC is ``(N, N)``; FCD is ``(W, W)`` over ``W`` sliding windows.

The same functions compute the empirical side (once per subject, in ``explorer.cohort``:
:func:`empirical_features`) and the simulated side (once per trial, in
:func:`explorer.scoring.scores.fit_scores`), so both go through identical processing.
Empirical signals are validated by the cohort loader; :func:`empirical_features` raises on them.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from explorer.errors import CohortError, ConfigError
from explorer.scoring.options import FeatureOptions, min_filter_length

__all__ = ["n_windows", "bandpass_sos", "preprocess", "fc", "fcd", "empirical_features", "peak_frequency"]


def n_windows(n_time: int, window: int, step: int) -> int:
    """Number of FCD windows of ``window`` TRs every ``step`` TRs in ``n_time`` TRs (0 if too short)."""
    if n_time < window:
        return 0
    return (n_time - window) // step + 1



def bandpass_sos(tr_s: float, opts: FeatureOptions) -> np.ndarray:
    """The Butterworth second-order sections of ``opts.bandpass`` at TR ``tr_s``; ConfigError above Nyquist."""
    fs = 1.0 / float(tr_s)
    nyq = fs / 2.0
    low, high = opts.bandpass
    if high >= nyq:
        raise ConfigError(
            f"features.bandpass upper edge {high} Hz is not below the Nyquist frequency {nyq:g} Hz "
            f"of TR {tr_s} s: lower it, or set bandpass to null"
        )
    if low > 0:
        return signal.butter(int(opts.filter_order), [low, high], btype="bandpass", fs=fs, output="sos")
    return signal.butter(int(opts.filter_order), high, btype="lowpass", fs=fs, output="sos")


def preprocess(ts: np.ndarray, tr_s: float, opts: FeatureOptions | None = None) -> np.ndarray:
    """Detrend, band-pass and z-score a ``(T, N)`` series sampled every ``tr_s`` s (as ``opts`` says).

    Returns a new float64 ``(T, N)`` array. A region that is constant after filtering becomes all
    NaN when z-scoring (not inf), so that FC rows involving it are NaN.
    Raises ConfigError when the band-pass upper edge is not below the Nyquist frequency, and
    ValueError when the series is too short for the filter.
    """
    opts = opts or FeatureOptions()
    x = np.array(ts, dtype=np.float64, copy=True)
    if x.ndim != 2:
        raise ValueError(f"expected a (time, region) array, got shape {x.shape}")
    if opts.detrend:
        x = signal.detrend(x, axis=0, type="linear")
    if opts.bandpass is not None:
        sos = bandpass_sos(tr_s, opts)
        need = min_filter_length(opts)
        if x.shape[0] < need:
            raise ValueError(
                f"series of {x.shape[0]} TRs is too short for the band-pass filter (needs >= {need})"
            )
        x = signal.sosfiltfilt(sos, x, axis=0)
    if opts.zscore:
        mu = x.mean(axis=0)
        sd = x.std(axis=0)
        flat = sd <= 1e-12 * np.maximum(1.0, np.abs(mu))
        sd = np.where(flat, np.nan, sd)
        x = (x - mu) / sd
    return x


def _corr_columns(x: np.ndarray) -> np.ndarray:
    """Pearson correlation between the columns of ``(T, N)`` x; constant columns give NaN rows."""
    xc = x - x.mean(axis=0)
    norm = np.sqrt(np.einsum("tn,tn->n", xc, xc))
    with np.errstate(invalid="ignore", divide="ignore"):
        xn = xc / np.where(norm > 0, norm, np.nan)
    c = xn.T @ xn
    np.clip(c, -1.0, 1.0, out=c)
    idx = np.arange(c.shape[0])
    c[idx, idx] = np.where(np.isnan(norm) | (norm == 0), np.nan, 1.0)
    return c


def fc(ts: np.ndarray, fisher_z: bool = False) -> np.ndarray:
    """Functional connectivity of ``(T, N)`` ts: Pearson r between regions, ``(N, N)``.

    With ``fisher_z`` the values are arctanh(r) with |r| clipped below 1 and the diagonal set to 0.
    """
    x = np.asarray(ts, dtype=np.float64)
    c = _corr_columns(x)
    if fisher_z:
        c = np.arctanh(np.clip(c, -1.0 + 1e-7, 1.0 - 1e-7))
        np.fill_diagonal(c, 0.0)
    return c


def fcd(ts: np.ndarray, window: int = 30, step: int = 3) -> np.ndarray:
    """Functional connectivity dynamics of ``(T, N)`` ts, ``(W, W)``.

    Window ``w`` covers TRs ``[w*step, w*step + window)``; entry ``(a, b)`` is the Pearson correlation
    between the upper triangles (diagonal excluded) of the FCs of windows ``a`` and ``b``.
    Raises ValueError when ts has fewer than ``window`` TRs.
    """
    x = np.asarray(ts, dtype=np.float64)
    t, n = x.shape
    w = n_windows(t, window, step)
    if w == 0:
        raise ValueError(f"series of {t} TRs is shorter than the FCD window of {window} TRs")
    starts = np.arange(w) * step
    # (W, window, N) view of the windows, no copy
    win = np.lib.stride_tricks.sliding_window_view(x, window, axis=0)[starts]  # (W, N, window)
    win = win - win.mean(axis=2, keepdims=True)
    norm = np.sqrt(np.einsum("wnt,wnt->wn", win, win))
    with np.errstate(invalid="ignore", divide="ignore"):
        win = win / np.where(norm > 0, norm, np.nan)[:, :, None]
    iu = np.triu_indices(n, k=1)
    wfc = np.matmul(win, win.transpose(0, 2, 1))[:, iu[0], iu[1]]  # (W, M)
    return _corr_columns(wfc.T)



def empirical_features(
    ts: np.ndarray, tr_s: float, opts: FeatureOptions | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """FC and FCD of an empirical ``(T, N)`` BOLD series sampled every ``tr_s`` s.

    ``discard_s`` is not applied (it is for simulated transients). FCD is None when the series is
    shorter than the FCD window. Raises CohortError when a region is constant or the signal is not
    finite (the cohort loader checks both first and names the subject and file).
    """
    opts = opts or FeatureOptions()
    x = np.asarray(ts, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise CohortError("empirical BOLD holds NaN or inf values: clean or drop the affected regions")
    x = preprocess(x, tr_s, opts)
    bad = np.flatnonzero(~np.all(np.isfinite(x), axis=0))
    if bad.size:
        raise CohortError(
            f"empirical BOLD is constant in region(s) {bad.tolist()} (0-based, after region selection): "
            "drop those regions or fix the time series"
        )
    f = fc(x, fisher_z=opts.fisher_z)
    d = fcd(x, opts.fcd_window, opts.fcd_step) if x.shape[0] >= opts.fcd_window else None
    return f, d



def peak_frequency(
    ts: np.ndarray, tr_s: float, band: tuple[float, float] = (0.01, 0.1), detrend: bool = True
) -> np.ndarray:
    """Per-region frequency (Hz) of the largest Welch power within ``band`` of a ``(T, N)`` series.

    Deco et al. 2017 set each Hopf node's intrinsic frequency this way from empirical BOLD.
    Segments of up to 100 TRs (Welch, Hann window); ties go to the lower frequency.
    Raises ValueError when no Welch frequency bin falls inside ``band``.
    """
    x = np.asarray(ts, dtype=np.float64)
    if detrend:
        x = signal.detrend(x, axis=0, type="linear")
    freqs, power = signal.welch(x, fs=1.0 / float(tr_s), axis=0, nperseg=min(100, x.shape[0]))
    inside = (freqs >= band[0]) & (freqs <= band[1])
    if not inside.any():
        raise ValueError(
            f"no spectral bin of a {x.shape[0]}-TR series (TR {tr_s} s) lies in {band} Hz: "
            "use a longer series or a wider band"
        )
    return freqs[inside][np.argmax(power[inside], axis=0)]
