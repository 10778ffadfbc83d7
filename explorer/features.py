"""Functional features of BOLD signals and the fit scores of a simulation: numpy/scipy (batch scoring's
per-column passes are compiled: :mod:`explorer.columns`).

Arrays are time-major: a BOLD time series is ``(T, N)`` (time points x regions), sampled every
``tr_s`` seconds. FC is ``(N, N)``; FCD is ``(W, W)`` over ``W`` sliding windows.

The same functions compute the empirical side (once per subject, in ``explorer.cohort``) and the
simulated side (once per trial, in :func:`fit_scores`), so both go through identical processing.

Scores (all over the strict upper triangle, diagonal excluded):

- ``fc_r``: Pearson correlation between simulated and empirical FC (higher is better);
- ``fc_rmse``: root-mean-square difference between them (lower is better);
- ``fcd_ks``: two-sample Kolmogorov-Smirnov statistic between the FCD value distributions
  (lower is better; ``nan`` when the subject has no empirical FCD);
- ``fc_r_minus_fcd_ks``: ``fc_r - fcd_ks``, static and dynamic fit in one number, as cuBNM's
  ``+fc_corr -fcd_ks`` (higher is better; ``nan`` without empirical FCD);
- ``fc_r_residual``: Pearson r between simulated and empirical FC after subtracting the cohort-mean
  empirical FC from both: the part of FC that makes the subject who they are (higher is better;
  ``nan`` without a cohort mean).

An objective is a score name or a linear combination of them, maximised, such as
``fc_r + fc_r_residual - fcd_ks`` (:func:`parse_objective`, :func:`objective_value`).

A simulated signal that diverged (NaN/inf) or that is constant in some region gives ``nan`` scores
instead of raising, so that one bad trial never crashes a batch: the runner records it as failed.
:func:`fit_scores_batch` scores ``B`` simulated series at once with the same results as ``B`` calls
of :func:`fit_scores` (to rounding: ~1e-15).
Empirical signals are validated by the cohort loader; :func:`empirical_features` raises on them.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

import numpy as np
from scipy import signal

from explorer.errors import CohortError, ConfigError, OptionError, SimulationError

__all__ = [
    "FeatureOptions",
    "preprocess",
    "fc",
    "fcd",
    "fc_r",
    "fc_rmse",
    "fcd_ks",
    "ks_statistic",
    "empirical_features",
    "min_filter_length",
    "fit_scores",
    "fit_scores_batch",
    "n_windows",
    "SCORES",
    "peak_frequency",
    "parse_objective",
    "objective_value",
]

#: score name -> True when larger is better
SCORES: dict[str, bool] = {"fc_r": True, "fc_rmse": False, "fcd_ks": False, "fc_r_minus_fcd_ks": True,
                           "fc_r_residual": True}


def parse_objective(expr: str) -> tuple[tuple[float, str], ...]:
    """``"fc_r + 0.5*fc_r_residual - fcd_ks"`` -> ((1, "fc_r"), (0.5, "fc_r_residual"), (-1, "fcd_ks")).

    A plain score name gives one term. Raises ConfigError for an unknown score, a malformed term,
    or a term whose sign would reward a worse fit (a combination is maximised: higher-is-better
    scores need positive weights, lower-is-better ones negative weights).
    """
    text = str(expr).replace(" ", "")
    if text in SCORES:
        return ((1.0, text),)
    terms: list[tuple[float, str]] = []
    for sign, body in _split_terms(text, expr):
        weight, _, name = body.rpartition("*")
        try:
            w = float(weight) if weight else 1.0
        except ValueError:
            raise ConfigError(f"objective {expr!r}: bad weight {weight!r} in term {body!r}") from None
        if name not in SCORES:
            raise ConfigError(f"unknown objective score {name!r} in {expr!r}; choose from {sorted(SCORES)}, or a "
                              "combination such as 'fc_r + fc_r_residual - fcd_ks'")
        w *= sign
        if not (math.isfinite(w) and w != 0):
            raise ConfigError(f"objective {expr!r}: the weight of {name} must be a finite non-zero number")
        if (w > 0) != SCORES[name]:
            better = "higher" if SCORES[name] else "lower"
            raise ConfigError(f"objective {expr!r}: {better} {name} is better, so it needs a "
                              f"{'+' if SCORES[name] else '-'} sign in a maximised combination")
        terms.append((w, name))
    if len({n for _, n in terms}) != len(terms):
        raise ConfigError(f"objective {expr!r} names a score twice")
    return tuple(terms)


def _split_terms(text: str, expr: str) -> list[tuple[float, str]]:
    out, sign, start = [], 1.0, 0
    if text[:1] in "+-":
        sign, start = (-1.0 if text[0] == "-" else 1.0), 1
    body = ""
    for ch in text[start:]:
        if ch in "+-" and body and not body.endswith(("e", "E")):
            out.append((sign, body))
            sign, body = (-1.0 if ch == "-" else 1.0), ""
        else:
            body += ch
    if not body:
        raise ConfigError(f"objective {expr!r} is empty or ends with an operator")
    out.append((sign, body))
    return out


def objective_value(scores: Mapping[str, float], expr: str) -> float:
    """The value of objective ``expr`` (a score name or a combination) from a trial's scores; NaN if any is."""
    return float(sum(w * float(scores.get(name, math.nan)) for w, name in parse_objective(expr)))


@dataclass(frozen=True)
class FeatureOptions:
    """How BOLD becomes FC/FCD, for the empirical and the simulated side alike.

    detrend: remove a linear trend per region (scipy.signal.detrend).
    bandpass: (low, high) in Hz for a zero-phase Butterworth band-pass (sosfiltfilt), or None;
        low = 0 makes it a low-pass at high.
    filter_order: Butterworth order of the band-pass.
    zscore: z-score each region over time.
    fisher_z: FC as Fisher z = arctanh(r) (diagonal set to 0) instead of Pearson r.
    fcd_window, fcd_step: FCD sliding window length and step, in TRs.
    discard_s: leading seconds of *simulated* BOLD dropped before features (initial transient).

    A study config's ``cohort.features`` is a FeatureOptions (validated by pydantic against these
    field types, then by :meth:`problems`).
    """

    __pydantic_config__ = {"extra": "forbid"}  # unknown keys of a study config's `features` are errors

    detrend: bool = True
    bandpass: tuple[float, float] | None = (0.01, 0.1)
    zscore: bool = True
    fisher_z: bool = False
    fcd_window: int = 30
    fcd_step: int = 3
    discard_s: float = 0.0
    filter_order: int = 2

    def __post_init__(self) -> None:
        found = self.problems()
        if found:
            raise OptionError("features", found)
        if self.bandpass is not None:
            object.__setattr__(self, "bandpass", tuple(float(x) for x in self.bandpass))
        for name in ("fcd_window", "fcd_step", "filter_order"):
            object.__setattr__(self, name, int(getattr(self, name)))

    def problems(self) -> list[tuple[str, str]]:
        """Every invalid option as ``(field, message)``; construction raises OptionError for them."""
        out = []
        bp = self.bandpass
        if bp is not None:
            try:
                low, high = (float(x) for x in bp)
                ok = 0.0 <= low < high
            except (TypeError, ValueError):
                ok = False
            if not ok:
                out.append(("bandpass", f"must be [low_hz, high_hz] with 0 <= low < high, or null, got {bp!r}"))
        for name, least, unit in (("fcd_window", 2, " TRs"), ("fcd_step", 1, " TRs"), ("filter_order", 1, "")):
            v = getattr(self, name)
            if isinstance(v, bool) or not (isinstance(v, numbers.Real) and float(v).is_integer() and v >= least):
                out.append((name, f"must be an integer >= {least}{unit}, got {v!r}"))
        if not (isinstance(self.discard_s, numbers.Real) and self.discard_s >= 0):
            out.append(("discard_s", f"must be >= 0 s, got {self.discard_s!r}"))
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON/YAML-safe) of every option."""
        d = asdict(self)
        if d["bandpass"] is not None:
            d["bandpass"] = list(d["bandpass"])
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "FeatureOptions":
        """Inverse of :meth:`to_dict`; unknown keys raise ConfigError naming them."""
        if d is None:
            return cls()
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown feature option(s) {unknown}; valid: {sorted(known)}")
        kw = dict(d)
        if kw.get("bandpass") is not None:
            kw["bandpass"] = tuple(kw["bandpass"])
        return cls(**kw)


def n_windows(n_time: int, window: int, step: int) -> int:
    """Number of FCD windows of ``window`` TRs every ``step`` TRs in ``n_time`` TRs (0 if too short)."""
    if n_time < window:
        return 0
    return (n_time - window) // step + 1


def min_filter_length(opts: FeatureOptions) -> int:
    """Shortest series sosfiltfilt accepts for this filter (its default padlen + 1)."""
    # butter band-pass of order n gives n second-order sections; padlen = 3 * (2 * n_sections + 1 - zeros)
    n_sections = int(opts.filter_order)
    return 3 * (2 * n_sections + 1) + 1


def _bandpass_sos(tr_s: float, opts: FeatureOptions) -> np.ndarray:
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
        sos = _bandpass_sos(tr_s, opts)
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


def _upper(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"expected a square matrix, got shape {a.shape}")
    return a[np.triu_indices(a.shape[0], k=1)]


def fc_r(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r between the upper triangles (diagonal excluded) of two FC matrices; NaN if undefined."""
    x, y = _upper(a), _upper(b)
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
    x, y = _upper(a), _upper(b)
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
    x, y = _upper(fcd_a), _upper(fcd_b)
    if x.size == 0 or y.size == 0 or not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        return math.nan
    return ks_statistic(x, y)


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


def _discarded_trs(n_time: int, tr_s: float, opts: FeatureOptions, with_fcd: bool) -> int:
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
    x = x[_discarded_trs(x.shape[0], tr_s, opts, emp_fcd is not None):]
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


#: working memory (bytes) that :func:`fit_scores_batch` allows itself per chunk of FCD windows
_BATCH_WORK_BYTES = 64 * 2**20


def _preprocess_row(x: np.ndarray, tr_s: float, opts: FeatureOptions, unit: np.ndarray) -> np.ndarray:
    """:func:`preprocess` of one ``(T, N)`` float64 row (may overwrite x; returns the result), and into
    ``unit`` (``(T, N)``) its columns centred and scaled to unit norm, for :func:`_fc_row`.

    Compiled passes (:mod:`explorer.columns`) over one trial at a time (~0.4 MB at 700 TRs x 80
    regions: it stays in L2).
    """
    from explorer.columns import centre_columns, detrend_columns

    if opts.detrend:
        detrend_columns(x)
    if opts.bandpass is not None:
        x = np.ascontiguousarray(signal.sosfiltfilt(_bandpass_sos(tr_s, opts), x, axis=0))
    if opts.zscore:
        centre_columns(x, x, False)
    centre_columns(x, unit, True)
    return x


def _fc_row(unit: np.ndarray, fisher_z: bool, out: np.ndarray) -> None:
    """:func:`fc` into ``out`` ``(N, N)`` from the unit columns of :func:`_preprocess_row`: one symmetric
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
    """The strict upper triangle of ``fcd(p, work.window, work.step)`` of ``(T, N)`` p, row-major.

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
    """:func:`ks_statistic` of each row of ``(R, n)`` x against one sorted sample y: ``(R,)``.

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
    """:func:`fc_r` of each row of ``(R, M)`` upper triangles x against one upper triangle y."""
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
    """:func:`fit_scores` of ``B`` simulated BOLD series ``(B, T, N)`` (one TR) against one subject, at once.

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
    Raises SimulationError when the kept series is too short (as :func:`fit_scores`), ConfigError
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
    x = x[:, _discarded_trs(x.shape[1], tr_s, opts, emp_fcd is not None):]
    t = x.shape[1]
    scores = [{k: math.nan for k in SCORES} for _ in range(b)]
    sim_fc = np.full((b, n, n), np.nan)
    ys = None  # sorted empirical FCD values, None when fcd_ks is NaN for every row
    if emp_fc is not None and emp_fcd is not None:
        ys = _upper(emp_fcd)
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
