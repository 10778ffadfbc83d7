"""The TrialWriter contract, run over every implementation (FileWriter on a local folder; ZarrWriter on a
local folder and on an fsspec URL, the cluster's path): a staged group is invisible and holds its marker
and arrays; the commit makes it visible with the commit's attributes; the store reads back what was
written; the choice by URL and the injection (``SignalStore(url, writer=...)``) work."""

from __future__ import annotations

import pickle
import uuid

import numpy as np
import pytest
import zarr
from store_workers import WRITERS, trial_data, trial_record

from explorer.errors import StoreError
from explorer.store import FileWriter, SignalStore, TrialSignals, TrialWriter, ZarrWriter, trial_location, writer_for
from explorer.store.index import subject_index

#: (writer, where): every implementation on every kind of store it serves
CASES = [("files", "local"), ("zarr", "local"), ("zarr", "memory")]


@pytest.fixture(params=CASES, ids=[f"{w}-{where}" for w, where in CASES])
def store(request, tmp_path):
    """A fresh store written by one TrialWriter."""
    name, where = request.param
    if where == "local":
        url = str(tmp_path / "s.zarr")
    else:
        url = f"memory://writers-{uuid.uuid4().hex}/s.zarr"
    s = SignalStore(url, writer=WRITERS[name])
    yield s
    if where == "memory":
        import fsspec

        fsspec.filesystem("memory").rm(url[len("memory://"):].split("/")[0], recursive=True)


def _arrays(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(n)
    return {"bold": rng.standard_normal((n, 30, 6)).astype(np.float32),
            "fc": rng.standard_normal((n, 6, 6)).astype(np.float32)}


def test_implements_the_protocol(store):
    assert isinstance(store.writer, TrialWriter)
    assert type(store.writer) in WRITERS.values()


def test_a_staged_group_holds_marker_and_arrays_and_is_invisible_until_committed(store):
    path = "subjects/S1/staging/000000-abc"
    marker = {"explorer_trials": 1, "committed": False, "numbers": [0, 1, 2], "started": 1.5}
    arrays = _arrays(3)
    staged = store.writer.stage(path, marker, arrays)
    # the parents exist as groups, the group carries the marker, each array is one uncompressed chunk
    for parent in ("subjects", "subjects/S1", "subjects/S1/staging"):
        assert zarr.open_group(store.zstore, path=parent, mode="r").attrs.asdict() == {}
    assert zarr.open_group(store.zstore, path=path, mode="r").attrs.asdict() == marker
    for var, data in arrays.items():
        arr = zarr.open_array(store.zstore, path=f"{path}/{var}", mode="r")
        assert arr.shape == arr.chunks == data.shape and arr.dtype == np.float32 and arr.compressors == ()
        assert np.isnan(arr.fill_value)
        np.testing.assert_array_equal(arr[...], data)
    assert store.trials("S1") == {}  # staged, not committed: nothing visible
    assert subject_index(store.zstore, store.url, "S1")["attempts"]["000000-abc"]["committed"] is False
    commit = {**marker, "committed": True, "committed_at": 2.5, "deleted": [], "tr_s": 2.0}
    store.writer.commit(staged, commit)
    assert zarr.open_group(store.zstore, path=path, mode="r").attrs.asdict() == commit
    for var, data in arrays.items():  # the commit leaves the arrays as they were
        np.testing.assert_array_equal(zarr.open_array(store.zstore, path=f"{path}/{var}", mode="r")[...], data)


def test_write_trials_reads_back_what_was_written(store):
    items = []
    for n in (4, 2):
        d = trial_data("S1", n)
        items.append(TrialSignals(trial_record("S1", n, d), d["bold"], d["fc"], d["bold"][::2]))
    d = trial_data("S2", 0)
    items.append(TrialSignals(trial_record("S2", 0, d), d["bold"], d["fc"]))
    locs = store.write_trials(items, 2.0, neural_dt_ms=5.0, simulation={"model": "hopf"}, git_revision="r1")
    assert locs == [trial_location(store.url, "S1", 4), trial_location(store.url, "S1", 2),
                    trial_location(store.url, "S2", 0)]
    for sid, n in (("S1", 4), ("S1", 2), ("S2", 0)):
        got, d = store.resolve(trial_location(store.url, sid, n)), trial_data(sid, n)
        np.testing.assert_array_equal(got["bold"], d["bold"])
        np.testing.assert_array_equal(got["fc"], d["fc"])
        assert ("neural" in got) == (sid == "S1")
        assert got["scores"] == pytest.approx(d["scores"]) and got["seed"] == d["seed"]
        assert (got["tr_s"], got["simulation"], got["git_revision"]) == (2.0, {"model": "hopf"}, "r1")
    (attempt,) = subject_index(store.zstore, store.url, "S1")["attempts"].values()
    assert attempt["committed"] is True and attempt["numbers"] == [2, 4] and attempt["deleted"] == []
    assert attempt["committed_at"] >= attempt["started"]
    store.pack("S1")
    np.testing.assert_array_equal(store.read_trial("S1", 4)["neural"], trial_data("S1", 4)["bold"][::2])


def test_a_group_staged_but_never_committed_stays_invisible_and_is_collected(store):
    """What a writer killed before its commit leaves (tests/store/test_write_trials.py kills one for real)."""
    d = trial_data("S1", 0)
    store.write_trial(trial_record("S1", 0, d), d["bold"], d["fc"], 2.0)
    store.writer.stage("subjects/S1/staging/000001-dead", {"explorer_trials": 1, "committed": False,
                                                           "numbers": [1], "started": 0.0}, _arrays(1))
    assert set(store.trials("S1")) == {0}
    with pytest.raises(StoreError, match="has no trial 1"):
        store.resolve(trial_location(store.url, "S1", 1))
    assert store.pack("S1") == {"packed": 1, "removed_staged": 1, "removed_stale": 1}
    assert subject_index(store.zstore, store.url, "S1")["attempts"] == {}


def test_the_url_chooses_and_the_caller_overrides(tmp_path):
    local = str(tmp_path / "s.zarr")
    assert writer_for(local) is FileWriter and writer_for(f"file://{local}") is FileWriter
    assert writer_for("memory://x/s.zarr") is ZarrWriter and writer_for("s3://bucket/s.zarr") is ZarrWriter
    assert type(SignalStore(local).writer) is FileWriter
    chosen = SignalStore(local, writer=ZarrWriter)
    assert type(chosen.writer) is ZarrWriter
    assert type(pickle.loads(pickle.dumps(chosen)).writer) is ZarrWriter  # an actor's copy writes the same way
    with pytest.raises(StoreError, match="local folders only"):
        SignalStore(f"memory://writers-{uuid.uuid4().hex}/s.zarr", writer=FileWriter)
