"""The model contract: every registered model, same checks (shapes, finiteness, bounds, seeds, batching)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from numba import njit

from explorer.errors import ModelError
from explorer.models import MODELS, get_model
from explorer.models.base import COUPLINGS
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
                  tavg_ms=1.0, bold_tr_s=0.1, seed=3, transient_s=0.0)
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
    kw = dict(duration_s=0.2, dt_ms=0.1, noise_sigma=_noise(model), tavg_ms=1.0, bold_tr_s=0.1, transient_s=0.0)
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
    kw = dict(duration_s=0.2, dt_ms=0.1, noise_sigma=_noise(model), tavg_ms=1.0, bold_tr_s=0.1, transient_s=0.0)
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
    ds = simulate(model.name, w, ln, {p.name: vals}, duration_s=0.1, transient_s=0.0, noise_sigma=0.0, tavg_ms=1.0,
                  bold_tr_s=None)
    assert np.all(np.isfinite(ds["tavg"].values))
    with pytest.raises(ModelError, match="one per region"):
        simulate(model.name, w, ln, {p.name: vals[:2]}, duration_s=0.1, transient_s=0.0, bold_tr_s=None)


#: model -> {row constant of its module, as its dfun indexes the parameter array: parameter name}
ROW_CONSTANTS = {
    "rww_ei": {"A_E": "a_E", "B_E": "b_E", "D_E": "d_E", "TAU_E": "tau_E", "GAMMA_E": "gamma_E", "A_I": "a_I",
               "B_I": "b_I", "D_I": "d_I", "TAU_I": "tau_I", "GAMMA_I": "gamma_I", "W_E": "W_E", "W_I": "W_I",
               "I_0": "I_0", "J_N": "J_NMDA", "W_P": "w_plus", "J_I": "J_I", "G": "G"},
    "rww": {"A": "a", "B_": "b", "D": "d", "GAMMA": "gamma", "TAU": "tau_S", "W": "w", "J_N": "J_N", "I_0": "I_0",
            "G": "G"},
    "hopf": {"A": "a", "F": "f", "G": "G"},
    "wilson_cowan": {"TAU_E": "tau_E", "TAU_I": "tau_I", "C_EE": "c_EE", "C_IE": "c_IE", "C_EI": "c_EI",
                     "C_II": "c_II", "A_E": "a_E", "A_I": "a_I", "MU_E": "mu_E", "MU_I": "mu_I", "P_E": "P_E",
                     "P_I": "P_I", "G": "G"},
}


def test_parameter_row_constants_are_the_parameter_table_rows(model):
    # dfun reads p[CONST, i, b]: a constant off its parameter's row silently computes with another parameter
    import importlib

    module = importlib.import_module(model.dfun.py_func.__module__)
    rows = ROW_CONSTANTS[model.name]
    assert sorted(rows.values()) == sorted(model.param_names)
    for const, pname in rows.items():
        assert getattr(module, const) == model.index(pname), (model.name, const, pname)


def test_dfun_computes_float32_in_float32(model):
    """On float32 arrays ``dfun`` does its arithmetic in float32 (its constants through ``flt``, its
    exp through ``vexp``): no float64 operation in its compiled code, which would halve the SIMD width."""
    import re

    NS, B = len(model.states), 16
    x = np.full((NS, 2, B), 0.1, dtype=np.float32)
    p = np.ones((len(model.params), 2, B), dtype=np.float32) * np.array(
        [q.default for q in model.params], dtype=np.float32)[:, None, None]
    c = np.zeros((len(model.coupled_states), B), dtype=np.float32)
    dx = np.zeros((NS, B), dtype=np.float32)
    model.dfun(x, 1, c, p, np.float32(0.0), dx, B)
    assert np.all(np.isfinite(dx))
    sig = next(s for s in model.dfun.signatures if s[0].dtype == np.float32 or str(s[0].dtype) == "float32")
    ir = model.dfun.inspect_llvm(sig)
    wide = [ln for ln in ir.splitlines() if re.search(r"= (fadd|fsub|fmul|fdiv|fpext|fcmp \w+) .*double", ln)]
    assert not wide, wide[:3]


def coupling_mismatch(model, dtype=np.float64, rounds: int = 4) -> str | None:
    """Why ``model.dfun`` does not compute what ``model.coupling`` declares (None when it does), probed bit
    for bit on random states, parameters (inside their bounds), coupling inputs ``c != 0`` and ``wsum_i > 0``:
    every coupling reads ``c``; "linear" never reads ``wsum_i``; "diffusive" reads it only as
    ``c - wsum_i z_i`` in the state's type (the kernel folds that term into ``c`` and passes 0)."""
    rng = np.random.default_rng(20240517)
    NS, NP, B, N, i = len(model.states), len(model.params), 8, 3, 1
    cs = list(model.coupled_states)
    lo, hi = (np.array([r[k] for r in model.init])[:, None, None] for k in (0, 1))
    plo, phi = (np.array([getattr(q, k) for q in model.params])[:, None, None] for k in ("low", "high"))

    def run(x, c, p, w):
        dx = np.zeros((NS, B), dtype=dtype)
        model.dfun(x, i, np.ascontiguousarray(c, dtype=dtype), p, dtype(w), dx, B)
        assert np.all(np.isfinite(dx)), (model.name, dtype)
        return dx

    for _ in range(rounds):
        x = (lo + (hi - lo) * rng.random((NS, N, B))).astype(dtype)
        p = (plo + (phi - plo) * rng.random((NP, N, B))).astype(dtype)
        p[model.index("G")] = rng.uniform(0.1, 1.0) * max(model.param("G").high, 1e-3)   # G != 0
        c = rng.standard_normal((len(cs), B)).astype(dtype)
        w = dtype(rng.uniform(0.1, 3.0))
        full = run(x, c, p, w)
        if np.array_equal(full, run(x, np.zeros_like(c), p, w)):
            return "dfun does not read its coupling input c"
        if model.coupling == "linear" and not np.array_equal(full, run(x, c, p, 0.0)):
            return "dfun reads wsum_i, which a linear coupling never does"
        if model.coupling == "diffusive" and not np.array_equal(full, run(x, c - w * x[cs, i, :], p, 0.0)):
            return "dfun(c, wsum_i) differs from dfun(c - wsum_i z_i, 0): not the diffusive form"
    return None


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_declared_coupling_is_what_dfun_computes(model, dtype):
    # the kernel's mode follows the declaration: a wrong one would silently change what it computes
    assert model.coupling in COUPLINGS
    assert coupling_mismatch(model, dtype) is None, model.name


def test_invalid_coupling_is_refused_naming_the_model_and_the_valid_values(model):
    with pytest.raises(ModelError) as err:
        replace(model, coupling="normalised")
    msg = str(err.value)
    assert model.name in msg and "normalised" in msg and all(repr(c) in msg for c in COUPLINGS)


@njit
def _normalised(x, i, c, p, wsum_i, dx, B):   # reads wsum_i, but not in the diffusive form
    for b in range(B):
        dx[0, b] = -x[0, i, b] + c[0, b] / (1.0 + wsum_i)
        dx[1, b] = -x[1, i, b] + c[1, b] / (1.0 + wsum_i)


@njit
def _uncoupled(x, i, c, p, wsum_i, dx, B):
    for b in range(B):
        dx[0, b] = -x[0, i, b]


def test_a_wrong_coupling_declaration_is_caught():
    hopf, rww = get_model("hopf"), get_model("rww")
    assert "diffusive form" in coupling_mismatch(replace(hopf, dfun=_normalised))
    assert "reads wsum_i" in coupling_mismatch(replace(hopf, dfun=_normalised, coupling="linear"))
    assert "reads wsum_i" in coupling_mismatch(replace(hopf, coupling="linear"))
    assert coupling_mismatch(replace(hopf, dfun=_normalised, coupling="general")) is None
    assert "diffusive form" in coupling_mismatch(replace(rww, coupling="diffusive"))
    assert "does not read" in coupling_mismatch(replace(rww, dfun=_uncoupled))
