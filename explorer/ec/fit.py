"""fit_ec(): a subject's effective connectivity, fitted to its FC and lag-tau covariance.

The loss is the moment matching of MOU-EC (Gilson et al. 2016) and GEC (Deco et al. 2019): squared
errors of the zero-lag FC (off-diagonal) and of the lag-tau covariance, both normalised by the
regions' standard deviations, computed analytically from the linearised Hopf network
(:mod:`explorer.ec.linear`): nothing is simulated inside the loop. Two update rules:

* ``"lbfgs"``: L-BFGS-B on the exact gradient (adjoint method) with W >= 0 on the mask;
* ``"gec"``: Deco et al.'s ``W += eta (FC_emp - FC + COV_emp - COV)`` on the mask, W >= 0.

Both keep the best iterate (lowest loss) and record a trace: loss, FC correlation and lagged
covariance correlation per iteration.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize

from explorer.ec.linear import Fit, Moments, Spectral, filtered_fit_gradient, fit_gradient, hopf_jacobian
from explorer.ec.options import EcOptions

#: the fit of a subject is usable / why it is not (its twin then stays the global-parameter one)
OK, UNSTABLE_START, DIVERGED, NO_IMPROVEMENT = "ok", "unstable_start", "diverged", "no_improvement"
TRACE_COLUMNS = ("loss", "fc_r", "cov_r")


@dataclass(frozen=True)
class EcFit:
    """The fitted EC of one subject and how the fit went.

    weights: (N, N) fitted connection strengths (``weights[i, j]``: j -> i), in the units of the
        simulator's SC, to be used with the same G (the twin's coupling is ``G * weights``).
    trace: (iterations + 1, 3) float: :data:`TRACE_COLUMNS` at the start and after every iteration.
    best_iteration: the row of ``trace`` whose weights are kept.
    status: :data:`OK`, or why the subject keeps its global twin (:data:`UNSTABLE_START`,
        :data:`DIVERGED`, :data:`NO_IMPROVEMENT`); ``reason`` says it in words.
    fc_r_start, fc_r: analytic FC correlation of the global twin (SC) and of the fitted EC.
    loss_start, loss: the loss at the start and of the kept iterate.
    lag_trs, tau_s: the lag, in TRs and in s.
    max_euler_dt_ms: the largest Euler-Maruyama step (ms) for which the linearised EC twin is stable
        (``min(-2 Re(l) / |l|^2)`` over the eigenvalues l of its drift); NaN when unstable.
    wall_s: fitting time in s.
    """

    weights: np.ndarray
    trace: np.ndarray
    best_iteration: int
    status: str
    reason: str
    fc_r_start: float
    fc_r: float
    loss_start: float
    loss: float
    lag_trs: int
    tau_s: float
    max_euler_dt_ms: float
    wall_s: float
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def iterations(self) -> int:
        return int(self.trace.shape[0]) - 1

    def summary(self) -> dict[str, Any]:
        """Scalars of the fit (JSON-safe): what the store's attributes, MLflow and status hold."""
        return {"status": self.status, "reason": self.reason, "fc_r_start": _f(self.fc_r_start),
                "fc_r": _f(self.fc_r), "loss_start": _f(self.loss_start), "loss": _f(self.loss),
                "iterations": self.iterations, "best_iteration": int(self.best_iteration),
                "lag_trs": int(self.lag_trs), "tau_s": float(self.tau_s),
                "max_euler_dt_ms": _f(self.max_euler_dt_ms), "wall_s": float(self.wall_s),
                "options": dict(self.options)}


def _f(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def _upper(a: np.ndarray) -> np.ndarray:
    return a[np.triu_indices(a.shape[0], k=1)]


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    d = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / d if d > 0 else math.nan


def _row(fit: Fit, target: Moments) -> tuple[float, float, float]:
    if not fit.moments.stable:
        return (math.inf, math.nan, math.nan)
    return (fit.loss, _corr(_upper(fit.moments.fc), _upper(target.fc)),
            _corr(fit.moments.cov_tau.ravel(), target.cov_tau.ravel()))


def max_euler_dt_ms(weights: np.ndarray, g: float, a: Any, f_hz: Any) -> float:
    """The largest Euler step (ms) that keeps the linearised network stable; NaN if it is unstable."""
    lam = np.linalg.eigvals(hopf_jacobian(weights, g, a, f_hz))
    if np.max(lam.real) >= 0:
        return math.nan
    return float(np.min(-2.0 * lam.real / np.abs(lam) ** 2) * 1000.0)


def fit_ec(sc: np.ndarray, mask: np.ndarray, g: float, a: Any, f_hz: Any, target: Moments, tr_s: float,
           opts: EcOptions | None = None, spec: Spectral | None = None) -> EcFit:
    """Fit the connection strengths on ``mask`` of a subject, starting from its SC and global parameters.

    sc: (N, N) the simulator's SC (the start); mask: (N, N) bool, the fitted connections; g: G (1/s);
    a: bifurcation parameter (1/s), f_hz: intrinsic frequencies (Hz), one value or one per region, as
    fitted by the search; target: the subject's empirical :class:`Moments` at lag ``opts.lag_trs(tr_s)``;
    tr_s: the BOLD TR in s; spec: the band-pass the target went through (:func:`~explorer.ec.linear.spectral`,
    for the same lag), applied to the model's moments too; None: the target is unfiltered.
    """
    opts = opts or EcOptions()
    t0 = time.perf_counter()
    lag = opts.lag_trs(tr_s)
    tau = lag * float(tr_s)
    w0 = np.where(mask, np.asarray(sc, dtype=np.float64), 0.0)

    def evaluate(w: np.ndarray) -> Fit:
        if spec is None:
            return fit_gradient(w, g, a, f_hz, tau, target)
        return filtered_fit_gradient(w, g, a, f_hz, spec, target)

    start = evaluate(w0)
    first = _row(start, target)
    common = dict(lag_trs=lag, tau_s=tau, options=opts.to_dict())
    if not start.moments.stable:
        why = ("the global twin has no stationary linearisation (a mode of the linearised network grows: "
               "a >= 0 somewhere, or G too strong); its EC cannot be fitted around z = 0")
        return EcFit(w0, np.array([first]), 0, UNSTABLE_START, why, math.nan, math.nan, math.inf, math.inf,
                     max_euler_dt_ms=math.nan, wall_s=time.perf_counter() - t0, **common)
    run = _lbfgs if opts.rule == "lbfgs" else _gec
    best_w, rows, best_i = run(w0, mask, evaluate, target, opts, start)
    trace = np.array(rows, dtype=np.float64)
    loss, fc_r = trace[best_i, 0], trace[best_i, 1]
    if not np.all(np.isfinite(best_w)):
        status, why = DIVERGED, "the fitted EC is not finite"
    elif not (loss < first[0]) or not (fc_r > first[1]):
        status, why = NO_IMPROVEMENT, (f"the EC fit did not improve on the global twin (analytic FC r "
                                       f"{first[1]:.3f} -> {fc_r:.3f}, loss {first[0]:.4g} -> {loss:.4g})")
    else:
        status, why = OK, ""
    if status != OK:
        best_w, best_i = w0, 0
        loss, fc_r = first[0], first[1]
    return EcFit(best_w, trace, best_i, status, why, first[1], fc_r, first[0], loss,
                 max_euler_dt_ms=max_euler_dt_ms(best_w, g, a, f_hz), wall_s=time.perf_counter() - t0, **common)


def _lbfgs(w0, mask, evaluate, target, opts, start):
    """L-BFGS-B on the exact gradient, W >= 0 on the mask. The trace has one row per accepted iterate (the
    evaluation L-BFGS-B accepted last); the best of them is kept."""
    idx = np.nonzero(mask)
    last: dict[str, Any] = {}

    def weights_of(v: np.ndarray) -> np.ndarray:
        w = np.zeros_like(w0)
        w[idx] = v
        return w

    def fun(v: np.ndarray) -> tuple[float, np.ndarray]:
        fit = evaluate(weights_of(v))
        last.update(x=v.copy(), row=_row(fit, target))
        if not math.isfinite(fit.loss):  # unstable: a large loss pushes the line search back
            return 1e6, np.zeros_like(v)
        return fit.loss, fit.grad[idx]

    rows, best = [_row(start, target)], {"i": 0, "w": w0}

    def accepted(x: np.ndarray) -> None:
        row = last["row"] if np.array_equal(x, last["x"]) else _row(evaluate(weights_of(x)), target)
        rows.append(row)
        if row[0] < rows[best["i"]][0]:
            best.update(i=len(rows) - 1, w=weights_of(x))

    minimize(fun, w0[idx], jac=True, method="L-BFGS-B", bounds=[(0.0, None)] * len(idx[0]), callback=accepted,
             options={"maxiter": int(opts.max_iter), "maxcor": 20, "ftol": float(opts.tol), "gtol": 1e-12})
    return best["w"], rows, best["i"]


def _gec(w0, mask, evaluate, target, opts, start):
    """Deco et al.'s GEC update with W >= 0, stopped after ``patience`` iterations without improvement."""
    step = float(opts.eta) * float(w0[mask].mean())
    w, fit = w0, start
    rows = [_row(start, target)]
    best_w, best_i, best_loss = w0, 0, start.loss
    for it in range(1, int(opts.max_iter) + 1):
        dfc = target.fc - fit.moments.fc
        np.fill_diagonal(dfc, 0.0)
        w = np.where(mask, np.clip(w + step * (dfc + target.cov_tau - fit.moments.cov_tau), 0.0, None), 0.0)
        fit = evaluate(w)
        rows.append(_row(fit, target))
        if not fit.moments.stable:
            break
        if fit.loss < best_loss * (1.0 - float(opts.tol)):
            best_w, best_i, best_loss = w, it, fit.loss
        elif it - best_i >= int(opts.patience):
            break
    return best_w, rows, best_i
