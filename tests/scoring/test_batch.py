"""fit_scores_batch and its parts against the per-trial functions (fit_scores, preprocess, fc, fcd, ks_statistic)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import signal

from explorer.errors import ConfigError, SimulationError
from explorer.scoring.batch import _fc_row, _fcd_upper, _FcdWork, _ks_rows, _preprocess_row, fit_scores_batch
from explorer.scoring.columns import detrend_columns
from explorer.scoring.features import empirical_features, fc, fcd, n_windows, preprocess
from explorer.scoring.objectives import SCORES
from explorer.scoring.options import FeatureOptions
from explorer.scoring.scores import fit_scores, ks_statistic, upper_triangle

TR = 2.0


def hopf_bold(b: int, t: int, n: int, seed: int, transient: int = 50) -> np.ndarray:
    """``(b, t, n)`` x of coupled noisy Stuart-Landau oscillators (0.01-0.08 Hz) sampled every TR: Hopf-like BOLD."""
    rng = np.random.default_rng(seed)
    w = rng.random((n, n)) * (rng.random((n, n)) < 0.3)
    w = (w + w.T) / 2
    np.fill_diagonal(w, 0.0)
    w /= w.sum(axis=1).max()
    omega = 2 * np.pi * rng.uniform(0.01, 0.08, n)
    a = rng.uniform(-0.1, 0.02, (b, 1))
    g = rng.uniform(0.1, 1.5, (b, 1))
    dt, sub = 0.4, int(TR / 0.4)
    z = 0.1 * (rng.standard_normal((b, n)) + 1j * rng.standard_normal((b, n)))
    out = np.empty((b, t, n))
    for k in range(transient + t):
        for _ in range(sub):
            coupling = z @ w.T - z * w.sum(axis=1)
            z = z + dt * ((a + 1j * omega) * z - np.abs(z) ** 2 * z + g * coupling)
            z += 0.05 * np.sqrt(dt) * (rng.standard_normal((b, n)) + 1j * rng.standard_normal((b, n)))
        if k >= transient:
            out[:, k - transient] = z.real
    return out


@pytest.fixture(scope="module")
def bold() -> np.ndarray:
    x = hopf_bold(16, 300, 20, seed=1)
    x[3, 120:, 4] = np.nan  # diverged
    x[7, :, 9] = 2.5  # constant region
    x[11, 200, 0] = np.inf
    return x


@pytest.fixture(scope="module")
def empirical() -> np.ndarray:
    return hopf_bold(1, 240, 20, seed=2)[0] + 0.05 * np.random.default_rng(3).standard_normal((240, 20))


def assert_same(batch, loop, atol=1e-12):
    """(scores list, fcs) from fit_scores_batch equal the per-row fit_scores(..., return_fc=True) results."""
    scores, fcs = batch
    assert len(scores) == len(loop) == len(fcs)
    for i, (got, (want, want_fc)) in enumerate(zip(scores, loop)):
        assert list(got) == list(want) == list(SCORES), i
        for k in want:
            assert math.isnan(got[k]) == math.isnan(want[k]), (i, k, got[k], want[k])
            if not math.isnan(want[k]):
                assert abs(got[k] - want[k]) <= atol, (i, k, got[k], want[k])
        np.testing.assert_array_equal(np.isnan(fcs[i]), np.isnan(want_fc), err_msg=f"row {i}")
        np.testing.assert_allclose(fcs[i], want_fc, atol=atol, rtol=0, err_msg=f"row {i}")


def per_row(x, emp_fc, emp_fcd, opts, fc_mean):
    return [fit_scores(row, TR, emp_fc, emp_fcd, opts, fc_mean=fc_mean, return_fc=True) for row in x]


@pytest.mark.parametrize("bandpass", [(0.01, 0.1), None])
@pytest.mark.parametrize("fisher_z", [False, True])
@pytest.mark.parametrize("with_fcd", [True, False])
@pytest.mark.parametrize("with_mean", [True, False])
def test_batch_equals_fit_scores(bold, empirical, bandpass, fisher_z, with_fcd, with_mean):
    opts = FeatureOptions(bandpass=bandpass, fisher_z=fisher_z, fcd_window=30, fcd_step=3)
    efc, efcd = empirical_features(empirical, TR, opts)
    efcd = efcd if with_fcd else None
    fc_mean = (0.6 * efc + 0.1) if with_mean else None
    got = fit_scores_batch(bold, TR, efc, efcd, opts, fc_mean=fc_mean)
    want = per_row(bold, efc, efcd, opts, fc_mean)
    assert_same(got, want)
    scores = got[0]
    bad = {3, 7, 11}
    for i, s in enumerate(scores):  # the bad rows are NaN, the others all scored
        finite = {k for k, v in s.items() if math.isfinite(v)}
        if i in bad:
            assert not finite
        else:
            assert finite >= {"fc_r", "fc_rmse"}
            assert ("fcd_ks" in finite) == with_fcd and ("fc_r_residual" in finite) == with_mean
    assert np.isnan(got[1][3]).all() and np.isnan(got[1][11]).all()
    assert np.isnan(np.delete(got[1][7][9], 9)).all() and np.isfinite(got[1][7][:9, :9]).all()  # fisher_z: diagonal 0


@pytest.mark.parametrize("row", [0, 3, 7])
def test_batch_of_one(bold, empirical, row):
    opts = FeatureOptions()
    efc, efcd = empirical_features(empirical, TR, opts)
    x = bold[row:row + 1]
    assert_same(fit_scores_batch(x, TR, efc, efcd, opts, fc_mean=efc * 0.5), per_row(x, efc, efcd, opts, efc * 0.5))


def test_gw_fit_size_and_options():
    """The bundled gw_fit study's feature options, at its size: 700 TRs x 80 regions, B = 16."""
    opts = FeatureOptions(detrend=True, bandpass=None, zscore=True, fisher_z=False, fcd_window=30, fcd_step=3)
    x = hopf_bold(17, 700, 80, seed=4, transient=10)
    efc, efcd = empirical_features(x[16, :355], TR, opts)
    got = fit_scores_batch(x[:16], TR, efc, efcd, opts, fc_mean=efc * 0.8)
    assert_same(got, per_row(x[:16], efc, efcd, opts, efc * 0.8))
    assert all(math.isfinite(v) for s in got[0] for v in s.values())


def test_discard_and_float32(bold, empirical):
    opts = FeatureOptions(discard_s=20.0)
    efc, efcd = empirical_features(empirical, TR, opts)
    x = bold[:6].astype(np.float32)
    got = fit_scores_batch(x, TR, efc, efcd, opts)
    assert got[1].dtype == np.float64
    assert_same(got, per_row(x, efc, efcd, opts, None))


def test_without_empirical_fc_gives_the_fcs_alone(bold, empirical):
    opts = FeatureOptions()
    scores, fcs = fit_scores_batch(bold, TR, None, None, opts)
    assert all(math.isnan(v) for s in scores for v in s.values())
    assert_same((scores, fcs), per_row(bold, None, None, opts, None))


def test_empty_batch_and_short_series(bold, empirical):
    opts = FeatureOptions()
    efc, efcd = empirical_features(empirical, TR, opts)
    scores, fcs = fit_scores_batch(bold[:0], TR, efc, efcd, opts)
    assert scores == [] and fcs.shape == (0, 20, 20)
    with pytest.raises(SimulationError, match="duration_s") as batch_err:
        fit_scores_batch(bold[:, :20], TR, efc, efcd, opts)
    with pytest.raises(SimulationError) as single_err:
        fit_scores(bold[0, :20], TR, efc, efcd, opts)
    assert str(batch_err.value) == str(single_err.value)


def test_one_window_fcd_and_bad_empirical_fcd(bold, empirical):
    """One FCD window has no FCD values (fcd_ks NaN), as has a NaN empirical FCD; the other scores stay."""
    opts = FeatureOptions(bandpass=None, fcd_window=30)
    efc, efcd = empirical_features(empirical, TR, opts)
    x = bold[:3, :30]
    got = fit_scores_batch(x, TR, efc, efcd, opts)
    assert_same(got, per_row(x, efc, efcd, opts, None))
    assert math.isnan(got[0][0]["fcd_ks"]) and math.isfinite(got[0][0]["fc_r"])
    nan_fcd = efcd.copy()
    nan_fcd[0, 1] = np.nan
    got = fit_scores_batch(bold[:3], TR, efc, nan_fcd, opts)
    assert_same(got, per_row(bold[:3], efc, nan_fcd, opts, None))
    assert math.isnan(got[0][0]["fcd_ks"]) and math.isfinite(got[0][0]["fc_r"])


def test_window_with_a_flat_region_gives_nan_fcd_ks(bold, empirical):
    """A region exactly constant within some FCD windows (not overall): FCD undefined there, as fcd() says."""
    opts = FeatureOptions(detrend=False, bandpass=None, zscore=False)
    efc, efcd = empirical_features(empirical, TR, opts)
    x = bold[:2].copy()
    x[1, 100:170, 2] = 0.0
    got = fit_scores_batch(x, TR, efc, efcd, opts)
    assert_same(got, per_row(x, efc, efcd, opts, None))
    assert math.isfinite(got[0][0]["fcd_ks"]) and math.isnan(got[0][1]["fcd_ks"])
    assert math.isfinite(got[0][1]["fc_r"])


def test_errors(bold, empirical):
    efc, efcd = empirical_features(empirical, TR)
    with pytest.raises(ValueError, match="batch, time, region"):
        fit_scores_batch(bold[0], TR, efc, efcd)
    with pytest.raises(ValueError, match="regions"):
        fit_scores_batch(bold[:, :, :10], TR, efc, efcd)
    with pytest.raises(ValueError, match="cohort-mean"):
        fit_scores_batch(bold, TR, efc, efcd, fc_mean=efc[:5, :5])
    with pytest.raises(ConfigError, match="Nyquist"):
        fit_scores_batch(bold, 10.0, efc, efcd)


def test_small_work_chunks_give_the_same_result(bold, empirical, monkeypatch):
    opts = FeatureOptions()
    efc, efcd = empirical_features(empirical, TR, opts)
    want = fit_scores_batch(bold, TR, efc, efcd, opts, fc_mean=efc * 0.5)
    monkeypatch.setattr("explorer.scoring.batch._BATCH_WORK_BYTES", 300_000)  # FCD windows 37 at a time
    got = fit_scores_batch(bold, TR, efc, efcd, opts, fc_mean=efc * 0.5)
    assert _FcdWork(300, 20, 30, 3).chunk < n_windows(300, 30, 3)
    assert_same(got, list(zip(want[0], want[1])), atol=1e-14)


# --- the parts against the per-trial functions ------------------------------------------------


def preprocessed(x, opts, fisher_z=False):
    """(p, fc) of each row of x by _preprocess_row and _fc_row."""
    out = []
    with np.errstate(invalid="ignore", divide="ignore"):
        for row in x:
            unit = np.empty(row.shape)
            p = _preprocess_row(np.array(row, dtype=np.float64), TR, opts, unit)
            fc = np.empty((row.shape[1], row.shape[1]))
            _fc_row(unit, fisher_z, fc)
            out.append((p, fc))
    return out


@pytest.mark.parametrize("opts", [FeatureOptions(), FeatureOptions(bandpass=(0.0, 0.08), filter_order=3),
                                  FeatureOptions(bandpass=None), FeatureOptions(detrend=False, zscore=False),
                                  FeatureOptions(detrend=True, bandpass=None, zscore=False)])
def test_preprocess_row_matches_preprocess(bold, opts):
    x = bold[[0, 1, 2, 5, 7]]
    for row, (got, _) in zip(x, preprocessed(x, opts)):
        want = preprocess(row, TR, opts)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_allclose(got, want, atol=1e-12, rtol=0)


@pytest.mark.parametrize("opts", [FeatureOptions(), FeatureOptions(detrend=False, bandpass=None, zscore=False)])
@pytest.mark.parametrize("fisher_z", [False, True])
def test_fc_row_matches_fc(bold, opts, fisher_z):
    x = bold[[0, 1, 7]]
    assert x[2, 0, 9] == x[2, -1, 9]  # row 7: a constant region
    for got_p, got in preprocessed(x, opts, fisher_z):
        with np.errstate(invalid="ignore", divide="ignore"):
            want = fc(got_p, fisher_z=fisher_z)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_allclose(got, want, atol=1e-12, rtol=0)
    assert np.isnan(preprocessed(x[2:], opts)[0][1][9, 9])  # its FC row is undefined, diagonal included


def test_detrend_columns_matches_scipy():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((700, 80)) * 50.0 + np.linspace(0, 300, 700)[:, None] + 1e3
    got = x.copy()
    detrend_columns(got)
    np.testing.assert_allclose(got, signal.detrend(x, axis=0, type="linear"), atol=1e-12 * 1e3, rtol=0)


@pytest.mark.parametrize("window,step", [(30, 3), (20, 7), (25, 1), (300, 1), (299, 5)])
def test_fcd_upper_matches_fcd(bold, window, step):
    p = [p for p, _ in preprocessed(bold[[0, 5]], FeatureOptions())]
    work = _FcdWork(p[0].shape[0], p[0].shape[1], window, step)
    for row in p:
        want = upper_triangle(fcd(row, window, step))
        got = _fcd_upper(row, work)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-12, rtol=0)


def test_ks_rows_is_ks_statistic_exactly():
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((6, 2000)), np.sort(rng.standard_normal(700) * 1.3 + 0.1)
    x[0, :50] = y[100:150]  # values shared with y
    assert _ks_rows(x, y).tolist() == [ks_statistic(row, y) for row in x]
    for _ in range(200):  # ties within and across the samples, tiny and unequal sizes
        x = rng.integers(0, 6, (3, rng.integers(1, 40))).astype(float)
        y = np.sort(rng.integers(0, 6, rng.integers(1, 40)).astype(float))
        assert _ks_rows(x, y).tolist() == [ks_statistic(row, y) for row in x]
