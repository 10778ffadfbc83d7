"""fit_ec and its unit: both rules improve on the start and keep the best iterate; bad starts and bad options
are reported in the config's terms; masks and the request's key."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.ec import (NO_IMPROVEMENT, OK, UNSTABLE_START, EcOptions, connection_mask, fit_ec, homotopic_pairs,
                         hopf_jacobian, moments)
from explorer.ec.unit import EcRequest, run_request
from explorer.errors import OptionError


def _case(n: int = 12, seed: int = 0):
    rng = np.random.default_rng(seed)
    sc = rng.random((n, n)) * (rng.random((n, n)) < 0.6)
    np.fill_diagonal(sc, 0.0)
    true = sc * np.exp(0.8 * rng.standard_normal((n, n)))
    f = rng.uniform(0.04, 0.07, n)
    return sc, true, f, moments(hopf_jacobian(true, 0.8, -0.03, f), 2.0)


@pytest.mark.parametrize("rule", ["lbfgs", "gec"])
def test_both_rules_improve_and_keep_the_best_iterate(rule):
    sc, true, f, target = _case()
    fit = fit_ec(sc, sc > 0, 0.8, -0.03, f, target, 2.0, EcOptions(rule=rule, max_iter=200))
    assert fit.status == OK and fit.ok
    assert fit.fc_r > fit.fc_r_start and fit.loss < fit.loss_start
    assert fit.trace.shape == (fit.iterations + 1, 3)
    assert fit.loss == pytest.approx(fit.trace[:, 0].min()) and fit.trace[fit.best_iteration, 0] == fit.loss
    assert np.all(fit.weights[sc == 0] == 0) and np.all(fit.weights >= 0)


def test_lbfgs_recovers_a_noise_free_ec():
    sc, true, f, target = _case(seed=1)
    fit = fit_ec(sc, sc > 0, 0.8, -0.03, f, target, 2.0, EcOptions(max_iter=1000, tol=1e-12))
    m = sc > 0
    assert np.corrcoef(fit.weights[m], true[m])[0, 1] > 0.98 > 0.6 > np.corrcoef(sc[m], true[m])[0, 1]


def test_an_unstable_start_keeps_the_global_twin_with_a_reason():
    sc, _, f, target = _case()
    fit = fit_ec(sc, sc > 0, 0.8, 0.05, f, target, 2.0)     # a > 0: no fixed point to linearise around
    assert fit.status == UNSTABLE_START and not fit.ok and "a >= 0" in fit.reason
    np.testing.assert_array_equal(fit.weights, sc)


def test_a_fit_that_cannot_improve_is_marked():
    sc, _, f, _ = _case()
    target = moments(hopf_jacobian(sc, 0.8, -0.03, f), 2.0)   # the start is already exact
    fit = fit_ec(sc, sc > 0, 0.8, -0.03, f, target, 2.0, EcOptions(max_iter=5))
    assert fit.status == NO_IMPROVEMENT and "did not improve" in fit.reason
    np.testing.assert_array_equal(fit.weights, sc)


def test_bad_options_name_their_field():
    with pytest.raises(OptionError, match=r"ec.tau_s.*ec.rule.*ec.max_iter|ec.tau_s"):
        EcOptions(tau_s=0, rule="adam", max_iter=0)
    assert EcOptions(tau_s=2.0).lag_trs(0.72) == 3 and EcOptions(tau_s=0.5).lag_trs(2.0) == 1


def test_homotopic_pairs_and_masks():
    labels = ["Precentral_L", "Precentral_R", "Frontal_Sup_2_L", "Frontal_Sup_2_R", "Vermis_3", "lh.insula", "rh.insula"]
    assert sorted(homotopic_pairs(labels)) == [(0, 1), (2, 3)] or sorted(homotopic_pairs(labels)) == [(0, 1), (2, 3), (5, 6)]
    sc = np.zeros((7, 7))
    sc[0, 2] = 1.0
    m = connection_mask(sc, labels, "sc+homotopic")
    assert m[0, 2] and m[0, 1] and m[1, 0] and m[2, 3] and not m[0, 3] and not m.diagonal().any()
    assert connection_mask(sc, labels, "sc").sum() == 1


def test_the_request_key_and_the_bandpass_option():
    sc, true, f, _ = _case(n=8, seed=3)
    rng = np.random.default_rng(0)
    bold = rng.standard_normal((400, 8))
    req = EcRequest("s1", sc, [f"r{i}" for i in range(8)], bold, 2.0,
                    {"detrend": True, "bandpass": [0.01, 0.1], "zscore": True}, {"G": 0.8, "a": -0.03, "f": list(f)},
                    3, EcOptions(max_iter=20).to_dict())
    other = EcRequest(**{**req.__dict__, "options": EcOptions(max_iter=20, bandpass=False).to_dict()})
    assert req.key == EcRequest(**req.__dict__).key and req.key != other.key
    a, b = run_request(req), run_request(other)
    assert a.fc_r_start != b.fc_r_start     # fitted to other moments: with and without the band-pass
