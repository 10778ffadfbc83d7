"""The model contract: every registered model, same checks (shapes, finiteness, bounds, seeds, batching)."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.errors import ModelError
from explorer.models import MODELS, get_model
from explorer.sim import simulate

N = 4


def _net(seed: int = 0):
    rng = np.random.default_rng(seed)
    w = rng.random((N, N))
    np.fill_diagonal(w, 0.0)
    ln = rng.uniform(5.0, 60.0, (N, N))
    return w / w.max(), ln


def _noise(model) -> float:
    return 0.02 if model.time_unit_ms == 1000.0 else 0.005


@pytest.fixture(params=sorted(MODELS))
def model(request):
    return MODELS[request.param]


def test_registry_and_parameter_table(model):
    assert get_model(model.name) is model
    assert "G" in model.param_names
    for p in model.params:
        assert p.low <= p.default <= p.high, p
        assert p.hard_low <= p.low and p.high <= p.hard_high, p
        assert p.unit and p.doc
    assert 0 <= model.coupled < len(model.states)
    assert model.coupled in model.coupled_states
    assert 0 <= model.bold_state < len(model.states)
    assert len(model.bounds) == len(model.clamp) == len(model.init) == len(model.states)
    assert model.defaults() == {p.name: p.default for p in model.params}
    assert model.param("G").name == "G"


def test_unknown_parameter_lists_valid_names(model):
    with pytest.raises(ModelError) as err:
        model.param("nope")
    assert "G" in str(err.value)


def test_shapes_and_finite_at_defaults(model):
    w, ln = _net()
    ds = simulate(model.name, w, ln, [{}, {}], duration_s=0.4, dt_ms=0.1, noise_sigma=_noise(model),
                  tavg_ms=1.0, bold_tr_s=0.1, seed=3)
    assert ds["bold"].dims == ("trial", "time", "region")
    assert ds["bold"].shape == (2, 4, N)
    assert ds["tavg"].dims == ("trial", "tavg_time", "region", "state")
    assert ds["tavg"].shape == (2, 400, N, len(model.states))
    assert list(ds["state"].values) == list(model.states)
    assert np.all(np.isfinite(ds["bold"].values)) and np.all(np.isfinite(ds["tavg"].values))
    assert not ds["diverged"].any() and np.all(ds["diverged_step"].values == -1)
    np.testing.assert_allclose(ds["time"].values, [0.1, 0.2, 0.3, 0.4])


def test_same_seed_same_output_and_seed_matters(model):
    w, ln = _net()
    kw = dict(duration_s=0.2, dt_ms=0.1, noise_sigma=_noise(model), tavg_ms=1.0, bold_tr_s=0.1)
    a = simulate(model.name, w, ln, {}, seed=11, **kw)
    b = simulate(model.name, w, ln, {}, seed=11, **kw)
    c = simulate(model.name, w, ln, {}, seed=12, **kw)
    assert np.array_equal(a["tavg"].values, b["tavg"].values)
    assert np.array_equal(a["bold"].values, b["bold"].values)
    assert not np.array_equal(a["tavg"].values, c["tavg"].values)


def test_batch_equals_singles_bit_for_bit(model):
    # 19 trials: the vectorised body and the scalar remainder of the batch loop both run
    w, ln = _net(1)
    g = MODELS[model.name].param("G")
    gs = np.linspace(g.low, g.high, 19)
    seeds = list(range(100, 119))
    kw = dict(duration_s=0.2, dt_ms=0.1, noise_sigma=_noise(model), tavg_ms=1.0, bold_tr_s=0.1)
    batch = simulate(model.name, w, ln, [{"G": float(x)} for x in gs], seed=seeds, **kw)
    for b in (0, 9, 17, 18):
        single = simulate(model.name, w, ln, {"G": float(gs[b])}, seed=seeds[b], **kw)
        assert np.array_equal(batch["tavg"].values[b], single["tavg"].values[0])
        assert np.array_equal(batch["bold"].values[b], single["bold"].values[0])


def test_per_region_parameters(model):
    w, ln = _net()
    per = [p for p in model.params if p.per_region]
    assert per, "every model exposes at least one per-region parameter"
    p = per[0]
    vals = np.linspace(p.low, p.high, N)
    ds = simulate(model.name, w, ln, {p.name: vals}, duration_s=0.1, tavg_ms=1.0, bold_tr_s=None)
    assert np.all(np.isfinite(ds["tavg"].values))
    with pytest.raises(ModelError, match="one per region"):
        simulate(model.name, w, ln, {p.name: vals[:2]}, duration_s=0.1, bold_tr_s=None)
