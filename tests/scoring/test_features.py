"""features: FC, FCD, preprocessing and scores against direct numpy/scipy computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import signal, stats

from explorer.errors import CohortError, ConfigError, SimulationError
from explorer.scoring.features import empirical_features, fc, fcd, n_windows, peak_frequency, preprocess
from explorer.scoring.options import FeatureOptions
from explorer.scoring.scores import fc_r, fc_rmse, fcd_ks, fit_scores, ks_statistic


@pytest.fixture
def ts() -> np.ndarray:
    rng = np.random.default_rng(1)
    mix = rng.standard_normal((12, 12)) * 0.4 + np.eye(12)
    return rng.standard_normal((200, 12)) @ mix + np.linspace(0, 5, 200)[:, None]


def test_fc_matches_corrcoef(ts):
    np.testing.assert_allclose(fc(ts), np.corrcoef(ts.T), atol=1e-12)


def test_fc_fisher_z(ts):
    z = fc(ts, fisher_z=True)
    iu = np.triu_indices(12, k=1)
    np.testing.assert_allclose(z[iu], np.arctanh(np.corrcoef(ts.T)[iu]), atol=1e-10)
    assert np.all(np.diag(z) == 0.0)


@pytest.mark.parametrize("window,step", [(30, 3), (20, 7), (200, 1)])
def test_fcd_matches_loop(ts, window, step):
    iu = np.triu_indices(12, k=1)
    rows = [np.corrcoef(ts[s:s + window].T)[iu] for s in range(0, len(ts) - window + 1, step)]
    expected = np.corrcoef(np.array(rows)) if len(rows) > 1 else np.ones((1, 1))
    got = fcd(ts, window, step)
    assert got.shape == (n_windows(len(ts), window, step),) * 2 == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-10)


def test_fcd_too_short_raises(ts):
    with pytest.raises(ValueError, match="shorter than the FCD window"):
        fcd(ts[:10], 30, 3)


def test_scores_match_scipy(ts):
    rng = np.random.default_rng(2)
    a = fc(ts)
    b = fc(ts + rng.standard_normal(ts.shape))
    iu = np.triu_indices(12, k=1)
    assert fc_r(a, b) == pytest.approx(stats.pearsonr(a[iu], b[iu]).statistic, abs=1e-12)
    assert fc_rmse(a, b) == pytest.approx(np.sqrt(np.mean((a[iu] - b[iu]) ** 2)), abs=1e-12)
    fa, fb = fcd(ts, 30, 3), fcd(rng.standard_normal((150, 12)), 30, 5)
    ua, ub = fa[np.triu_indices(len(fa), 1)], fb[np.triu_indices(len(fb), 1)]
    assert fcd_ks(fa, fb) == pytest.approx(stats.ks_2samp(ua, ub).statistic, abs=1e-12)
    # ties and unequal sizes
    x, y = rng.integers(0, 5, 300).astype(float), rng.integers(0, 7, 111).astype(float)
    assert ks_statistic(x, y) == pytest.approx(stats.ks_2samp(x, y).statistic, abs=1e-12)


def test_preprocess_matches_scipy_pipeline(ts):
    opts = FeatureOptions()
    x = signal.detrend(ts, axis=0)
    sos = signal.butter(opts.filter_order, [0.01, 0.1], btype="bandpass", fs=0.5, output="sos")
    x = signal.sosfiltfilt(sos, x, axis=0)
    x = stats.zscore(x, axis=0)
    np.testing.assert_allclose(preprocess(ts, 2.0, opts), x, atol=1e-10)
    raw = preprocess(ts, 2.0, FeatureOptions(detrend=False, bandpass=None, zscore=False))
    np.testing.assert_array_equal(raw, ts)


def test_bandpass_above_nyquist_is_config_error(ts):
    with pytest.raises(ConfigError, match="Nyquist"):
        preprocess(ts, 10.0, FeatureOptions(bandpass=(0.01, 0.1)))


def test_options_validate_and_roundtrip():
    with pytest.raises(ConfigError):
        FeatureOptions(bandpass=(0.1, 0.01))
    with pytest.raises(ConfigError):
        FeatureOptions(fcd_window=1)
    o = FeatureOptions(bandpass=[0.02, 0.08], fisher_z=True)
    assert o.bandpass == (0.02, 0.08)
    assert FeatureOptions.from_dict(o.to_dict()) == o
    with pytest.raises(ConfigError, match="unknown"):
        FeatureOptions.from_dict({"windw": 3})


def test_fit_scores_self_is_perfect(ts):
    opts = FeatureOptions()
    efc, efcd = empirical_features(ts, 2.0, opts)
    s = fit_scores(ts, 2.0, efc, efcd, opts)
    assert s["fc_r"] == pytest.approx(1.0)
    assert s["fc_rmse"] == pytest.approx(0.0, abs=1e-12)
    assert s["fcd_ks"] == pytest.approx(0.0)
    assert math.isnan(fit_scores(ts, 2.0, efc, None, opts)["fcd_ks"])


def test_fit_scores_discard(ts):
    opts = FeatureOptions(discard_s=20.0, bandpass=None)
    efc, efcd = empirical_features(ts[10:], 2.0, opts)
    s = fit_scores(ts, 2.0, efc, efcd, opts)  # drops 10 TRs
    assert s["fc_r"] == pytest.approx(1.0)
    assert s["fcd_ks"] == pytest.approx(0.0)


def test_fit_scores_bad_simulations_give_nan(ts):
    efc, efcd = empirical_features(ts, 2.0)
    diverged = ts.copy()
    diverged[50:, 3] = np.nan
    constant = ts.copy()
    constant[:, 5] = 7.0
    for sim in (diverged, constant):
        s = fit_scores(sim, 2.0, efc, efcd)
        assert all(math.isnan(v) for v in s.values())


def test_fit_scores_returns_the_simulated_fc_it_scored(ts):
    opts = FeatureOptions(discard_s=20.0)
    efc, efcd = empirical_features(ts[10:], 2.0, opts)
    s, sim_fc = fit_scores(ts, 2.0, efc, efcd, opts, return_fc=True)
    assert s == fit_scores(ts, 2.0, efc, efcd, opts)
    np.testing.assert_allclose(sim_fc, fc(preprocess(ts[10:], 2.0, opts)), atol=1e-12)  # discarded, processed
    assert s["fc_r"] == pytest.approx(fc_r(sim_fc, efc))
    s, only_fc = fit_scores(ts, 2.0, None, None, opts, return_fc=True)   # no empirical FC: the FC alone
    assert all(math.isnan(v) for v in s.values()) and np.array_equal(only_fc, sim_fc)
    constant = ts.copy()
    constant[:, 5] = 7.0
    s, bad = fit_scores(constant, 2.0, efc, efcd, opts, return_fc=True)
    assert all(math.isnan(v) for v in s.values()) and np.isnan(bad[5]).all() and np.isfinite(bad[0, :5]).all()
    diverged = ts.copy()
    diverged[50:, 3] = np.nan
    assert np.isnan(fit_scores(diverged, 2.0, efc, efcd, opts, return_fc=True)[1]).all()


def test_fit_scores_too_short_raises(ts):
    efc, efcd = empirical_features(ts, 2.0)
    with pytest.raises(SimulationError, match="duration_s"):
        fit_scores(ts[:20], 2.0, efc, efcd)


def test_empirical_constant_region_raises(ts):
    bad = ts.copy()
    bad[:, 4] = 1.0
    with pytest.raises(CohortError, match=r"\[4\]"):
        empirical_features(bad, 2.0)
    short_fc, short_fcd = empirical_features(ts[:25], 2.0)
    assert short_fcd is None and short_fc.shape == (12, 12)


def test_peak_frequency_finds_each_regions_sinusoid():
    tr = 2.0
    t = np.arange(400) * tr
    f_true = np.array([0.02, 0.05, 0.08])
    rng = np.random.default_rng(3)
    ts = np.sin(2 * np.pi * f_true[None, :] * t[:, None]) + 0.1 * rng.standard_normal((400, 3))
    f = peak_frequency(ts, tr)
    # Welch bins with 100-TR segments are 1/(100 * 2 s) = 0.005 Hz apart
    np.testing.assert_allclose(f, f_true, atol=0.005)
    with pytest.raises(ValueError, match="band"):
        peak_frequency(ts, tr, band=(0.3, 0.4))
