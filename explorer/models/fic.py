"""Feedback inhibition control (FIC) for ``rww_ei``: the local inhibition J_I that clamps every region's
excitatory rate to a target (Deco et al. 2014, J Neurosci 34:7886; analytic form as Demirtaş et al. 2019,
Neuron 101:1181).

At the noise-free fixed point with H_E = r (Hz) in every region::

    S_E* = g tau_E r / (1 + g tau_E r)                     g = gamma_E * 1e-3 per ms
    S_I* = tau_I gamma_I 1e-3 H_I(J_NMDA S_E* - S_I* + W_I I_0)   (monotone 1-D root)
    x_E* = H_E^{-1}(r)
    J_I  = (w_plus J_NMDA S_E* + W_E I_0 + G J_NMDA sum_j W_ij S_E*_j - x_E*) / S_I*

Delays do not change the fixed point, so ``weights`` alone (as simulated, ``W[i, j]`` = j onto i) suffices.
Stability is judged on the delay-free 2N-dimensional system. Time in ms, rates in Hz, currents in nA.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explorer.models import rww_ei
from explorer.models.rww_ei import (A_E, A_I, B_E, B_I, D_E, D_I, G, GAMMA_E, GAMMA_I, I_0, J_I, J_N, TAU_E,
                                    TAU_I, W_E, W_I, W_P)

_NP = len(rww_ei.PARAMS)
_SERIES = 1e-3  # |d y| below which the series of f and f' are used


@dataclass(frozen=True)
class FICResult:
    """Outcome of :func:`fic_inhibition`.

    Attributes:
        J_I: local inhibitory coupling [region, batch] in nA; NaN only where not finite, so an unstable
            or negative solution is kept for inspection: check ``converged`` before simulating.
        converged: [batch] True where J_I is finite and >= 0, S_I* in (0, 1] and the fixed point stable.
        reason: per batch, "" when converged, else why not (criteria joined by "; ").
        S_E, S_I: the fixed point [region, batch] (dimensionless).
        max_eig: [batch] largest real part of the delay-free Jacobian's eigenvalues in 1/ms
            (NaN where the fixed point is not feasible).
        target_hz: the excitatory rate the fixed point was built for.
    """

    J_I: np.ndarray
    converged: np.ndarray
    reason: list[str]
    S_E: np.ndarray
    S_I: np.ndarray
    max_eig: np.ndarray
    target_hz: float


def _f(s: np.ndarray) -> np.ndarray:
    """f(s) = s / (1 - exp(-s)) > 0, overflow-free for either sign (H = f(d (a x - b)) / d)."""
    s = np.asarray(s, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        pos = s / -np.expm1(-np.abs(s))  # s > 0 branch evaluated at |s|
        neg = -s * np.exp(s) / -np.expm1(np.minimum(s, 0.0))  # s < 0: |s| e^s / (1 - e^s)
        out = np.where(s > 0, pos, neg)
    near = np.abs(s) < _SERIES
    return np.where(near, 1.0 + s / 2.0 + s * s / 12.0, out)


def _df(s: np.ndarray) -> np.ndarray:
    """f'(s) > 0, overflow-free."""
    s = np.asarray(s, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        sp = np.abs(s)
        e = np.exp(-sp)
        q = -np.expm1(-sp)
        pos = (q - sp * e) / (q * q)  # s > 0
        E = np.exp(np.minimum(s, 0.0))
        Q = -np.expm1(np.minimum(s, 0.0))
        neg = E * (E - 1.0 - s) / (Q * Q)  # s < 0
        out = np.where(s > 0, pos, neg)
    near = np.abs(s) < _SERIES
    return np.where(near, 0.5 + s / 6.0, out)


def _transfer(x, a, b, d):
    """H(x) = (a x - b) / (1 - exp(-d (a x - b))) in Hz (x in nA)."""
    return _f(d * (a * x - b)) / d


def _dtransfer(x, a, b, d):
    """dH/dx in Hz per nA."""
    return a * _df(d * (a * x - b))


def _bisect_increasing(fun, lo: np.ndarray, hi: np.ndarray, max_iter: int = 200) -> np.ndarray:
    """Root of an elementwise increasing ``fun`` with fun(lo) <= 0 <= fun(hi), to ~1e-15 relative."""
    lo, hi = lo.copy(), hi.copy()
    for _ in range(max_iter):
        mid = 0.5 * (lo + hi)
        up = fun(mid) > 0
        hi = np.where(up, mid, hi)
        lo = np.where(up, lo, mid)
        if np.all(hi - lo <= 1e-15 * np.maximum(1.0, np.abs(hi))):
            break
    return 0.5 * (lo + hi)


def _check(p, weights) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(p, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or w.shape[0] != w.shape[1] or w.shape[0] == 0:
        raise ValueError(f"weights must be a square (N, N) matrix, got shape {w.shape}")
    n = w.shape[0]
    if p.ndim != 3 or p.shape[0] != _NP or p.shape[1] != n or p.shape[2] == 0:
        raise ValueError(f"p must be the rww_ei parameter array [param, region, batch] of shape ({_NP}, {n}, B) "
                         f"for {n} regions, got shape {p.shape}")
    if not np.all(np.isfinite(w)):
        raise ValueError("weights contain NaN or inf")
    if not np.all(np.isfinite(p)):
        rows = sorted({rww_ei.PARAMS[k].name for k in np.nonzero(~np.isfinite(p))[0]})
        raise ValueError(f"p contains NaN or inf in parameter(s) {', '.join(rows)}")
    return p, w


def fixed_point_S_I(p: np.ndarray, S_E: np.ndarray) -> np.ndarray:
    """S_I* [region, batch] solving S_I = tau_I gamma_I 1e-3 H_I(J_NMDA S_E - S_I + W_I I_0) (bisection).

    The right side decreases in S_I, so the root is unique and lies in [0, tau_I gamma_I 1e-3 H_I(x_I(0))].
    """
    k = p[TAU_I] * p[GAMMA_I] * 1e-3
    base = p[J_N] * S_E + p[W_I] * p[I_0]

    def resid(s):
        return s - k * _transfer(base - s, p[A_I], p[B_I], p[D_I])

    hi = k * _transfer(base, p[A_I], p[B_I], p[D_I])  # resid(hi) >= 0
    return _bisect_increasing(resid, np.zeros_like(hi), hi)


def inverse_transfer_E(rate_hz, p: np.ndarray) -> np.ndarray:
    """x_E [region, batch] in nA with H_E(x_E) = rate_hz (H_E increasing; rate_hz > 0)."""
    d = p[D_E]
    target = np.broadcast_to(d * rate_hz, d.shape)  # f(s) = d r, s = d (a x - b)
    hi = target.copy()  # f(s) >= s
    lo = np.minimum(target - 1.0, -1.0)
    for _ in range(64):  # f(lo) <= d r: widen downwards (f -> 0 as s -> -inf)
        bad = _f(lo) > target
        if not np.any(bad):
            break
        lo = np.where(bad, 2.0 * lo, lo)
    s = _bisect_increasing(lambda s: _f(s) - target, lo, hi)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (s / d + p[B_E]) / p[A_E]


def _currents(S_E, S_I, p, w):
    lr = p[G] * p[J_N] * (w @ S_E)
    x_e = p[W_P] * p[J_N] * S_E - p[J_I] * S_I + p[W_E] * p[I_0] + lr
    x_i = p[J_N] * S_E - S_I + p[W_I] * p[I_0]
    return x_e, x_i


def excitatory_rate(S_E, S_I, p, weights) -> np.ndarray:
    """Excitatory rate H_E [region, batch] in Hz at states S_E, S_I [region, batch] (delay-free input).

    ``p``: rww_ei parameters [param, region, batch] (J_I taken from p); ``weights``: (N, N), j onto i.
    """
    p, w = _check(p, weights)
    S_E = np.asarray(S_E, dtype=np.float64)
    S_I = np.asarray(S_I, dtype=np.float64)
    if S_E.shape != p.shape[1:] or S_I.shape != p.shape[1:]:
        raise ValueError(f"S_E and S_I must have shape [region, batch] = {p.shape[1:]}, got {S_E.shape} and "
                         f"{S_I.shape}")
    x_e, _ = _currents(S_E, S_I, p, w)
    return _transfer(x_e, p[A_E], p[B_E], p[D_E])


def jacobian(S_E, S_I, p, weights) -> np.ndarray:
    """Delay-free Jacobian [batch, 2N, 2N] in 1/ms, state order (S_E_1..N, S_I_1..N), J_I from p."""
    p, w = _check(p, weights)
    n, nb = p.shape[1], p.shape[2]
    x_e, x_i = _currents(S_E, S_I, p, w)
    g_e, g_i = p[GAMMA_E] * 1e-3, p[GAMMA_I] * 1e-3
    h_e = _transfer(x_e, p[A_E], p[B_E], p[D_E])
    dh_e = _dtransfer(x_e, p[A_E], p[B_E], p[D_E])
    dh_i = _dtransfer(x_i, p[A_I], p[B_I], p[D_I])
    ke = (1.0 - S_E) * g_e * dh_e  # d(dS_E/dt)/dx_E  [region, batch]
    jac = np.zeros((nb, 2 * n, 2 * n))
    idx = np.arange(n)
    # dS_E/dS_E: coupling through W plus the diagonal (decay, (1 - S_E) factor, local recurrence)
    jac[:, :n, :n] = (ke * p[G] * p[J_N]).T[:, :, None] * w[None]
    jac[:, idx, idx] += (-1.0 / p[TAU_E] - g_e * h_e + ke * p[W_P] * p[J_N]).T
    jac[:, idx, n + idx] = (-ke * p[J_I]).T
    jac[:, n + idx, idx] = (g_i * dh_i * p[J_N]).T
    jac[:, n + idx, n + idx] = (-1.0 / p[TAU_I] - g_i * dh_i).T
    return jac


def fic_inhibition(p, weights, target_hz: float = 3.0) -> FICResult:
    """J_I [region, batch] (nA) that puts every region's excitatory rate at ``target_hz`` (Hz).

    Args:
        p: rww_ei parameters [param, region, batch] in ``rww_ei.PARAMS`` order (as built by
            ``explorer.sim.simulator.param_array``); any parameter may vary per region; J_I is ignored.
        weights: (N, N) structural connectivity as simulated, ``W[i, j]`` = weight from j onto i.
        target_hz: excitatory rate in Hz (> 0, finite).

    Returns:
        FICResult; a batch member that is infeasible (J_I < 0 or not finite, S_I* outside (0, 1]) or
        linearly unstable has ``converged`` False and a ``reason``; nothing is raised for those.

    Raises:
        ValueError: wrong shapes, NaN/inf in p or weights, target_hz not a finite number > 0.
    """
    if isinstance(target_hz, bool) or not isinstance(target_hz, (int, float, np.integer, np.floating)):
        raise ValueError(f"target_hz must be a number (Hz), got {target_hz!r}")
    target_hz = float(target_hz)
    if not (np.isfinite(target_hz) and target_hz > 0):
        raise ValueError(f"target_hz must be finite and > 0 Hz, got {target_hz!r}")
    p, w = _check(p, weights)
    nb = p.shape[2]

    gtr = p[GAMMA_E] * 1e-3 * p[TAU_E] * target_hz
    S_E = gtr / (1.0 + gtr)
    S_I = fixed_point_S_I(p, S_E)
    x_e = inverse_transfer_E(target_hz, p)
    lr = p[G] * p[J_N] * (w @ S_E)
    with np.errstate(divide="ignore", invalid="ignore"):
        j_i = (p[W_P] * p[J_N] * S_E + p[W_E] * p[I_0] + lr - x_e) / S_I

    finite = np.isfinite(j_i)
    j_i = np.where(finite, j_i, np.nan)
    reasons: list[list[str]] = [[] for _ in range(nb)]
    feasible = np.ones(nb, dtype=bool)
    for b in range(nb):
        if (k := int(np.sum(~finite[:, b]))):
            reasons[b].append(f"degenerate parameters (J_I not finite at {k} regions)")
        if (k := int(np.sum(j_i[:, b] < 0))):
            reasons[b].append(f"excitation too weak for the target (J_I < 0 at {k} regions)")
        if (k := int(np.sum(~((S_I[:, b] > 0) & (S_I[:, b] <= 1))))):
            reasons[b].append(f"inhibitory fixed point outside (0, 1] (S_I* max {np.max(S_I[:, b]):.3g} at {k} regions)")
        feasible[b] = not reasons[b]

    max_eig = np.full(nb, np.nan)
    if np.any(feasible):
        q = p[:, :, feasible].copy()
        q[J_I] = j_i[:, feasible]
        jac = jacobian(S_E[:, feasible], S_I[:, feasible], q, w)
        max_eig[feasible] = np.linalg.eigvals(jac).real.max(axis=1)
    for b in np.nonzero(feasible)[0]:
        if not max_eig[b] < 0:
            reasons[b].append(f"fixed point unstable (max Re eig = {max_eig[b]:.3g} /ms)")
    reason = ["; ".join(r) for r in reasons]
    converged = np.array([not r for r in reason], dtype=bool)
    return FICResult(J_I=j_i, converged=converged, reason=reason, S_E=S_E, S_I=S_I, max_eig=max_eig,
                     target_hz=target_hz)
