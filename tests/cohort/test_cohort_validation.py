"""Validation: every problem names subject and file; the whole cohort is refused unless skip_bad."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from scipy import io as sio

from explorer.cohort import CohortOptions, load_cohort, scan_cohort
from explorer.errors import CohortError, ConfigError
from explorer.scoring.options import FeatureOptions

from cohort_files import N, make_arrays, write_manifest


def cohort_with_bad(tmp_path, **bad_arrays):
    """Manifest with subject 'good' and subject 'bad' whose arrays are overridden (None = file missing)."""
    rows = []
    for sid, over in (("good", {}), ("bad", bad_arrays)):
        a = make_arrays(3)
        row = {"subject": sid, "tr_s": 2.0}
        for role in ("weights", "lengths", "bold"):
            arr = over.get(role, a[role])
            name = f"{sid}_{role}.npy"
            if arr is not None:
                np.save(tmp_path / name, arr)
            row[role] = name
        rows.append(row)
    return write_manifest(tmp_path, rows)


def refused(path, *fragments, options=None):
    with pytest.raises(CohortError) as info:
        load_cohort(path, options)
    msg = str(info.value)
    bad_lines = [ln for ln in msg.splitlines() if ln.strip().startswith("- ")]
    assert bad_lines, msg
    assert all("subject bad" in ln for ln in bad_lines), msg
    assert "subject good" not in msg
    for f in fragments:
        assert f in msg, (f, msg)
    return msg


def test_non_square_weights(tmp_path):
    path = cohort_with_bad(tmp_path, weights=make_arrays(0)["weights"][:, :5])
    refused(path, "bad_weights.npy", "not square")


def test_lengths_mismatch(tmp_path):
    path = cohort_with_bad(tmp_path, lengths=make_arrays(0, n=N + 1)["lengths"])
    refused(path, "bad_lengths.npy", "7x7", "6x6")


def test_bold_mismatch(tmp_path):
    path = cohort_with_bad(tmp_path, bold=make_arrays(0, n=N - 2)["bold"])
    refused(path, "bad_bold.npy", "matches neither way the 6 regions")


@pytest.mark.parametrize("role", ["weights", "lengths", "bold"])
def test_nan_inf(tmp_path, role):
    arr = make_arrays(0)[role].copy()
    arr[2, 4] = np.nan if role != "lengths" else np.inf
    msg = refused(cohort_with_bad(tmp_path, **{role: arr}), f"bad_{role}.npy", "NaN/inf")
    assert "'R002'" in msg or "'R004'" in msg  # names the region


@pytest.mark.parametrize("role", ["weights", "lengths"])
def test_negative(tmp_path, role):
    arr = make_arrays(0)[role].copy()
    arr[1, 3] = -1.0
    refused(cohort_with_bad(tmp_path, **{role: arr}), f"bad_{role}.npy", "negative", "'R001'")


def test_zero_row_is_a_warning_naming_the_region(tmp_path, caplog):
    w = make_arrays(0)["weights"].copy()
    w[4, :] = 0.0
    w[4, 4] = 5.0  # a self-connection does not connect a region
    path = cohort_with_bad(tmp_path, weights=w)
    with caplog.at_level(logging.WARNING, logger="explorer.cohort"):
        c = load_cohort(path)
    assert c.ids == ["good", "bad"]
    [warning] = c.warnings
    assert "subject bad" in warning and "bad_weights.npy" in warning and "'R004'" in warning
    assert "all-zero SC row" in caplog.text


def test_bold_shorter_than_fcd_window(tmp_path):
    path = cohort_with_bad(tmp_path, bold=make_arrays(0, t=20)["bold"])
    refused(path, "bad_bold.npy", "shorter than the FCD window of 30 TRs")


def test_constant_bold_region(tmp_path):
    b = make_arrays(0)["bold"].copy()
    b[3] = 42.0
    refused(cohort_with_bad(tmp_path, bold=b), "bad_bold.npy", "constant", "'R003'")


def test_missing_file(tmp_path):
    refused(cohort_with_bad(tmp_path, lengths=None), "bad_lengths.npy", "file not found")


def test_missing_file_neurolib(neurolib_dir):
    (neurolib_dir / "subjects" / "s2" / "structural" / "DTI_LEN.mat").unlink()
    with pytest.raises(CohortError) as info:
        load_cohort(neurolib_dir, CohortOptions(tr_s=2.0))
    msg = str(info.value)
    assert "subject s2" in msg and "DTI_LEN.mat" in msg and "file not found" in msg
    assert "subject s1" not in msg


def test_unreadable_mat_key_lists_keys(tmp_path):
    path = cohort_with_bad(tmp_path)
    a = make_arrays(0)
    sio.savemat(tmp_path / "bad_bold.mat", {"timeseries": a["bold"], "meta": np.ones(2)})
    path.write_text(path.read_text().replace("bad_bold.npy", "bad_bold.mat"))
    refused(path, "bad_bold.mat", "keys found: ['meta', 'timeseries']", "bad_bold.mat:KEY")


def test_duplicate_ids(tmp_path):
    path = cohort_with_bad(tmp_path)
    path.write_text(path.read_text() + path.read_text().splitlines()[2] + "\n")
    msg = refused(path, "duplicate subject id", "row 3", "row 4")
    assert msg.count("duplicate subject id") == 2


def test_no_tr(tmp_path):
    path = cohort_with_bad(tmp_path)
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace(",2.0,", ",,")
    path.write_text("\n".join(lines) + "\n")
    refused(path, "bad_bold.npy", "no TR")
    # the cohort option gives it
    assert load_cohort(path, CohortOptions(tr_s=2.0))["bad"].tr_s == 2.0


def test_bandpass_above_nyquist(tmp_path):
    path = cohort_with_bad(tmp_path)
    with pytest.raises(CohortError, match="Nyquist"):
        load_cohort(path, CohortOptions(features=FeatureOptions(bandpass=(0.01, 0.3))))


def test_every_problem_listed_then_skip_bad(tmp_path):
    a = make_arrays(0)
    w = a["weights"].copy()
    w[0, 1] = -2.0
    b = a["bold"].copy()
    b[5] = 1.0
    path = cohort_with_bad(tmp_path, weights=w, bold=b)
    msg = refused(path, "negative", "constant")
    assert "2 problem(s) in 1 subject(s)" in msg and "--skip-bad" in msg
    c = load_cohort(path, CohortOptions(skip_bad=True))
    assert c.ids == ["good"]
    assert list(c.skipped) == ["bad"]
    assert len(c.skipped["bad"]) == 2
    assert any("negative" in p for p in c.skipped["bad"])
    scanned = scan_cohort(path)  # never raises for bad subjects
    assert scanned.ids == ["good"] and list(scanned.skipped) == ["bad"]


def test_skip_bad_with_no_good_subject_raises(tmp_path):
    path = cohort_with_bad(tmp_path, lengths=None)
    path.write_text("\n".join(ln for ln in path.read_text().splitlines() if not ln.startswith("good")) + "\n")
    with pytest.raises(CohortError, match="no usable subject"):
        load_cohort(path, CohortOptions(skip_bad=True))


def test_region_selection_by_index_and_label(neurolib_dir):
    (neurolib_dir / "labels.txt").write_text("\n".join(f"L{i}" for i in range(N)) + "\n")
    raw = make_arrays(0)
    c = load_cohort(neurolib_dir, CohortOptions(tr_s=2.0, drop=[0, "L3"], normalise="none", zero_diagonal=False))
    s = c["s1"]
    keep = [1, 2, 4, 5]
    assert s.labels == ["L1", "L2", "L4", "L5"]
    np.testing.assert_allclose(s.weights, raw["weights"][np.ix_(keep, keep)])
    np.testing.assert_allclose(s.bold, raw["bold"][keep].T)
    assert c.options.drop == [0, "L3"]
    with pytest.raises(CohortError, match="no such label"):
        load_cohort(neurolib_dir, CohortOptions(tr_s=2.0, drop=["Thalamus_L"]))
    with pytest.raises(CohortError, match="cannot drop region index 9"):
        load_cohort(neurolib_dir, CohortOptions(tr_s=2.0, drop=[9]))


def test_dropping_a_bad_region_fixes_the_subject(tmp_path):
    b = make_arrays(0)["bold"].copy()
    b[3] = 42.0
    path = cohort_with_bad(tmp_path, bold=b)
    c = load_cohort(path, CohortOptions(drop=[3]))
    assert c["bad"].weights.shape == (N - 1, N - 1)


@pytest.mark.parametrize("normalise", ["max", "none", "log1p+max"])
@pytest.mark.parametrize("zero_diagonal", [True, False])
def test_normalisations(neurolib_dir, normalise, zero_diagonal):
    w = make_arrays(0)["weights"].copy()
    w[0, 1] += 5.0  # asymmetric
    sio.savemat(neurolib_dir / "subjects" / "s1" / "structural" / "DTI_CM.mat", {"sc": w})
    s = load_cohort(neurolib_dir, CohortOptions(tr_s=2.0, normalise=normalise, zero_diagonal=zero_diagonal))["s1"]
    e = w.copy()
    if zero_diagonal:
        np.fill_diagonal(e, 0)
    if normalise == "log1p+max":
        e = np.log1p(e)
    if normalise != "none":
        e = e / e.max()
    np.testing.assert_allclose(s.weights, e)
    assert s.weights[0, 1] != s.weights[1, 0]  # not symmetrised unless asked


def test_symmetrise(neurolib_dir):
    w = make_arrays(0)["weights"].copy()
    w[0, 1] += 5.0
    sio.savemat(neurolib_dir / "subjects" / "s1" / "structural" / "DTI_CM.mat", {"sc": w})
    s = load_cohort(neurolib_dir, CohortOptions(tr_s=2.0, symmetrise=True, normalise="none"))["s1"]
    e = (w + w.T) / 2
    np.fill_diagonal(e, 0)
    np.testing.assert_allclose(s.weights, e)


def test_options_validation_and_roundtrip():
    with pytest.raises(ConfigError, match="normalise"):
        CohortOptions(normalise="mean")
    o = CohortOptions(drop=[1, "x"], tr_s=0.8, features={"fcd_window": 20})
    assert o.features.fcd_window == 20
    assert CohortOptions.from_dict(o.to_dict()) == o
    with pytest.raises(ConfigError, match="unknown cohort option"):
        CohortOptions.from_dict({"dropp": []})
