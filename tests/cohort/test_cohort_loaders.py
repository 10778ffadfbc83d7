"""Each loader on small files the tests write."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import io as sio

from explorer.cohort import CohortOptions, load_cohort
from explorer.errors import CohortError
from explorer.scoring.features import empirical_features
from explorer.scoring.options import FeatureOptions

from cohort_files import N, T, make_arrays, manifest_cohort, write_manifest, write_tvb_zip


def test_neurolib_folder(neurolib_dir):
    c = load_cohort(neurolib_dir, CohortOptions(tr_s=2.0))
    assert c.ids == ["s1", "s2", "s3"]
    s = c["s2"]
    raw = make_arrays(1)
    assert s.bold.shape == (T, N)  # time-major after loading
    np.testing.assert_allclose(s.bold, raw["bold"].T)
    np.testing.assert_allclose(s.lengths, raw["lengths"])
    w = raw["weights"].copy()
    np.fill_diagonal(w, 0)
    np.testing.assert_allclose(s.weights, w / w.max())
    assert s.labels == [f"R{i:03d}" for i in range(N)]
    assert s.tr_s == 2.0
    fc, fcd = empirical_features(raw["bold"].T, 2.0, FeatureOptions())
    np.testing.assert_allclose(s.fc, fc)
    np.testing.assert_allclose(s.fcd, fcd)
    assert s.sources["bold"].endswith("BOLD_rsfMRI.mat:tc")
    assert c.options.tr_s == 2.0 and c.options.drop == []


def test_neurolib_folder_labels_and_phenotype(neurolib_dir):
    (neurolib_dir / "labels.txt").write_text("\n".join(f"L{i}" for i in range(N)) + "\n")
    (neurolib_dir / "phenotype.csv").write_text("subject,age\ns1,31\ns3,33\n")
    c = load_cohort(neurolib_dir, CohortOptions(tr_s=2.0, drop=["L0"]))
    assert c["s1"].labels == [f"L{i}" for i in range(1, N)]
    assert c["s1"].phenotype == {"age": 31.0}
    assert c["s2"].phenotype == {}


@pytest.mark.parametrize("fmt", ["npy", "csv", "txt", "mat"])
def test_manifest_formats(tmp_path, fmt):
    path = manifest_cohort(tmp_path, 2, fmt)
    c = load_cohort(path)
    assert c.ids == ["sub-01", "sub-02"]
    raw = make_arrays(11)
    s = c["sub-02"]
    np.testing.assert_allclose(s.bold, raw["bold"].T)
    np.testing.assert_allclose(s.lengths, raw["lengths"])
    assert s.phenotype == {"age": 31.0, "group": "ctl"}
    assert s.tr_s == 2.0


def test_manifest_tsv_and_bold_key_column(tmp_path):
    a = make_arrays(0)
    np.save(tmp_path / "w.npy", a["weights"])
    np.save(tmp_path / "l.npy", a["lengths"])
    sio.savemat(tmp_path / "b.mat", {"ts": a["bold"], "other": np.zeros(3)})
    path = write_manifest(tmp_path, [{"subject": "x", "weights": "w.npy", "lengths": "l.npy",
                                      "bold": "b.mat", "bold_key": "ts", "tr_s": 0.72, "score": "n/a"}],
                          name="m.tsv", sep="\t")
    c = load_cohort(path, CohortOptions(features=FeatureOptions(bandpass=None)))
    assert c["x"].tr_s == 0.72
    assert c["x"].phenotype == {"score": None}
    assert c["x"].sources["bold"].endswith("b.mat:ts")


def test_manifest_time_major_bold_is_detected(tmp_path):
    a = make_arrays(0)
    np.save(tmp_path / "w.npy", a["weights"])
    np.save(tmp_path / "l.npy", a["lengths"])
    np.save(tmp_path / "b.npy", a["bold"].T)  # time x regions on disk
    path = write_manifest(tmp_path, [{"subject": "x", "weights": "w.npy", "lengths": "l.npy",
                                      "bold": "b.npy", "tr_s": 2}])
    s = load_cohort(path)["x"]
    np.testing.assert_allclose(s.bold, a["bold"].T)
    assert "time x regions" in s.sources["bold_orientation"]


def test_tvb_zip_in_manifest(tmp_path):
    a = make_arrays(0)
    labels = [f"ctx{i}" for i in range(N)]
    write_tvb_zip(tmp_path / "conn.zip", a["weights"], a["lengths"], labels)
    np.savetxt(tmp_path / "b.txt", a["bold"])
    path = write_manifest(tmp_path, [{"subject": "z", "weights": "conn.zip", "lengths": "",
                                      "bold": "b.txt", "tr_s": 2.0}])
    s = load_cohort(path, CohortOptions(drop=["ctx2"], normalise="none", zero_diagonal=False))["z"]
    keep = [0, 1, 3, 4, 5]
    assert s.labels == [labels[i] for i in keep]
    np.testing.assert_allclose(s.weights, a["weights"][np.ix_(keep, keep)], rtol=1e-6)
    np.testing.assert_allclose(s.lengths, a["lengths"][np.ix_(keep, keep)], rtol=1e-6)
    assert s.sources["labels"].endswith("centres.txt")


def test_tvb_zip_alone_is_structural_only(tmp_path):
    a = make_arrays(0)
    path = write_tvb_zip(tmp_path / "connectivity_6.zip", a["weights"], a["lengths"], list("abcdef"))
    c = load_cohort(path)
    s = c["connectivity_6"]
    assert s.bold is None and s.fc is None and s.fcd is None
    assert s.labels == list("abcdef")
    assert any("structural only" in w for w in c.warnings)


def test_fc_only_subject(tmp_path):
    a = make_arrays(0)
    np.save(tmp_path / "w.npy", a["weights"])
    np.save(tmp_path / "l.npy", a["lengths"])
    fc = np.corrcoef(a["bold"])
    np.save(tmp_path / "fc.npy", fc)
    c = load_cohort(write_manifest(tmp_path, [{"subject": "f", "weights": "w.npy", "lengths": "l.npy",
                                                "fc": "fc.npy"}]))
    s = c["f"]
    np.testing.assert_allclose(s.fc, fc)
    assert s.fcd is None and s.bold is None
    assert any("fcd_ks" in w and "f" in w for w in c.warnings)


def test_unknown_source(tmp_path):
    with pytest.raises(CohortError, match="not found"):
        load_cohort(tmp_path / "nope.csv")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(CohortError, match="unsupported"):
        load_cohort(tmp_path / "x.json")
    (tmp_path / "m.csv").write_text("id,sc\na,b\n")
    with pytest.raises(CohortError, match=r"lacks column\(s\) \['subject', 'weights'\]"):
        load_cohort(tmp_path / "m.csv")
