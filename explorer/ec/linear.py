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
        return _unstable(n).moments
    try:
        vinv = np.linalg.inv(v)
        ok = np.linalg.cond(v) < 1e8
    except np.linalg.LinAlgError:
        ok = False
    if ok:
        p, prop, _ = _stationary(lam, v, vinv, v.conj().T, tau_s)
    else:
        p = linalg.solve_continuous_lyapunov(k, -2.0 * np.eye(n, dtype=np.complex128))
        prop = linalg.expm(k * float(tau_s))
    fc, ctau, _, _ = _normalised(p.real / 2.0, (prop @ p).real / 2.0)
    return Moments(fc, ctau, True)


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


def _eigen(weights: np.ndarray, g: float, a: np.ndarray | float, f_hz: np.ndarray | float):
    """``(l, V, V^-1, V^H)`` of the network's drift K, or None when a mode does not decay (no stationary state)."""
    lam, v = np.linalg.eig(hopf_jacobian(np.asarray(weights, dtype=np.float64), g, a, f_hz))
    if np.max(lam.real) >= 0:
        return None
    return lam, v, np.linalg.inv(v), v.conj().T


def _unstable(n: int) -> Fit:
    nan = np.full((n, n), np.nan)
    return Fit(Moments(nan, nan, False), math.inf, nan)


def _stationary(lam: np.ndarray, v: np.ndarray, vinv: np.ndarray, vh: np.ndarray, tau_s: float):
    """``(P, expm(K tau), l_k + conj l_l)`` in the eigenbasis: ``P = E[z z^H]`` solves the Lyapunov equation
    ``K P + P K^H + 2 I = 0``, ``P = V [ -(V^-1 2 V^-H)_kl / (l_k + conj l_l) ] V^H``."""
    denom = lam[:, None] + lam.conj()[None, :]
    p = v @ (-2.0 * (vinv @ vinv.conj().T) / denom) @ vh
    prop = (v * np.exp(lam * float(tau_s))[None, :]) @ vinv
    return p, prop, denom


def _normalised(cov: np.ndarray, lagged: np.ndarray):
    """``(fc, cov_tau, var, sd_i sd_j)``: the zero-lag and lagged covariances divided by the regions' sd."""
    var = np.clip(np.diag(cov).copy(), 1e-300, None)
    norm = np.outer(np.sqrt(var), np.sqrt(var))
    return cov / norm, lagged / norm, var, norm


def _to_weights(da: np.ndarray, g: float) -> np.ndarray:
    """d loss / d W from d loss / d A, with ``A = G (W - diag(W 1)) + diag(a)`` (zero on the diagonal)."""
    grad = g * (da - np.diag(da)[:, None])
    np.fill_diagonal(grad, 0.0)
    return grad


def _loss(cov: np.ndarray, lagged: np.ndarray, target: Moments
          ) -> tuple[np.ndarray, np.ndarray, float, np.ndarray, np.ndarray]:
    """FC and lag-tau covariance normalised by the regions' sd, the loss against ``target`` and its
    gradient in the raw zero-lag and lagged covariances (through the normalisation)."""
    n = cov.shape[0]
    fc, ctau, var, norm = _normalised(cov, lagged)
    off = ~np.eye(n, dtype=bool)
    r0 = np.where(off, fc - target.fc, 0.0)
    r1 = ctau - target.cov_tau
    n0, n1 = off.sum(), n * n
    loss = float((r0 ** 2).sum() / n0 + (r1 ** 2).sum() / n1)
    g0, g1 = 2.0 * r0 / n0, 2.0 * r1 / n1
    d_cov, d_lag = g0 / norm, g1 / norm
    diag = -((g0 * fc).sum(axis=1) + (g0 * fc).sum(axis=0) + (g1 * ctau).sum(axis=1) + (g1 * ctau).sum(axis=0))
    d_cov[np.diag_indices(n)] += diag / (2.0 * var)
    return fc, ctau, loss, d_cov, d_lag


def fit_gradient(weights: np.ndarray, g: float, a: np.ndarray | float, f_hz: np.ndarray | float, tau_s: float,
                 target: Moments) -> Fit:
    """Loss and exact gradient (adjoint method, in the eigenbasis of K) of the linearised Hopf fit.

    The adjoint of the Lyapunov equation ``K P + P K^H + Q = 0`` is ``K^H S + S K + dL/dP = 0``;
    the lagged term goes through the Frechet derivative of ``expm(K tau)``, both diagonal in the
    eigenbasis of K (divided differences of ``exp``). Costs one eigendecomposition and a dozen
    (N, N) products: about 12 ms at N = 80 on one core.
    """
    eig = _eigen(weights, g, a, f_hz)
    if eig is None:
        return _unstable(np.shape(weights)[0])
    lam, v, vinv, vh = eig
    p, prop, denom = _stationary(lam, v, vinv, vh, tau_s)   # E[z z^H], expm(K tau)
    lagged = prop @ p
    fc, ctau, loss, d_cov, d_lag = _loss(p.real / 2.0, lagged.real / 2.0, target)
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
    return Fit(Moments(fc, ctau, True), loss, _to_weights(2.0 * m.real, g))


# -- band-passed moments --------------------------------------------------------------------------
@dataclass(frozen=True)
class Spectral:
    """The preprocessing's band-pass as the analytic moments see it: panels of a frequency grid (rad/s)
    on which ``S_c(omega) = P(omega) exp(i omega c) / (2 pi)`` is linear (``alpha + beta omega``), for the
    lags c = 0 and c = tau. ``P`` is the power response of the zero-phase filter (``sosfiltfilt``:
    ``|H|^4``) up to the Nyquist frequency of the TR."""

    omega: np.ndarray                 # (2, M): each panel's lower and upper edge
    alpha: np.ndarray                 # (2, M): lag 0, lag tau
    beta: np.ndarray                  # (2, M)


def spectral(sos: np.ndarray, tr_s: float, tau_s: float, panels: int = 256, floor: float = 1e-9) -> Spectral:
    """The :class:`Spectral` of a band-pass (second-order sections at TR ``tr_s``) and a lag ``tau_s`` (s).

    ``panels`` equal panels up to the Nyquist frequency (the poles are integrated exactly on each, so
    the grid only has to follow the filter and ``exp(i omega tau)``); panels where the power response
    stays below ``floor`` (relative) are dropped. Aliasing above the Nyquist frequency is neglected."""
    from scipy.signal import sosfreqz

    nyq = np.pi / float(tr_s)
    edges = np.linspace(-nyq, nyq, int(panels) + 1)
    _, h = sosfreqz(sos, worN=np.abs(edges) * float(tr_s))
    power = np.abs(h) ** 4
    s = np.stack([power, power * np.exp(1j * edges * float(tau_s))]) / (2.0 * np.pi)
    beta = np.diff(s, axis=1) / np.diff(edges)
    alpha = s[:, :-1] - beta * edges[:-1]
    keep = np.maximum(power[:-1], power[1:]) > floor * power.max()
    return Spectral(np.stack([edges[:-1][keep], edges[1:][keep]]), alpha[:, keep], beta[:, keep])


def _panel_integrals(lam: np.ndarray, spec: Spectral):
    """For each lag c and mode k: ``u = int S_c / (i w - l_k)``, ``u' = d u / d l_k``, ``w = int S_c / (-i w - conj l_k)``
    and ``w' = d w / d conj(l_k)``, exact on each panel where ``S_c`` is linear (the poles need no fine grid)."""
    lo, hi = spec.omega[0][:, None], spec.omega[1][:, None]
    u0, u1 = 1j * lo - lam[None, :], 1j * hi - lam[None, :]       # (M, N), Re > 0 for a stable mode
    v0, v1 = -1j * lo - lam.conj()[None, :], -1j * hi - lam.conj()[None, :]
    dlu, dlv = np.log(u1) - np.log(u0), np.log(v1) - np.log(v0)
    du, dv = u1 - u0, v1 - v0
    diu, div = 1.0 / u1 - 1.0 / u0, 1.0 / v1 - 1.0 / v0
    out = []
    for a, b in zip(spec.alpha, spec.beta):
        a, b = a[:, None], b[:, None]
        au = a - 1j * b * lam[None, :]
        av = a + 1j * b * lam.conj()[None, :]
        uu = (-1j * au * dlu - b * du).sum(axis=0)
        du_ = (1j * au * diu - b * dlu).sum(axis=0)
        ww = (1j * av * dlv - b * dv).sum(axis=0)
        dw_ = (-1j * av * div - b * dlv).sum(axis=0)
        out.append((uu, du_, ww, dw_))
    return out


def _filtered(lam: np.ndarray, v: np.ndarray, vi: np.ndarray, vh: np.ndarray, spec: Spectral):
    """The band-passed covariances ``P_c = V [Q~ o Psi_c] V^H`` (lags 0 and tau) and what their gradient needs:
    ``(Q~, -(l_k + conj l_l), the panel integrals, [Psi_0, Psi_tau], [M_0, M_tau], [P_0, P_tau])``."""
    qt = 2.0 * (vi @ vi.conj().T)
    den = -(lam[:, None] + lam.conj()[None, :])
    ints = _panel_integrals(lam, spec)
    psis = [(uu[:, None] + ww[None, :]) / den for uu, _, ww, _ in ints]
    ms = [qt * psi for psi in psis]
    return qt, den, ints, psis, ms, [v @ m @ vh for m in ms]


def filtered_fit_gradient(weights: np.ndarray, g: float, a: np.ndarray | float, f_hz: np.ndarray | float,
                          spec: Spectral, target: Moments) -> Fit:
    """:func:`fit_gradient` for band-passed data: the model's FC and lag-tau covariance after the same filter.

    In the eigenbasis ``K = V diag(l) V^-1`` the filtered covariances are ``V [Q~ o Psi_c] V^H`` with
    ``Q~ = 2 V^-1 V^-H`` and ``Psi_c[k, l] = (u_c[k] + w_c[l]) / -(l_k + conj l_l)`` (partial fractions of
    the two poles: only 2N one-dimensional integrals of the filter's power response, :func:`spectral`).
    Unfiltered, ``u_0 = w_0 = 1/2``, ``u_tau = exp(l tau)``, ``w_tau = 0``: the Lyapunov solution and
    ``expm(K tau)``. The gradient goes back through the eigendecomposition (``dl = diag(V^-1 dK V)``,
    ``dV = V (F o V^-1 dK V)``, ``F[k, l] = 1 / (l_l - l_k)``; the loss does not depend on the scale of the
    eigenvectors). About 2x :func:`fit_gradient`'s time.
    """
    eig = _eigen(weights, g, a, f_hz)
    if eig is None:
        return _unstable(np.shape(weights)[0])
    lam, v, vi, vh = eig
    qt, den, ints, psis, ms, ps = _filtered(lam, v, vi, vh, spec)
    fc, ctau, loss, d_cov, d_lag = _loss(ps[0].real / 2.0, ps[1].real / 2.0, target)
    # back through P_c = V M_c V^H, M_c = Q~ o Psi_c, Psi_c(l, conj l), Q~ = 2 V^-1 V^-H, V^-1
    g_v = np.zeros_like(v)
    g_qt = np.zeros_like(qt)
    g_lam = np.zeros_like(lam)
    for gp, m, psi, (uu, du_, ww, dw_) in zip((d_cov / 2.0, d_lag / 2.0), ms, psis, ints):
        g_v += gp @ v @ m.conj().T + gp.T @ v @ m
        g_m = vh @ gp @ v
        g_qt += g_m * psi.conj()
        g_psi = g_m * qt.conj()
        a_ = (du_[:, None] + psi) / den
        b_ = (dw_[None, :] + psi) / den
        g_lam += (g_psi * a_.conj()).sum(axis=1) + (g_psi.conj() * b_).sum(axis=0)
    g_vi = 2.0 * (g_qt + g_qt.conj().T) @ vi
    g_v += -vi.conj().T @ g_vi @ vi.conj().T
    gap = lam[None, :] - lam[:, None]
    tiny = np.abs(gap) <= 1e-10 * np.abs(lam).max()     # the diagonal, and modes that coincide
    f_ = np.where(tiny, 0.0, 1.0 / np.where(tiny, 1.0, gap))
    g_e = np.diag(g_lam) + f_.conj() * (vh @ g_v)
    return Fit(Moments(fc, ctau, True), loss, _to_weights((vi.conj().T @ g_e @ vh).real, g))


def twin_moments(weights: np.ndarray, g: float, a: np.ndarray | float, f_hz: np.ndarray | float, tau_s: float,
                 spec: Spectral | None = None) -> Moments:
    """The linearised twin's FC and lag-tau covariance, band-passed like the data when ``spec`` is given."""
    if spec is None:
        return moments(hopf_jacobian(weights, g, a, f_hz), tau_s)
    eig = _eigen(weights, g, a, f_hz)
    if eig is None:
        return _unstable(np.shape(weights)[0]).moments
    ps = _filtered(*eig, spec)[-1]
    fc, ctau, _, _ = _normalised(ps[0].real / 2.0, ps[1].real / 2.0)
    return Moments(fc, ctau, True)
