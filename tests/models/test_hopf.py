"""A single Stuart-Landau node oscillates at f with amplitude sqrt(a)."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.sim import simulate


@pytest.mark.parametrize("integrator,f", [("euler", 1.0), ("heun", 10.0)])
def test_single_node_oscillates_at_f_with_amplitude_sqrt_a(integrator, f):
    # growth rate a = 4/s: the cycle is reached within ~1.5 s. Euler inflates the radius by
    # ~omega^2 dt / (4 a) relative, hence f = 1 Hz for Euler; Heun is accurate at 10 Hz.
    a = 4.0
    ds = simulate("hopf", np.zeros((1, 1)), np.zeros((1, 1)), {"a": a, "f": f}, duration_s=4.0, dt_ms=0.1,
                  noise_sigma=0.0, tavg_ms=0.1, bold_tr_s=None, integrator=integrator, transient_s=0.0)
    x = ds["tavg"].sel(state="x").values[0, :, 0]
    y = ds["tavg"].sel(state="y").values[0, :, 0]
    late = slice(len(x) // 2, None)
    amp = np.hypot(x[late], y[late])
    np.testing.assert_allclose(amp, np.sqrt(a), rtol=1e-3)
    phase = np.unwrap(np.arctan2(y[late], x[late]))
    freq = (phase[-1] - phase[0]) / (2 * np.pi * (len(phase) - 1) * 1e-4)
    np.testing.assert_allclose(freq, f, rtol=1e-3)


def test_bold_time_scale_sampling():
    # Deco 2017 style: dt 100 ms, x sampled at TR 2 s as the BOLD proxy
    rng = np.random.default_rng(0)
    w = rng.random((5, 5))
    np.fill_diagonal(w, 0)
    ds = simulate("hopf", w / w.max(), np.zeros((5, 5)), {"a": -0.02, "f": rng.uniform(0.04, 0.07, 5), "G": 0.2},
                  duration_s=200.0, dt_ms=100.0, noise_sigma=0.02, bold_tr_s=2.0, bold_monitor="sample", seed=1,
                  transient_s=0.0)
    bold = ds["bold"].values[0]
    assert bold.shape == (100, 5)
    assert np.all(np.isfinite(bold)) and bold.std() > 0.01
