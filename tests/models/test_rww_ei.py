"""rww_ei against TVB's ReducedWongWangExcInh equations and against a scipy root-finder."""

from __future__ import annotations

import numpy as np
from scipy.optimize import root

from explorer.models import rww_ei
from explorer.sim import simulate


def tvb_numpy_dfun(S, c0, a_e=310.0, b_e=125.0, d_e=0.160, gamma_e=0.641 / 1000, tau_e=100.0, w_p=1.4,
                   J_N=0.15, W_e=1.0, a_i=615.0, b_i=177.0, d_i=0.087, gamma_i=1.0 / 1000, tau_i=10.0,
                   J_i=1.0, W_i=0.7, I_o=0.382, I_ext=0.0, G=2.0, lamda=0.0):
    """TVB 2.x ``ReducedWongWangExcInh._numpy_dfun`` transcribed (TVB's defaults, time in ms)."""
    coupling = G * J_N * c0
    J_N_S_e = J_N * S[0]
    x_e = w_p * J_N_S_e - J_i * S[1] + W_e * I_o + coupling + I_ext
    x_e = a_e * x_e - b_e
    H_e = x_e / (1 - np.exp(-d_e * x_e))
    dS_e = -(S[0] / tau_e) + (1 - S[0]) * H_e * gamma_e
    x_i = J_N_S_e - S[1] + W_i * I_o + lamda * coupling
    x_i = a_i * x_i - b_i
    H_i = x_i / (1 - np.exp(-d_i * x_i))
    dS_i = -(S[1] / tau_i) + H_i * gamma_i
    return np.array([dS_e, dS_i])


def _ours(S, c0, params):
    B = S.shape[1]
    m = rww_ei.MODEL
    p = np.empty((len(m.params), 1, B))
    for k, par in enumerate(m.params):
        p[k] = params.get(par.name, par.default)
    x = np.ascontiguousarray(S[:, None, :])
    dx = np.zeros((2, B))
    m.dfun(x, 0, np.ascontiguousarray(c0[None, :]), p, 0.0, dx, B)
    return dx


def test_dfun_matches_tvb_numpy_dfun():
    rng = np.random.default_rng(0)
    S = rng.random((2, 500))
    c0 = rng.random(500) * 3
    np.testing.assert_allclose(_ours(S, c0, {"G": 2.0}), tvb_numpy_dfun(S, c0, G=2.0), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(_ours(S, c0, {"G": 0.7, "J_I": 1.3, "I_0": 0.3}),
                               tvb_numpy_dfun(S, c0, G=0.7, J_i=1.3, I_o=0.3), rtol=1e-12, atol=1e-15)


def test_noise_free_network_settles_on_the_scipy_fixed_point():
    rng = np.random.default_rng(4)
    n = 3
    w = rng.random((n, n))
    np.fill_diagonal(w, 0.0)
    w /= w.max()
    ln = rng.uniform(10, 80, (n, n))
    G = 0.3
    ds = simulate("rww_ei", w, ln, {"G": G}, duration_s=10.0, dt_ms=0.1, velocity=5.0, noise_sigma=0.0,
                  tavg_ms=1.0, bold_tr_s=None, transient_s=0.0)
    sim = ds["tavg"].values[0, -1]  # (region, state)

    def f(s):
        se, si = s[:n], s[n:]
        return tvb_numpy_dfun(np.array([se, si]), w @ se, G=G).ravel()

    sol = root(f, np.full(2 * n, 0.1), options={"xtol": 1e-12})
    assert sol.success
    np.testing.assert_allclose(sim[:, 0], sol.x[:n], atol=1e-6)
    np.testing.assert_allclose(sim[:, 1], sol.x[n:], atol=1e-6)


def test_transfer_is_continuous_at_its_removable_singularity():
    a, b, d = 310.0, 125.0, 0.16
    xs = b / a + np.array([-1e-6, -1e-9, 0.0, 1e-9, 1e-6]) / a
    h = np.array([rww_ei.transfer(x, a, b, d) for x in xs])
    assert np.all(np.isfinite(h))
    np.testing.assert_allclose(h, 1.0 / d, rtol=1e-5)
    np.testing.assert_allclose(rww_ei.transfer(b / a + 0.01, a, b, d),
                               (a * (b / a + 0.01) - b) / (1 - np.exp(-d * (a * (b / a + 0.01) - b))), rtol=1e-12)
