"""``SignalStore.write_trials``: one group and one commit per actor call, beside the one-trial groups
of older versions (studies on disk hold them): round trip, crash before the commit, pack, delete,
keep_best, resolve and open_signals over mixed stores. Each test that writes runs over both
TrialWriters (the ``writer`` fixture: tests/store/conftest.py)."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import numpy as np
import pytest
from store_workers import (N_REGIONS, N_TIME, checksum, dataset_checksums, open_writing, trial_data, trial_record,
                           write_call, write_call_then_die, write_calls, write_legacy_trial)

from explorer.errors import StoreError
from explorer.store import FileWriter, SignalStore, TrialSignals, ZarrWriter, open_signals, trial_location


def _groups(url: str, sid: str) -> list[Path]:
    staging = Path(url) / "subjects" / sid / "staging"
    return sorted(p for p in staging.iterdir() if p.is_dir()) if staging.exists() else []


def _check(store: SignalStore, sid: str, n: int, packed: bool | None = None) -> None:
    """Trial ``n`` reads back (read_trial and its location) as :func:`trial_data` made it."""
    d = trial_data(sid, n)
    for got in (store.read_trial(sid, n), store.resolve(trial_location(store.url, sid, n))):
        np.testing.assert_array_equal(got["bold"], d["bold"])
        np.testing.assert_array_equal(got["fc"], d["fc"])
        assert got["params"] == pytest.approx(d["params"]) and got["scores"] == pytest.approx(d["scores"])
        assert got["seed"] == d["seed"] and got["location"] == trial_location(store.url, sid, n)
        if packed is not None:
            assert got["packed"] is packed


def _expected(trials: dict[str, list[int]]) -> dict[tuple[str, int], tuple[str, str, float]]:
    out = {}
    for sid, numbers in trials.items():
        for n in numbers:
            d = trial_data(sid, n)
            out[(sid, n)] = (checksum(d["bold"]), checksum(d["fc"]), pytest.approx(d["scores"]["fc_r"]))
    return out


def test_a_call_of_three_trials_is_one_group_one_commit_and_reads_back(tmp_path, writer):
    url = str(tmp_path / "s.zarr")
    store = open_writing(url, writer)
    items, neural = [], {}
    for n in (7, 3, 5):  # any order: locations come back in the items' order
        d = trial_data("S1", n)
        neural[n] = d["bold"][::2] * 3
        items.append(TrialSignals(trial_record("S1", n, d), d["bold"], d["fc"], neural[n]))
    sim = {"model": "hopf", "dt_ms": 100.0}
    locs = store.write_trials(items, 2.0, neural_dt_ms=10.0, simulation=sim, git_revision="abc123")
    assert locs == [trial_location(url, "S1", n) for n in (7, 3, 5)]
    (group,) = _groups(url, "S1")  # one attempt group, named after its first trial
    assert group.name.startswith("000003-")
    import zarr

    g = zarr.open_group(url, path=f"subjects/S1/staging/{group.name}", mode="r")
    assert g.attrs["committed"] is True and g.attrs["numbers"] == [3, 5, 7] and g.attrs["deleted"] == []
    assert [t["number"] for t in g.attrs["trials"]] == [3, 5, 7]
    bold = zarr.open_array(url, path=f"subjects/S1/staging/{group.name}/bold", mode="r")
    assert bold.shape == bold.chunks == (3, N_TIME, N_REGIONS) and bold.shards is None
    assert bold.compressors == ()  # temporary: packing compresses
    files = sorted(str(f.relative_to(group)) for f in (group / "bold").rglob("*") if f.is_file())
    assert files == ["bold/c/0/0/0", "bold/zarr.json"]  # one object for the whole call
    trials = store.trials("S1")
    assert set(trials) == {3, 5, 7}
    for n in (3, 5, 7):
        _check(store, "S1", n, packed=False)
        t = trials[n]
        assert t["simulation"] == sim and t["git_revision"] == "abc123" and t["tr_s"] == 2.0
        assert t["record"].number == n and t["record"].state == "COMPLETE"
        np.testing.assert_array_equal(store.read_trial("S1", n)["neural"], neural[n])
    assert "bold" not in store.resolve(locs[0], data=False)
    # the staging path of the group (what older versions recorded) names each of its trials
    got = store.resolve(f"{url}/subjects/S1/staging/{group.name}")
    assert (got["number"], got["resolved_by"]) == (3, "location")
    ds = open_signals(url)
    assert ds.trial_number.values.tolist() == [[3, 5, 7]]
    np.testing.assert_array_equal(ds.neural.sel(subject="S1").isel(trial=2).values, neural[7])
    # a one-trial call (write_trial) writes the same way
    d = trial_data("S1", 9)
    assert store.write_trial(trial_record("S1", 9, d), d["bold"], d["fc"], 2.0) == trial_location(url, "S1", 9)
    assert len(_groups(url, "S1")) == 2
    _check(store, "S1", 9)


def test_write_trials_checks_every_item_before_writing(tmp_path, writer):
    url = str(tmp_path / "s.zarr")
    store = open_writing(url, writer)
    good = [(trial_record("S1", n, trial_data("S1", n)), trial_data("S1", n)["bold"], trial_data("S1", n)["fc"])
            for n in range(2)]
    d = trial_data("S1", 2)
    bad_shape = (trial_record("S1", 2, d), d["bold"], d["fc"][:3])
    with pytest.raises(StoreError, match="region"):
        store.write_trials([*good, bad_shape], 2.0)
    with pytest.raises(StoreError, match=r"trial\(s\) \[1\] given more than once"):
        store.write_trials([*good, good[1]], 2.0)
    failed = trial_record("S1", 2, d)
    failed.state = "FAIL"
    with pytest.raises(StoreError, match="only COMPLETE"):
        store.write_trials([*good, (failed, d["bold"], d["fc"])], 2.0)
    assert _groups(url, "S1") == [] and store.trials("S1") == {}
    assert store.write_trials([], 2.0) == []
    # two subjects (or two shapes) in one call: one group and commit each, locations in the items' order
    d2 = trial_data("S2", 0)
    locs = store.write_trials([good[0], (trial_record("S2", 0, d2), d2["bold"], d2["fc"]), good[1]], 2.0)
    assert locs == [trial_location(url, "S1", 0), trial_location(url, "S2", 0), trial_location(url, "S1", 1)]
    assert len(_groups(url, "S1")) == 1 and len(_groups(url, "S2")) == 1
    _check(store, "S2", 0)


def test_a_call_killed_before_its_commit_leaves_nothing_visible(tmp_path, writer):
    url = str(tmp_path / "s.zarr")
    write_call(url, "S1", [0, 1], writer)
    p = mp.get_context("spawn").Process(target=write_call_then_die, args=(url, "S1", [2, 3, 4], writer))
    p.start()
    p.join(120)
    assert p.exitcode == -9  # SIGKILL after every array, before the commit
    store = SignalStore(url)
    killed = [g for g in _groups(url, "S1") if g.name.startswith("000002-")]
    assert len(killed) == 1 and (killed[0] / "bold" / "zarr.json").exists()  # its arrays are on disk ...
    assert set(store.trials("S1")) == {0, 1}  # ... none of its trials is visible
    assert open_signals(url).trial_number.values.tolist() == [[0, 1]]
    with pytest.raises(StoreError, match="has no trial 3"):
        store.resolve(trial_location(url, "S1", 3))
    with pytest.raises(StoreError, match="has no trial 2"):  # nor through its group's staging path
        store.resolve(f"{url}/subjects/S1/staging/{killed[0].name}")
    write_call(url, "S1", [2, 3, 4], writer)  # the retry: a fresh uuid, a new group, complete
    assert set(store.trials("S1")) == {0, 1, 2, 3, 4}
    for n in range(5):
        _check(store, "S1", n)
    assert store.pack("S1") == {"packed": 5, "removed_staged": 2, "removed_stale": 1}
    assert _groups(url, "S1") == []
    for n in range(5):
        _check(store, "S1", n, packed=True)


def test_reaping_an_interrupted_call_deletes_its_uncommitted_group(tmp_path, writer):
    url = str(tmp_path / "s.zarr")
    p = mp.get_context("spawn").Process(target=write_call_then_die, args=(url, "S1", [0, 1], writer))
    p.start()
    p.join(120)
    assert p.exitcode == -9
    store = SignalStore(url)
    write_call(url, "S1", [2], writer)
    assert len(_groups(url, "S1")) == 2
    store.delete_trial("S1", 1)  # the driver reaps trial 1 (and so the whole interrupted call)
    assert [g.name[:6] for g in _groups(url, "S1")] == ["000002"]
    _check(store, "S1", 2)


def test_parallel_calls_match_serial_writes(tmp_path, writer):
    serial = str(tmp_path / "serial.zarr")
    for sid in ("S1", "S2"):
        for n in range(6):
            write_legacy_trial(serial, sid, n)
    parallel = str(tmp_path / "parallel.zarr")
    SignalStore(parallel)
    # 3 processes, calls of 2-3 trials; trials (S1, 2) and (S1, 3) are written twice at once (a retry race)
    plans = [[("S1", [0, 1, 2]), ("S2", [0, 1])], [("S1", [2, 3]), ("S2", [2, 3, 4])],
             [("S1", [3, 4, 5]), ("S2", [5])]]
    procs = [mp.get_context("spawn").Process(target=write_calls, args=(parallel, plan, writer)) for plan in plans]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    expected = _expected({"S1": list(range(6)), "S2": list(range(6))})
    assert dataset_checksums(serial) == expected and dataset_checksums(parallel) == expected
    store = SignalStore(parallel)
    for sid in ("S1", "S2"):
        store.pack(sid)
        assert all(t["packed"] for t in store.trials(sid).values())
    assert dataset_checksums(parallel) == expected


def _mixed(url: str, writer: str) -> dict[str, list[int]]:
    """A store as an upgraded study has it: one-trial groups of older versions, then write_trial and
    write_trials groups. Returns the trials written per subject."""
    for n in (0, 1):
        write_legacy_trial(url, "S1", n)
    write_call(url, "S1", [2, 3, 4], writer)
    write_call(url, "S1", [5], writer)
    write_legacy_trial(url, "S1", 6)
    write_call(url, "S1", [8, 7], writer)
    write_call(url, "S2", [0, 1, 2], writer)
    return {"S1": list(range(9)), "S2": [0, 1, 2]}


def test_open_signals_and_locations_over_a_mixed_store(tmp_path, writer):
    url = str(tmp_path / "s.zarr")
    store = SignalStore(url)
    rng = np.random.default_rng(3)
    emp = rng.standard_normal((60, N_REGIONS)).astype(np.float32)
    store.write_empirical("S1", emp, np.corrcoef(emp.T), 2.0)
    trials = _mixed(url, writer)
    old = write_legacy_trial(url, "S2", 3)  # an old recorded location: the one-trial group
    trials["S2"].append(3)
    assert dataset_checksums(url) == _expected(trials)
    ds = open_signals(url)
    assert ds.trial_number.values.tolist() == [list(range(9)), [0, 1, 2, 3, -1, -1, -1, -1, -1]]
    assert ds.location.sel(subject="S1").values.tolist() == [trial_location(url, "S1", n) for n in range(9)]
    assert np.isnan(ds.bold.sel(subject="S2").isel(trial=5).values).all()
    # runs of one write_trials group are read as one slice
    from explorer.store.reader import _pieces

    kinds = [(k, b - a) for k, _, a, b, _ in _pieces(store.entries("S1"), "bold")]
    assert kinds == [("staged", 1), ("staged", 1), ("batch", 3), ("batch", 1), ("staged", 1), ("batch", 2)]
    for sid, numbers in trials.items():
        for n in numbers:
            _check(store, sid, n, packed=False)
    got = store.resolve(old)
    assert (got["number"], got["resolved_by"]) == (3, "location")
    # after packing S1 only, a later call stays staged beside the packed trials
    store.pack("S1", shard_trials=4)
    write_call(url, "S1", [10, 9], writer)
    trials["S1"] += [9, 10]
    assert dataset_checksums(url) == _expected(trials)
    kinds = [(k, b - a) for k, _, a, b, _ in _pieces(store.entries("S1"), "bold")]
    assert kinds == [("packed", 9), ("batch", 2)]
    for n in trials["S1"]:
        _check(store, "S1", n, packed=n < 9)
    assert store.resolve(old)["number"] == 3


def test_pack_after_single_and_multi_trial_writes(tmp_path, writer):
    url = str(tmp_path / "s.zarr")
    store = SignalStore(url)
    trials = _mixed(url, writer)
    before = dataset_checksums(url)
    assert before == _expected(trials)
    out = store.pack("S1", shard_trials=4)
    assert out == {"packed": 9, "removed_staged": 6, "removed_stale": 0}
    assert _groups(url, "S1") == []
    import zarr

    cur = zarr.open_group(url, path="subjects/S1/packed", mode="r").attrs["current"]
    arr = zarr.open_array(url, path=f"subjects/S1/packed/{cur}/bold", mode="r")
    assert arr.shape == (9, N_TIME, N_REGIONS) and arr.shards == (4, N_TIME, N_REGIONS)
    assert dataset_checksums(url) == before
    for n in trials["S1"]:
        _check(store, "S1", n, packed=True)
    t = store.trials("S1")
    assert [t[n]["record"].number for n in range(9)] == list(range(9))
    # repacking a packed subject and packing the other one keep every trial
    store.pack("S1")
    store.pack("S2")
    assert dataset_checksums(url) == before


def test_delete_one_trial_of_a_multi_trial_group(tmp_path, writer):
    url = str(tmp_path / "s.zarr")
    store = SignalStore(url)
    write_call(url, "S1", [0, 1, 2], writer)
    write_legacy_trial(url, "S1", 3)
    (group,) = [g for g in _groups(url, "S1") if g.name.startswith("000000-")]
    store.delete_trial("S1", 1)  # recorded in the group's metadata; the others stay
    import zarr

    assert zarr.open_group(url, path=f"subjects/S1/staging/{group.name}", mode="r").attrs["deleted"] == [1]
    assert set(store.trials("S1")) == {0, 2, 3}
    for n in (0, 2, 3):
        _check(store, "S1", n)
    with pytest.raises(StoreError, match="subject S1 has no trial 1"):
        store.resolve(trial_location(url, "S1", 1))
    with pytest.raises(StoreError, match="is not in the signals store"):
        store.read_trial("S1", 1)
    assert open_signals(url).trial_number.values.tolist() == [[0, 2, 3]]
    assert dataset_checksums(url) == _expected({"S1": [0, 2, 3]})
    # a retry of trial 1 (a later call) is visible again; the deleted copy stays deleted
    write_call(url, "S1", [1], writer)
    assert set(store.trials("S1")) == {0, 1, 2, 3}
    _check(store, "S1", 1)
    store.delete_trial("S1", 1)
    store.delete_trial("S1", 0)
    assert set(store.trials("S1")) == {2, 3}
    store.delete_trial("S1", 2)  # the group's last trial: the group goes
    assert not group.exists() and set(store.trials("S1")) == {3}
    write_call(url, "S1", [4, 5], writer)
    assert store.pack("S1")["packed"] == 3 and dataset_checksums(url) == _expected({"S1": [3, 4, 5]})
    store.delete_trial("S1", 4)  # packed: repacked without it
    assert dataset_checksums(url) == _expected({"S1": [3, 5]})


def _mixed_groups(url: str, writer: str, legacy: int,
                  calls: list[list[int]]) -> tuple[SignalStore, dict[int, float], int]:
    """Calls of several trials and one legacy one-trial group; (store, fc_r by trial, the worst trial)."""
    store = SignalStore(url)
    for numbers in calls:
        write_call(url, "S1", numbers, writer)
    write_legacy_trial(url, "S1", legacy)
    scores = {n: t["scores"]["fc_r"] for n, t in store.trials("S1").items()}
    return store, scores, min(scores, key=scores.get)


def _assert_pruned(store: SignalStore, numbers: set[int]) -> None:
    for n in numbers:
        with pytest.raises(StoreError, match=r"pruned \(store: best"):
            store.resolve(trial_location(store.url, "S1", n))


def test_keep_best_prunes_trials_inside_multi_trial_groups(tmp_path, writer):
    url = str(tmp_path / "s.zarr")
    store, scores, twin = _mixed_groups(url, writer, 6, [[0, 1, 2, 3], [4, 5], [7, 8]])
    kept = store.keep_best("S1", 3, "fc_r", maximise=True, always=(twin,))
    best = sorted(scores, key=scores.get)[-3:]
    assert kept == sorted({*best, twin})
    assert set(store.trials("S1")) == set(kept)
    assert dataset_checksums(url) == _expected({"S1": kept})
    for n in kept:
        _check(store, "S1", n, packed=False)
    _assert_pruned(store, set(range(9)) - set(kept))
    # groups with no kept trial are gone; the others record what was pruned
    import zarr

    for g in _groups(url, "S1"):
        attrs = zarr.open_group(url, path=f"subjects/S1/staging/{g.name}", mode="r").attrs.asdict()
        numbers = attrs.get("numbers", [attrs.get("number")])
        assert set(numbers) & set(kept)
        assert set(attrs.get("deleted", [])) == set(numbers) - set(kept)
    assert store.pack("S1")["packed"] == len(kept)
    assert dataset_checksums(url) == _expected({"S1": kept})


def test_keep_best_with_pack_packs_only_the_kept_trials_in_one_pass(tmp_path, writer):
    url = str(tmp_path / "s.zarr")
    store, scores, twin = _mixed_groups(url, writer, 6, [[0, 1, 2, 3], [4, 5]])
    kept = store.keep_best("S1", 2, "fc_r", maximise=True, always=(twin,), pack=True)
    assert kept == sorted({*sorted(scores, key=scores.get)[-2:], twin})
    assert set(store.trials("S1")) == set(kept) and _groups(url, "S1") == []  # every staging group absorbed
    assert dataset_checksums(url) == _expected({"S1": kept})
    for n in kept:
        _check(store, "S1", n, packed=True)
    _assert_pruned(store, set(range(7)) - set(kept))
    write_call(url, "S1", [7, 8], writer)  # extend: the packed trials and the new ones compete
    scores.update({n: t["scores"]["fc_r"] for n, t in store.trials("S1").items()})
    again = store.keep_best("S1", 2, "fc_r", maximise=True, always=(twin,), pack=True)
    assert again == sorted({*sorted((n for n in scores if n in {*kept, 7, 8}), key=scores.get)[-2:], twin})
    assert set(store.trials("S1")) == set(again) and _groups(url, "S1") == []


def test_a_local_group_is_written_as_zarr_writes_it(tmp_path):
    """The plain-file path of a local store (FileWriter, explorer.store.files) writes zarr's bytes (ZarrWriter's):
    the same files, arrays and parent groups byte for byte, the group metadata equal but for its times and uuid."""
    import json

    fast, slow = str(tmp_path / "fast.zarr"), str(tmp_path / "slow.zarr")
    assert type(SignalStore(fast).writer) is FileWriter  # a local store's own choice
    slow_store = open_writing(slow, "zarr")
    assert type(slow_store.writer) is ZarrWriter
    write_call(fast, "S1", [3, 5, 7])
    write_call(slow, "S1", [3, 5, 7], store=slow_store)
    (fg,), (sg,) = _groups(fast, "S1"), _groups(slow, "S1")

    def tree(root, group):
        out = {}
        for f in sorted(Path(root).rglob("*")):
            if f.is_file():
                key = str(f.relative_to(root)).replace(group.name, "GROUP")
                out[key] = f.read_bytes()
        return out

    a, b = tree(fast, fg), tree(slow, sg)
    assert sorted(a) == sorted(b)
    assert "subjects/S1/staging/zarr.json" in a and "subjects/S1/staging/GROUP/bold/c/0/0/0" in a
    times = {"attempt_id", "started", "committed_at"}
    for key in a:
        if key.endswith("GROUP/zarr.json"):
            ja, jb = json.loads(a[key]), json.loads(b[key])
            assert {k: v for k, v in ja["attributes"].items() if k not in times} == \
                {k: v for k, v in jb["attributes"].items() if k not in times}
            assert {k: v for k, v in ja.items() if k != "attributes"} == {k: v for k, v in jb.items() if k != "attributes"}
        else:
            assert a[key] == b[key], key
    store = SignalStore(fast)
    for n in (3, 5, 7):
        _check(store, "S1", n)
