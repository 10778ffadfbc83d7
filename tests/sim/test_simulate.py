"""simulate(): validation messages, output layout, transient, float32, Heun."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.errors import ModelError, SimulationError
from explorer.sim import simulate

W = np.array([[0.0, 1.0, 0.5], [1.0, 0.0, 0.2], [0.5, 0.2, 0.0]])
L = np.array([[0.0, 30.0, 50.0], [30.0, 0.0, 20.0], [50.0, 20.0, 0.0]])
QUICK = dict(duration_s=0.1, transient_s=0.0, bold_tr_s=None)


@pytest.mark.parametrize("kwargs,exc,msg", [
    (dict(model="nope"), ModelError, "valid models: rww_ei"),
    (dict(params={"G": 0.1, "Gee": 1}), ModelError, "valid names: .*G"),
    (dict(params={"G": -1.0}), ModelError, "hard limits"),
    (dict(params={"tau_E": 0.0}), ModelError, "hard limits"),
    (dict(params={"G": float("nan")}), ModelError, "finite"),
    (dict(params={"G": [0.1, 0.2, 0.3]}), ModelError, "not per-region"),
    (dict(params=[]), SimulationError, "empty"),
    (dict(weights=np.ones((3, 2))), SimulationError, "square"),
    (dict(lengths=np.ones((2, 2))), SimulationError, "does not match"),
    (dict(lengths=-L), SimulationError, ">= 0 mm"),
    (dict(weights=W * np.nan), SimulationError, "NaN"),
    (dict(dt_ms=0.0), SimulationError, "dt_ms"),
    (dict(dt_ms=-0.1), SimulationError, "dt_ms"),
    (dict(duration_s=0.0), SimulationError, "duration_s"),
    (dict(duration_s=0.10005), SimulationError, "multiple of dt"),
    (dict(bold_tr_s=0.00015), SimulationError, "multiple of dt"),
    (dict(bold_tr_s=1.0), SimulationError, "longer than duration"),
    (dict(bold_tr_s=-2.0), SimulationError, "bold_tr_s"),
    (dict(tavg_ms=0.15), SimulationError, "multiple of dt"),
    (dict(transient_s=-1.0), SimulationError, "transient_s"),
    (dict(velocity=0.0), SimulationError, "velocity"),
    (dict(noise_sigma=-0.1), SimulationError, "noise_sigma"),
    (dict(seed=[1, 2]), SimulationError, "one seed per trial"),
    (dict(integrator="rk4"), SimulationError, "integrator"),
    (dict(dtype="float16"), SimulationError, "dtype"),
    (dict(bold_monitor="nope"), SimulationError, "bold_monitor"),
    (dict(labels=["a"]), SimulationError, "labels"),
])
def test_invalid_inputs_raise_clear_errors(kwargs, exc, msg):
    args = dict(model="rww_ei", weights=W, lengths=L, params={"G": 0.1}, **QUICK)
    args.update(kwargs)
    with pytest.raises(exc, match=msg):
        simulate(**args)


def test_dataset_layout_and_attrs():
    ds = simulate("rww_ei", W, L, [{"G": 0.1}, {"G": 0.2}], duration_s=1.0, dt_ms=0.5, tavg_ms=10.0,
                  bold_tr_s=0.5, seed=7, labels=["a", "b", "c"], noise_sigma=0.01, transient_s=0.0)
    assert ds["bold"].shape == (2, 2, 3) and ds["tavg"].shape == (2, 100, 3, 2)
    assert list(ds["region"].values) == ["a", "b", "c"]
    assert list(ds["seed"].values) == [7, 8]
    np.testing.assert_allclose(ds["tavg_time"].values[:3], [0.01, 0.02, 0.03])
    for key in ("model", "dt_ms", "velocity", "seeds", "wall_s", "compile_s"):
        assert key in ds.attrs
    assert list(ds["noise_sigma"].values) == [0.01, 0.01]
    assert ds.attrs["model"] == "rww_ei" and list(ds.attrs["seeds"]) == [7, 8]
    assert ds.attrs["max_delay_steps"] == 5  # 50 mm / 20 m/s / 0.5 ms
    off = simulate("rww_ei", W, L, {"G": 0.1}, duration_s=0.1, transient_s=0.0, bold_tr_s=None, tavg_ms=None)
    assert "bold" not in off and "tavg" not in off and "diverged" in off


def test_transient_is_simulated_then_discarded():
    kw = dict(dt_ms=0.5, noise_sigma=0.01, seed=3, tavg_ms=5.0, bold_tr_s=None)
    full = simulate("wilson_cowan", W, L, {}, duration_s=0.3, transient_s=0.0, **kw)
    cut = simulate("wilson_cowan", W, L, {}, duration_s=0.2, transient_s=0.1, **kw)
    np.testing.assert_array_equal(cut["tavg"].values[0], full["tavg"].values[0, 20:])


@pytest.mark.parametrize("model,sigma", [("rww_ei", 0.01), ("hopf", 0.02)])
def test_float32_is_close_to_float64(model, sigma):
    """float32 (state, equations, noise, buffer in float32; BOLD in float64) follows float64."""
    rng = np.random.default_rng(0)
    n = 6
    w = rng.random((n, n))
    np.fill_diagonal(w, 0)
    ln = rng.uniform(10, 100, (n, n))
    kw = dict(duration_s=4.0, dt_ms=0.1, noise_sigma=sigma, seed=1, bold_tr_s=0.5, transient_s=0.0)
    a = simulate(model, w, ln, {"G": 0.5}, dtype="float64", **kw)["bold"].values
    b = simulate(model, w, ln, {"G": 0.5}, dtype="float32", **kw)["bold"].values
    assert np.abs(a - b).max() < 1e-4 * np.ptp(a)


def test_noise_free_runs_ignore_the_noise_stream_and_noise_changes_output():
    kw = dict(duration_s=0.2, dt_ms=0.1, tavg_ms=1.0, bold_tr_s=None, seed=5, transient_s=0.0)
    a = simulate("rww", W, L, {}, noise_sigma=0.0, **kw)["tavg"].values
    b = simulate("rww", W, L, {}, noise_sigma=0.0, **kw)["tavg"].values
    c = simulate("rww", W, L, {}, noise_sigma=0.01, **kw)["tavg"].values
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_stochastic_heun_batch_equals_singles():
    kw = dict(duration_s=0.1, dt_ms=0.1, noise_sigma=0.01, tavg_ms=1.0, bold_tr_s=None, integrator="heun",
              transient_s=0.0)
    params = [{"G": 0.1}, {"G": 0.5}, {"G": 0.9}]
    batch = simulate("rww_ei", W, L, params, seed=[4, 5, 6], **kw)["tavg"].values
    for b, seed in enumerate([4, 5, 6]):
        single = simulate("rww_ei", W, L, params[b], seed=seed, **kw)["tavg"].values[0]
        assert np.array_equal(batch[b], single)
    euler = simulate("rww_ei", W, L, params[0], seed=4, **{**kw, "integrator": "euler"})["tavg"].values[0]
    assert not np.array_equal(batch[0], euler) and np.abs(batch[0] - euler).max() < 1e-3


def test_noise_per_trial_equals_the_single_runs():
    kw = dict(duration_s=0.5, dt_ms=0.5, tavg_ms=5.0, bold_tr_s=None, seed=[3, 4], transient_s=0.0)
    both = simulate("rww_ei", W, L, [{"G": 0.1}, {"G": 0.1}], noise_sigma=[0.0, 0.02], **kw)
    quiet = simulate("rww_ei", W, L, {"G": 0.1}, noise_sigma=0.0, duration_s=0.5, dt_ms=0.5, tavg_ms=5.0,
                     bold_tr_s=None, seed=3, transient_s=0.0)
    loud = simulate("rww_ei", W, L, {"G": 0.1}, noise_sigma=0.02, duration_s=0.5, dt_ms=0.5, tavg_ms=5.0,
                    bold_tr_s=None, seed=4, transient_s=0.0)
    np.testing.assert_array_equal(both["tavg"].values[0], quiet["tavg"].values[0])
    np.testing.assert_array_equal(both["tavg"].values[1], loud["tavg"].values[0])
    assert list(both["noise_sigma"].values) == [0.0, 0.02]
    with pytest.raises(SimulationError, match="one per trial"):
        simulate("rww_ei", W, L, [{"G": 0.1}, {"G": 0.1}], noise_sigma=[0.01], **kw)
    with pytest.raises(SimulationError, match="finite number >= 0"):
        simulate("rww_ei", W, L, [{"G": 0.1}, {"G": 0.1}], noise_sigma=[0.01, -1.0], **kw)
