"""Balloon-Windkessel BOLD: impulse response and the online sub-step."""

from __future__ import annotations

import numpy as np

import importlib
from explorer.sim import simulate
from explorer.sim.bold import impulse_response


def test_impulse_response_peaks_4_to_6_s_after_input():
    t, y = impulse_response(duration_s=20.0, dt_s=1e-3, pulse_s=0.1)
    peak = t[np.argmax(y)]
    assert 4.0 <= peak <= 6.0, peak
    assert y.max() > 0 and abs(y[-1]) < 0.2 * y.max()  # returns towards baseline (undershoot allowed)


def test_substep_of_1ms_matches_integration_at_dt(monkeypatch):
    rng = np.random.default_rng(0)
    n = 4
    w = rng.random((n, n))
    np.fill_diagonal(w, 0)
    kw = dict(duration_s=6.0, dt_ms=0.1, noise_sigma=0.01, seed=2, bold_tr_s=0.5, tavg_ms=None, transient_s=0.0)
    coarse = simulate("rww_ei", w, np.full((n, n), 20.0), {"G": 0.5}, **kw)
    assert coarse.attrs["bold_substep_ms"] == 1.0
    simmod = importlib.import_module("explorer.sim.simulator")
    monkeypatch.setattr(simmod, "BOLD_SUBSTEP_MS", 0.1)
    fine = simulate("rww_ei", w, np.full((n, n), 20.0), {"G": 0.5}, **kw)
    assert fine.attrs["bold_substep_ms"] == 0.1
    a, b = coarse["bold"].values, fine["bold"].values
    assert np.abs(a - b).max() < 1e-3 * np.ptp(b)


def test_bold_memory_does_not_grow_with_duration():
    # monitors keep only the samples: the returned arrays scale with duration / TR, nothing else
    w = np.ones((3, 3)) - np.eye(3)
    kw = dict(bold_tr_s=1.0, tavg_ms=None, transient_s=0.0, noise_sigma=0.0)
    short = simulate("rww", w, w * 10, {}, duration_s=2.0, **kw)
    long = simulate("rww", w, w * 10, {}, duration_s=8.0, **kw)
    assert short["bold"].shape == (1, 2, 3) and long["bold"].shape == (1, 8, 3)
    assert short.attrs["max_delay_steps"] == long.attrs["max_delay_steps"] == 5
