"""Synthetic twins: BOLD simulated with explorer.sim from known parameters (truth in phenotype)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("explorer.sim", reason="explorer.sim (Stream A) not available yet")

from explorer.cohort import CohortOptions, load_cohort, synthetic  # noqa: E402
from explorer.scoring.scores import fit_scores  # noqa: E402

from cohort_files import manifest_cohort  # noqa: E402

SIM = dict(duration_s=90.0, dt_ms=0.5, noise_sigma=0.01, bold_tr_s=2.0, transient_s=4.0)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    path = manifest_cohort(tmp_path_factory.mktemp("base"), 2, "npy")
    return load_cohort(path, CohortOptions())


def test_synthetic_truth_given(base):
    c = synthetic("rww_ei", truth=[{"G": 0.5}, {"G": 1.0}, {"G": 0.2}], base=base, seed=3, **SIM)
    assert c.ids == ["twin00", "twin01", "twin02"]
    assert [s.phenotype["true_G"] for s in c] == [0.5, 1.0, 0.2]
    assert [s.phenotype["base_subject"] for s in c] == ["sub-01", "sub-02", "sub-01"]
    assert [s.phenotype["sim_seed"] for s in c] == [3, 4, 5]
    for s, b in zip(c, [base[0], base[1], base[0]]):
        np.testing.assert_array_equal(s.weights, b.weights)  # used exactly as the base holds it
        assert s.bold.shape == (45, 6) and s.tr_s == 2.0
        assert np.all(np.isfinite(s.fc)) and s.fcd is not None
        assert "simulated" in s.sources["bold"]
    twin = c["twin01"]
    scores = fit_scores(twin.bold, twin.tr_s, twin.fc, twin.fcd, c.options.features)
    assert scores["fc_r"] == pytest.approx(1.0)


def test_synthetic_is_reproducible_and_draws_truth_in_bounds(base):
    kw = dict(n_subjects=2, bounds={"G": (0.1, 0.9)}, base=base, seed=7, **SIM)
    a, b = synthetic("rww_ei", **kw), synthetic("rww_ei", **kw)
    for sa, sb in zip(a, b):
        assert 0.1 <= sa.phenotype["true_G"] <= 0.9
        assert sa.phenotype == sb.phenotype
        np.testing.assert_array_equal(sa.bold, sb.bold)
    assert a[0].phenotype["true_G"] != a[1].phenotype["true_G"]
