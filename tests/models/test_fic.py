"""Feedback inhibition control for rww_ei: analytic J_I puts every region at the target rate in simulation."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.cohort import demo
from explorer.errors import StudyError
from explorer.models import MODELS, rww_ei
from explorer.models.arrays import param_array
from explorer.models.fic import excitatory_rate, fic_inhibition, jacobian
from explorer.params.subject import with_fic
from explorer.sim import simulate

M = rww_ei.MODEL
N = 80


@pytest.fixture(scope="module")
def subject():
    s = demo().subjects[0]
    assert s.weights.shape == (N, N)
    return s


def _final_rates(ds, p, weights):
    """Excitatory rates [region, trial] (Hz) at the last tavg sample, with J_I etc. from p."""
    last = ds["tavg"].values[:, -1]  # (trial, region, state)
    return excitatory_rate(last[:, :, 0].T, last[:, :, 1].T, p, weights)


def _with_fic(params, weights, target):
    p = param_array(M, params, N)
    res = fic_inhibition(p, weights, target)
    p[rww_ei.J_I] = res.J_I
    return res, p, [dict(par, J_I=res.J_I[:, b]) for b, par in enumerate(params)]


@pytest.mark.parametrize("dt_ms, duration_s", [(1.0, 20.0), (0.1, 8.0)])
def test_fic_puts_every_region_at_the_target_rate_in_a_noise_free_simulation(subject, dt_ms, duration_s):
    w = subject.weights
    params = [{"G": 0.0}, {"G": 0.3}, {"G": 0.6}]
    p_all, sims, res_all = [], [], []
    for target in (3.0, 2.5):
        res, p, s = _with_fic(params, w, target)
        assert res.converged.all(), res.reason
        assert res.reason == ["", "", ""]
        assert np.all(res.max_eig < 0)
        assert np.all(res.J_I > 0)
        # J_I grows with the long-range input: heterogeneous once G > 0
        assert np.ptp(res.J_I[:, 0]) < 1e-12 and np.ptp(res.J_I[:, 2]) > 0.3
        p_all.append(p)
        sims.extend(s)
        res_all.append(res)
    p = np.concatenate(p_all, axis=2)
    ds = simulate("rww_ei", w, subject.lengths, sims, duration_s=duration_s, dt_ms=dt_ms, noise_sigma=0.0,
                  tavg_ms=10.0, bold_tr_s=None, seed=3, transient_s=0.0)
    assert not ds["diverged"].values.any()
    rates = _final_rates(ds, p, w)
    targets = np.repeat([3.0, 2.5], len(params))
    assert np.all(np.abs(rates - targets) < 0.1), np.abs(rates - targets).max(axis=0)
    # and it is the FIC fixed point that was reached
    S_E = np.concatenate([r.S_E for r in res_all], axis=1)
    np.testing.assert_allclose(ds["tavg"].values[:, -1, :, 0].T, S_E, atol=1e-3)
    # the random initial state was far from it
    first = _final_rates(ds.isel(tavg_time=[0]), p, w)
    assert np.abs(first - targets).max() > 1.0


def test_fic_with_per_region_parameters(subject):
    """Local parameters may vary per region: FIC still puts every region at the target."""
    w = subject.weights
    rng = np.random.default_rng(7)
    params = [{"G": g, "w_plus": rng.uniform(1.2, 1.6, N), "I_0": rng.uniform(0.35, 0.42, N),
               "tau_E": rng.uniform(80.0, 120.0, N)} for g in (0.5, 0.2)]
    res, p, sims = _with_fic(params, w, 3.0)
    assert res.converged.all(), res.reason
    assert np.ptp(res.S_E) > 0.01  # S_E* depends on the per-region tau_E
    ds = simulate("rww_ei", w, subject.lengths, sims, duration_s=20.0, dt_ms=1.0, noise_sigma=0.0,
                  tavg_ms=10.0, bold_tr_s=None, transient_s=0.0)
    rates = _final_rates(ds, p, w)
    assert np.all(np.abs(rates - 3.0) < 0.1), np.abs(rates - 3.0).max()
    np.testing.assert_allclose(ds["tavg"].values[:, -1, :, 0].T, res.S_E, atol=1e-3)


def test_without_fic_the_rates_are_far_from_the_target(subject):
    w = subject.weights
    params = [{"G": 2.0}]  # default J_I = 1 everywhere
    p = param_array(M, params, N)
    ds = simulate("rww_ei", w, subject.lengths, params, duration_s=10.0, dt_ms=1.0, noise_sigma=0.0,
                  tavg_ms=10.0, bold_tr_s=None, transient_s=0.0)
    err = np.abs(_final_rates(ds, p, w) - 3.0)
    assert err.max() > 1.0
    assert np.sum(err > 0.1) >= 10


def test_unstable_fixed_point_is_reported_and_is_not_reached(subject):
    """At G = 1.5 the FIC fixed point exists but is a saddle: flagged, and the simulation leaves it."""
    w = subject.weights
    params = [{"G": 0.5}, {"G": 1.0}, {"G": 1.5}]
    res, p, sims = _with_fic(params, w, 3.0)
    assert list(res.converged) == [True, False, False]
    assert np.all(np.diff(res.max_eig) > 0)
    for b in (1, 2):
        assert res.reason[b].startswith("fixed point unstable (max Re eig = ") and res.max_eig[b] > 0
        assert np.all(np.isfinite(res.J_I[:, b])) and np.all(res.J_I[:, b] > 0)  # feasible, just unstable
    ds = simulate("rww_ei", w, subject.lengths, sims[::2], duration_s=20.0, dt_ms=1.0, noise_sigma=0.0,
                  tavg_ms=10.0, bold_tr_s=None, transient_s=0.0)
    err = np.abs(_final_rates(ds, p[:, :, ::2], w) - 3.0).max(axis=0)
    assert err[0] < 0.1 and err[1] > 0.5, err


def test_infeasible_parameters_give_converged_false_with_a_reason(subject):
    w = subject.weights
    params = [{}, {"W_E": 0.5, "I_0": 0.2}, {"W_I": 5.0, "I_0": 0.5}, {"a_E": 0.0}]
    p = param_array(M, params, N)
    res = fic_inhibition(p, w, 3.0)
    assert list(res.converged) == [True, False, False, False]
    assert res.reason[0] == ""
    assert res.reason[1] == "excitation too weak for the target (J_I < 0 at 80 regions)"
    assert res.reason[2].startswith("inhibitory fixed point outside (0, 1] (S_I* max")
    assert res.reason[2].endswith("at 80 regions)")
    assert res.reason[3] == "degenerate parameters (J_I not finite at 80 regions)"
    assert np.isnan(res.J_I[:, 3]).all() and np.isnan(res.max_eig[1:]).all()
    assert np.all(res.J_I[:, 1] < 0)
    # an unreachable target: the defaults cannot drive E to 1000 Hz even without inhibition
    huge = fic_inhibition(p[:, :, :1], w, 1000.0)
    assert not huge.converged[0] and "J_I < 0" in huge.reason[0]
    assert huge.S_E.min() > 0.98


def test_fixed_point_and_jacobian_match_the_model_right_hand_side():
    """On a small random network with per-region parameters: dS/dt = 0 at the FIC point and the Jacobian
    equals finite differences of rww_ei.dfun (the simulator's right-hand side)."""
    rng = np.random.default_rng(3)
    n, nb = 6, 3
    w = rng.random((n, n))
    np.fill_diagonal(w, 0.0)
    p = param_array(M, [{"G": 0.4}, {"G": 1.2}, {"G": 0.0}], n)
    for par, lo, hi in (("w_plus", 1.2, 1.6), ("tau_I", 8.0, 12.0), ("gamma_E", 0.5, 0.8), ("J_NMDA", 0.12, 0.2)):
        p[M.index(par)] = rng.uniform(lo, hi, (n, nb))
    res = fic_inhibition(p, w, 3.0)
    p[rww_ei.J_I] = res.J_I

    def rhs(x):
        out = np.zeros_like(x)
        c = w @ x[0]
        for i in range(n):
            dx = np.zeros((2, nb))
            M.dfun(np.ascontiguousarray(x), i, np.ascontiguousarray(c[i][None]), p, 0.0, dx, nb)
            out[:, i] = dx
        return out

    x = np.stack([res.S_E, res.S_I])
    assert np.abs(rhs(x)).max() < 1e-14
    np.testing.assert_allclose(excitatory_rate(res.S_E, res.S_I, p, w), 3.0, rtol=1e-12)
    jac = jacobian(res.S_E, res.S_I, p, w)
    h = 1e-7
    for k in range(2 * n):
        e = np.zeros_like(x)
        e[k // n, k % n] = h
        fd = (rhs(x + e) - rhs(x - e)) / (2 * h)  # [state, region, batch]
        np.testing.assert_allclose(jac[:, :, k], fd.reshape(2 * n, nb).T, atol=1e-9)
    np.testing.assert_allclose(res.max_eig, np.linalg.eigvals(jac).real.max(axis=1), rtol=1e-12)


def test_bad_input_raises_value_error_naming_the_problem():
    w = np.ones((4, 4))
    p = param_array(M, [{}], 4)
    for target in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="target_hz must be finite and > 0"):
            fic_inhibition(p, w, target)
    with pytest.raises(ValueError, match="target_hz must be a number"):
        fic_inhibition(p, w, "3")
    with pytest.raises(ValueError, match=r"p must be .* shape \(17, 5, B\) for 5 regions, got shape \(17, 4, 1\)"):
        fic_inhibition(p, np.ones((5, 5)))
    with pytest.raises(ValueError, match="got shape \\(16, 4, 1\\)"):
        fic_inhibition(p[1:], w)
    with pytest.raises(ValueError, match="weights must be a square"):
        fic_inhibition(p, np.ones((4, 3)))
    bad = p.copy()
    bad[rww_ei.I_0, 2, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or inf in parameter\\(s\\) I_0"):
        fic_inhibition(bad, w)
    with pytest.raises(ValueError, match="S_E and S_I must have shape"):
        excitatory_rate(np.zeros((4, 2)), np.zeros((4, 2)), p, w)


# --- FIC as a declared model capability (Model.fic), over every model of the registry ------------------------------
@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_declared_fic_names_a_per_region_parameter_and_a_solver_that_sets_it(name, subject):
    model = MODELS[name]
    if model.fic is None:
        with pytest.raises(StudyError, match="declares no feedback inhibition control"):
            with_fic([{"G": 0.1}], subject.weights, name, 3.0)
        return
    assert model.param(model.fic.param).per_region
    res = model.fic.solve(param_array(model, [{"G": 0.3}], N), subject.weights, 3.0)
    assert res.converged.all(), res.reason
    got = with_fic([{"G": 0.3}, "refused: earlier"], subject.weights, name, 3.0)
    assert got[1] == "refused: earlier"
    np.testing.assert_allclose(got[0][model.fic.param], getattr(res, model.fic.param)[:, 0])
    assert got[0]["G"] == 0.3


def test_rww_ei_declares_its_fic_on_j_i():
    assert (M.fic.param, M.fic.solver) == ("J_I", "explorer.models.fic:fic_inhibition")
    assert with_fic([{"G": 0.1}], np.eye(3), "rww_ei", None) == [{"G": 0.1}]  # no target: no FIC
