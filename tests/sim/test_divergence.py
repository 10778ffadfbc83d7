"""A diverging trial is flagged (with its step) and frozen; its neighbours are untouched."""

from __future__ import annotations

import numpy as np

from explorer.sim import simulate


def test_diverging_trial_is_flagged_and_neighbours_untouched():
    rng = np.random.default_rng(0)
    n = 4
    w = rng.random((n, n))
    np.fill_diagonal(w, 0)
    kw = dict(duration_s=20.0, dt_ms=100.0, noise_sigma=0.02, bold_tr_s=2.0, bold_monitor="sample", tavg_ms=1000.0,
              transient_s=0.0)
    params = [{"G": 0.2}, {"G": 500.0}, {"G": 0.3}]
    ds = simulate("hopf", w, np.zeros((n, n)), params, seed=[1, 2, 3], **kw)
    assert ds["diverged"].values.tolist() == [False, True, False]
    step = ds["diverged_step"].values
    assert step[0] == -1 and step[2] == -1 and 0 <= step[1] < 200
    assert np.all(np.isnan(ds["bold"].values[1])) and np.all(np.isnan(ds["tavg"].values[1]))
    for b, seed in ((0, 1), (2, 3)):
        single = simulate("hopf", w, np.zeros((n, n)), params[b], seed=seed, **kw)
        assert np.array_equal(ds["bold"].values[b], single["bold"].values[0])
        assert np.array_equal(ds["tavg"].values[b], single["tavg"].values[0])
        assert np.all(np.isfinite(single["bold"].values))
