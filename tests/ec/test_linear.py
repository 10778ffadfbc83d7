"""The linearised Hopf network: covariances against scipy's solvers and a simulation, and the exact gradient."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg

from explorer.ec import empirical_moments, hopf_jacobian, moments
from explorer.ec.linear import fit_gradient


def _network(n: int, seed: int, density: float = 0.5):
    rng = np.random.default_rng(seed)
    w = rng.random((n, n)) * (rng.random((n, n)) < density)
    np.fill_diagonal(w, 0.0)
    return w, rng.uniform(0.04, 0.07, n)


def test_moments_match_scipy_lyapunov_and_expm():
    w, f = _network(20, 0)
    k = hopf_jacobian(w, 0.7, -0.03, f)
    got = moments(k, 2.0)
    p = linalg.solve_continuous_lyapunov(k, -2.0 * np.eye(20, dtype=complex))
    sd = np.sqrt(np.diag(p.real / 2))
    assert got.stable
    np.testing.assert_allclose(got.fc, p.real / 2 / np.outer(sd, sd), atol=1e-10)
    np.testing.assert_allclose(got.cov_tau, (linalg.expm(2.0 * k) @ p).real / 2 / np.outer(sd, sd), atol=1e-10)
    np.testing.assert_allclose(np.diag(got.fc), 1.0, atol=1e-12)


def test_unstable_network_has_no_moments():
    w, f = _network(6, 1)
    got = moments(hopf_jacobian(w, 0.5, 0.05, f), 2.0)  # a > 0: the origin is unstable
    assert not got.stable and np.isnan(got.fc).all()


def test_gradient_matches_finite_differences():
    w, f = _network(10, 2)
    other, _ = _network(10, 3)
    target = moments(hopf_jacobian(w + 0.5 * other, 0.8, -0.02, f), 2.0)
    fit = fit_gradient(w, 0.8, -0.02, f, 2.0, target)
    h = 1e-6
    for i, j in [(0, 1), (3, 7), (9, 2), (5, 4)]:
        wp, wm = w.copy(), w.copy()
        wp[i, j] += h
        wm[i, j] -= h
        num = (fit_gradient(wp, 0.8, -0.02, f, 2.0, target).loss - fit_gradient(wm, 0.8, -0.02, f, 2.0, target).loss)
        assert fit.grad[i, j] == pytest.approx(num / (2 * h), rel=1e-4, abs=1e-10)
    assert np.all(np.diag(fit.grad) == 0)


def test_linear_moments_match_a_simulated_linear_network():
    """Euler-Maruyama of dz = K z dt + noise, long enough: its FC and lagged covariance are the analytic ones."""
    w, f = _network(5, 4, density=0.8)
    k = hopf_jacobian(w, 0.3, -0.1, f)
    rng = np.random.default_rng(0)
    dt, steps, every = 0.05, 400_000, 40           # s; 20000 s sampled every 2 s
    z = np.zeros(5, dtype=complex)
    a = np.eye(5) + dt * k
    out = []
    noise = np.sqrt(dt) * (rng.standard_normal((steps, 5)) + 1j * rng.standard_normal((steps, 5)))
    for t in range(steps):
        z = a @ z + noise[t]
        if t % every == 0:
            out.append(z.real.copy())
    x = np.array(out[100:])
    emp = empirical_moments(x, 1)
    ana = moments(k, 2.0)
    assert np.abs(emp.fc - ana.fc).max() < 0.06
    assert np.abs(emp.cov_tau - ana.cov_tau).max() < 0.06


def test_empirical_moments_lag_convention():
    rng = np.random.default_rng(5)
    x0 = rng.standard_normal(2001)
    x = np.stack([x0[1:], x0[:-1]], axis=1)          # region 1 lags region 0 by one sample
    emp = empirical_moments(x, 1)
    assert emp.cov_tau[1, 0] > 0.95 and abs(emp.cov_tau[0, 1]) < 0.1
    with pytest.raises(ValueError, match="lag"):
        empirical_moments(x[:3], 5)


def _allpass(omega_max: float, panels: int, tau: float):
    from explorer.ec.linear import Spectral

    om = np.linspace(-omega_max, omega_max, panels + 1)
    s = np.stack([np.ones_like(om), np.exp(1j * om * tau)]) / (2 * np.pi)
    beta = np.diff(s, axis=1) / np.diff(om)
    return Spectral(np.stack([om[:-1], om[1:]]), s[:, :-1] - beta * om[:-1], beta)


def test_an_all_pass_filter_gives_the_unfiltered_moments_and_gradient():
    from explorer.ec.linear import filtered_fit_gradient

    w, f = _network(8, 6)
    other, _ = _network(8, 7)
    target = moments(hopf_jacobian(w + 0.4 * other, 0.8, -0.02, f), 2.0)
    plain = fit_gradient(w, 0.8, -0.02, f, 2.0, target)
    wide = filtered_fit_gradient(w, 0.8, -0.02, f, _allpass(400.0, 200_000, 2.0), target)
    assert np.abs(wide.moments.fc - plain.moments.fc).max() < 1e-3       # the tails beyond 400 rad/s
    assert np.abs(wide.moments.cov_tau - plain.moments.cov_tau).max() < 1e-3
    assert np.abs(wide.grad - plain.grad).max() < 0.02 * np.abs(plain.grad).max()


def test_band_passed_gradient_matches_finite_differences():
    from scipy import signal

    from explorer.ec.linear import filtered_fit_gradient, spectral

    w, f = _network(10, 8)
    other, _ = _network(10, 9)
    target = moments(hopf_jacobian(w + 0.3 * other, 0.8, -0.02, f), 2.0)
    spec = spectral(signal.butter(2, [0.008, 0.08], btype="bandpass", fs=0.5, output="sos"), 2.0, 2.0)
    fit = filtered_fit_gradient(w, 0.8, -0.02, f, spec, target)
    h = 1e-6
    for i, j in [(0, 1), (3, 7), (9, 2), (5, 4)]:
        wp, wm = w.copy(), w.copy()
        wp[i, j] += h
        wm[i, j] -= h
        num = (filtered_fit_gradient(wp, 0.8, -0.02, f, spec, target).loss
               - filtered_fit_gradient(wm, 0.8, -0.02, f, spec, target).loss) / (2 * h)
        assert fit.grad[i, j] == pytest.approx(num, rel=1e-4, abs=1e-10)
    # the band-pass changes the moments: a filtered twin is not the unfiltered one
    assert np.abs(fit.moments.fc - fit_gradient(w, 0.8, -0.02, f, 2.0, target).moments.fc).max() > 0.01


def test_band_passed_moments_match_a_filtered_simulation():
    """The linear network simulated, sampled every 2 s and band-passed with sosfiltfilt: its FC and lagged
    covariance are the filtered analytic ones."""
    from scipy import signal

    from explorer.ec.linear import spectral, twin_moments

    w, f = _network(4, 10, density=0.8)
    k = hopf_jacobian(w, 0.3, -0.05, f)
    rng = np.random.default_rng(1)
    dt, every, samples = 0.05, 40, 12000
    a = np.eye(4) + dt * k
    z = np.zeros(4, dtype=complex)
    out = []
    for _ in range(samples):
        noise = np.sqrt(dt) * (rng.standard_normal((every, 4)) + 1j * rng.standard_normal((every, 4)))
        for t in range(every):
            z = a @ z + noise[t]
        out.append(z.real.copy())
    sos = signal.butter(2, [0.008, 0.08], btype="bandpass", fs=0.5, output="sos")
    x = signal.sosfiltfilt(sos, np.array(out), axis=0)[200:-200]
    emp = empirical_moments(x, 1)
    ana = twin_moments(w, 0.3, -0.05, f, 2.0, spectral(sos, 2.0, 2.0))
    plain = moments(k, 2.0)
    err, err_plain = np.abs(emp.fc - ana.fc).max(), np.abs(emp.fc - plain.fc).max()
    # measured: 0.013 and 0.016 against the unfiltered moments' 0.13 and 0.20
    assert err < 0.04 and np.abs(emp.cov_tau - ana.cov_tau).max() < 0.04
    assert err < err_plain and np.abs(emp.cov_tau - ana.cov_tau).max() < np.abs(emp.cov_tau - plain.cov_tau).max()
