"""The bundled gw demo cohort."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.cohort import GW_SUBCORTICAL, CohortOptions, demo, load_cohort


@pytest.fixture(scope="module")
def cohort():
    return demo()


def test_demo_has_5_subjects_of_80_cortical_regions(cohort):
    assert cohort.ids == ["NAP_001", "NAP_002", "NAP_007", "NAP_009", "NAP_013"]
    assert not cohort.skipped and not cohort.warnings
    for s in cohort:
        assert s.weights.shape == s.lengths.shape == s.fc.shape == (80, 80)
        assert s.bold.shape == (355, 80)
        assert s.tr_s == 2.0
        assert s.fcd.shape == (109, 109)
        assert len(s.labels) == 80 and "Thalamus_L" not in s.labels and s.labels[0] == "Precentral_L"
        assert s.weights.max() == 1.0 and np.all(np.diag(s.weights) == 0)
        assert np.all(np.isfinite(s.fc)) and np.all(np.isfinite(s.fcd))
    assert cohort.options.drop == GW_SUBCORTICAL and cohort.options.tr_s == 2.0


def test_load_cohort_demo_equals_demo(cohort):
    again = load_cohort("demo")
    assert again.ids == cohort.ids
    for a, b in zip(again, cohort):
        np.testing.assert_array_equal(a.weights, b.weights)
        np.testing.assert_array_equal(a.fc, b.fc)


def test_demo_all_94_regions():
    c = demo(CohortOptions(drop=[]))
    assert c[0].weights.shape == (94, 94)
    assert c[0].labels[40:46] == ["Hippocampus_L", "Hippocampus_R", "ParaHippocampal_L", "ParaHippocampal_R",
                                  "Amygdala_L", "Amygdala_R"]
    assert c.options.drop == []
