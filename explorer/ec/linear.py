"""The linearised Hopf network and its analytic covariances (no simulation).

Around the fixed point z = 0 (a < 0), the Hopf network of :mod:`explorer.models.hopf` with
``z = x + i y`` is the complex Ornstein-Uhlenbeck process::

    dz/dt = K z + sigma (xi_x + i xi_y),    K = diag(a + i omega) + G (W - diag(W 1))

(time in s, ``omega = 2 pi f`` with f in Hz, W the connection strengths, diffusive coupling as in
the simulator; delays are neglected, they are ms against the model's ~20 s period). The system is
invariant under z -> exp(i theta) z, so the covariance of x is half the real part of the complex
one: with ``P = E[z z^H]`` solving ``K P + P K^H + 2 sigma^2 I = 0`` (continuous Lyapunov),

    E[x(t) x(t)^T] = Re(P) / 2,      E[x(t + tau) x(t)^T] = Re(expm(K tau) P) / 2.

Correlations do not depend on sigma, so sigma = 1 below. Deco et al. 2019/2021 ("generative
effective connectivity") and Gilson et al. 2016 (MOU-EC) fit W from exactly these two moments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import linalg

TWO_PI = 2.0 * np.pi


def hopf_jacobian(weights: np.ndarray, g: float, a: np.ndarray | float, f_hz: np.ndarray | float) -> np.ndarray:
    """The complex (N, N) drift ``K`` (1/s) of the linearised Hopf network.

    weights: (N, N), ``weights[i, j]`` the strength of the connection j -> i (the simulator's row
    convention); g: global coupling G (1/s); a: bifurcation parameter per region or one value (1/s);
    f_hz: intrinsic frequency per region or one value (Hz).
    """
    w = np.asarray(weights, dtype=np.float64)
    n = w.shape[0]
    a = np.broadcast_to(np.asarray(a, dtype=np.float64), (n,))
    f = np.broadcast_to(np.asarray(f_hz, dtype=np.float64), (n,))
    k = g * (w - np.diag(w.sum(axis=1))) + np.diag(a + 1j * TWO_PI * f)
    return k.astype(np.complex128)


@dataclass(frozen=True)
class Moments:
    """The two normalised moments of x: zero-lag correlation ``fc`` and lag-tau covariance ``cov_tau``.

    ``cov_tau[i, j] = E[x_i(t + tau) x_j(t)] / (sd_i sd_j)``; ``stable``: every eigenvalue of K has
    a negative real part (otherwise the moments are NaN: the linearisation has no stationary state).
    """

    fc: np.ndarray
    cov_tau: np.ndarray
    stable: bool


def moments(k: np.ndarray, tau_s: float) -> Moments:
    """Stationary FC and lag-``tau_s`` covariance (normalised) of the process ``dz = K z dt + noise``.

    One eigendecomposition ``K = V diag(l) V^-1`` gives all three pieces: the stability test, the
    Lyapunov solution ``P = V [ -(V^-1 Q V^-H)_kl / (l_k + conj(l_l)) ] V^H`` and
    ``expm(K tau) = V diag(exp(l tau)) V^-1`` (about 10 ms at N = 80 on one core, against 15 ms
    for scipy's Schur-based solvers). Where V is ill-conditioned (a nearly defective K), scipy's
    solvers are used instead.
    """
    n = k.shape[0]
    lam, v = np.linalg.eig(k)
    if np.max(lam.real) >= 0:  # no stationary state: some mode grows or never decays
        nan = np.full((n, n), np.nan)
        return Moments(nan, nan, False)
    try:
        vinv = np.linalg.inv(v)
        ok = np.linalg.cond(v) < 1e8
    except np.linalg.LinAlgError:
        ok = False
    if ok:
        q = 2.0 * (vinv @ vinv.conj().T)
        p = v @ (-q / (lam[:, None] + lam.conj()[None, :])) @ v.conj().T
        prop = (v * np.exp(lam * float(tau_s))[None, :]) @ vinv
    else:
        p = linalg.solve_continuous_lyapunov(k, -2.0 * np.eye(n, dtype=np.complex128))
        prop = linalg.expm(k * float(tau_s))
    cov = p.real / 2.0
    lagged = (prop @ p).real / 2.0
    sd = np.sqrt(np.clip(np.diag(cov), 1e-300, None))
    norm = np.outer(sd, sd)
    return Moments(cov / norm, lagged / norm, True)


def empirical_moments(x: np.ndarray, lag: int) -> Moments:
    """FC and lag-``lag`` (TRs) covariance of a preprocessed (T, N) series, normalised as :class:`Moments`.

    ``cov_tau[i, j]`` pairs region i at t + lag with region j at t, the convention of :func:`moments`.
    """
    x = np.asarray(x, dtype=np.float64)
    t = x.shape[0]
    if lag < 1 or lag >= t - 1:
        raise ValueError(f"lag of {lag} TRs does not fit a series of {t} TRs")
    xc = x - x.mean(axis=0)
    sd = xc.std(axis=0)
    norm = np.outer(sd, sd)
    fc = (xc.T @ xc) / t / norm
    lagged = (xc[lag:].T @ xc[:-lag]) / (t - lag) / norm
    return Moments(fc, lagged, True)


@dataclass(frozen=True)
class Fit:
    """One evaluation of the fit: the model's moments, the loss and its gradient in W.

    loss: ``mean((FC - FC_emp)^2)`` over the off-diagonal pairs plus ``mean((COV_tau - COV_tau_emp)^2)``
    over every pair; grad: d loss / d W (same shape as W; NaN where the model is unstable).
    """

    moments: Moments
    loss: float
    grad: np.ndarray


def fit_gradient(weights: np.ndarray, g: float, a: np.ndarray | float, f_hz: np.ndarray | float, tau_s: float,
                 target: Moments) -> Fit:
    """Loss and exact gradient (adjoint method, in the eigenbasis of K) of the linearised Hopf fit.

    The adjoint of the Lyapunov equation ``K P + P K^H + Q = 0`` is ``K^H S + S K + dL/dP = 0``;
    the lagged term goes through the Frechet derivative of ``expm(K tau)``, both diagonal in the
    eigenbasis of K (divided differences of ``exp``). Costs one eigendecomposition and a dozen
    (N, N) products: about 12 ms at N = 80 on one core.
    """
    w = np.asarray(weights, dtype=np.float64)
    n = w.shape[0]
    k = hopf_jacobian(w, g, a, f_hz)
    lam, v = np.linalg.eig(k)
    nan = np.full((n, n), np.nan)
    if np.max(lam.real) >= 0:
        return Fit(Moments(nan, nan, False), math.inf, nan)
    vinv = np.linalg.inv(v)
    vh = v.conj().T
    denom = lam[:, None] + lam.conj()[None, :]
    q = 2.0 * (vinv @ vinv.conj().T)
    p = v @ (-q / denom) @ vh                       # E[z z^H]
    et = np.exp(lam * float(tau_s))
    prop = (v * et[None, :]) @ vinv                 # expm(K tau)
    lagged = prop @ p
    cov = p.real / 2.0
    var = np.clip(np.diag(cov).copy(), 1e-300, None)
    sd = np.sqrt(var)
    norm = np.outer(sd, sd)
    fc = cov / norm
    ctau = lagged.real / 2.0 / norm
    off = ~np.eye(n, dtype=bool)
    r0 = np.where(off, fc - target.fc, 0.0)
    r1 = ctau - target.cov_tau
    n0, n1 = off.sum(), n * n
    loss = float((r0 ** 2).sum() / n0 + (r1 ** 2).sum() / n1)
    # d loss / d (Sigma_xx, Sigma_tau_xx), through the normalisation by sd_i sd_j
    g0 = 2.0 * r0 / n0
    g1 = 2.0 * r1 / n1
    d_cov = g0 / norm
    d_lag = g1 / norm
    diag = -((g0 * fc).sum(axis=1) + (g0 * fc).sum(axis=0) + (g1 * ctau).sum(axis=1) + (g1 * ctau).sum(axis=0))
    d_cov[np.diag_indices(n)] += diag / (2.0 * var)
    # complex adjoints (real block form [[R, -I], [I, R]] <-> R + iI; a real xx-block gradient maps to half of it)
    gl = d_lag / 2.0
    gp = d_cov / 2.0 + (prop.conj().T @ gl + gl.T @ prop) / 2.0
    gp = (gp + gp.conj().T) / 2.0
    # K^H S + S K + gp = 0, in the eigenbasis: S = V^-H [ -(V^H gp V) / (conj(l) + l) ] V^-1
    s = vinv.conj().T @ (-(vh @ gp @ v) / denom.conj()) @ vinv
    m = s @ (p / 2.0) * 2.0
    # Frechet adjoint of expm at K tau: tau L(K^H tau, gl Sigma), K^H = V^-H diag(conj l) V^H
    x = gl @ (p / 2.0)
    d = lam.conj() * float(tau_s)
    ed = np.exp(d)
    dd = d[:, None] - d[None, :]
    close = np.abs(dd) < 1e-12
    phi = np.where(close, ed[:, None], (ed[:, None] - ed[None, :]) / np.where(close, 1.0, dd))
    m = m + float(tau_s) * (vinv.conj().T @ ((vh @ x @ vinv.conj().T) * phi) @ vh)
    da = 2.0 * m.real                              # d loss / d A, A = G (W - diag(W 1)) + diag(a)
    grad = g * (da - np.diag(da)[:, None])
    np.fill_diagonal(grad, 0.0)
    return Fit(Moments(fc, ctau, True), loss, grad)
