"""Signals store: round trip through open_signals, concurrent writers, killed writers, pack, locations."""

from __future__ import annotations

import multiprocessing as mp
import pickle

import numpy as np
import pytest
from store_workers import (N_REGIONS, N_TIME, checksum, dataset_checksums, open_writing, trial_data, trial_record,
                           write_then_die, write_trials)

from explorer.errors import StoreError
from explorer.store import SignalStore, ZarrWriter, open_signals, parse_location, resolve_location, trial_location

LABELS = [f"R{i}" for i in range(N_REGIONS)]


def _fill(store: SignalStore, plan: dict[str, list[int]]) -> None:
    """Empirical data and :func:`trial_data`'s trials of ``plan``, written by ``store``."""
    rng = np.random.default_rng(7)
    for sid, numbers in plan.items():
        emp = rng.standard_normal((60, N_REGIONS)).astype(np.float32)
        store.write_empirical(sid, emp, np.corrcoef(emp.T), 2.0, LABELS)
        write_trials(store.url, [(sid, n) for n in numbers], store=store)


def test_roundtrip_dims_values_and_coords(tmp_path, writer):
    study = tmp_path / "study"
    store = open_writing(str(study / "signals.zarr"), writer)
    _fill(store, {"NAP_001": [0, 1, 2, 5], "NAP_002": [0, 3]})
    ds = open_signals(study)  # a study folder resolves to its signals.zarr
    assert ds.bold.dims == ("subject", "trial", "time", "region")
    assert ds.sizes == {"subject": 2, "trial": 4, "time": N_TIME, "region": N_REGIONS,
                        "region_to": N_REGIONS, "emp_time": 60}
    assert hasattr(ds.bold.data, "dask")  # lazy
    assert list(ds.region.values) == LABELS
    np.testing.assert_allclose(ds.time.values, np.arange(N_TIME) * 2.0)
    assert ds.trial_number.sel(subject="NAP_002").values.tolist() == [0, 3, -1, -1]
    for sid, numbers in {"NAP_001": [0, 1, 2, 5], "NAP_002": [0, 3]}.items():
        for j, n in enumerate(numbers):
            d = trial_data(sid, n)
            np.testing.assert_array_equal(ds.bold.sel(subject=sid).isel(trial=j).values, d["bold"])
            np.testing.assert_array_equal(ds.fc.sel(subject=sid).isel(trial=j).values, d["fc"])
            assert ds.G.sel(subject=sid).values[j] == pytest.approx(d["params"]["G"])
            assert ds.fc_r.sel(subject=sid).values[j] == pytest.approx(d["scores"]["fc_r"])
            assert int(ds.seed.sel(subject=sid).values[j]) == d["seed"]
    # padding is NaN, and the selection idiom works
    assert np.isnan(ds.fc_r.sel(subject="NAP_002").values[2:]).all()
    assert np.isnan(ds.bold.sel(subject="NAP_002").isel(trial=3).values).all()
    best = ds.bold.sel(subject="NAP_001").isel(trial=ds.fc_r.sel(subject="NAP_001").argmax("trial"))
    scores = [trial_data("NAP_001", n)["scores"]["fc_r"] for n in [0, 1, 2, 5]]
    np.testing.assert_array_equal(best.values, trial_data("NAP_001", [0, 1, 2, 5][int(np.argmax(scores))])["bold"])
    assert ds.emp_bold.dims == ("subject", "emp_time", "region")
    # open_signals on the store URL itself, and a cohort-wide reduction
    ds2 = open_signals(store.url)
    assert float(ds2.bold.mean(["trial", "time"]).sel(subject="NAP_001", region="R3")) == pytest.approx(
        np.mean([trial_data("NAP_001", n)["bold"][:, 3] for n in [0, 1, 2, 5]]), rel=1e-5)


def test_store_records_and_read_trial(tmp_path, writer):
    store = open_writing(str(tmp_path / "s.zarr"), writer)
    d = trial_data("S1", 4)
    loc = store.write_trial(trial_record("S1", 4, d), d["bold"], d["fc"], tr_s=2.0,
                            neural=d["bold"][::2], neural_dt_ms=10.0)
    assert loc.startswith(store.url) and "S1" in loc
    rec = store.trials("S1")[4]
    assert rec["params"] == pytest.approx(d["params"]) and rec["scores"] == pytest.approx(d["scores"])
    assert rec["seed"] == d["seed"] and rec["location"] == loc
    got = store.read_trial("S1", 4)
    np.testing.assert_array_equal(got["bold"], d["bold"])
    np.testing.assert_array_equal(got["neural"], d["bold"][::2])
    assert open_signals(store.url).neural.dims == ("subject", "trial", "neural_time", "region")
    # picklable (shipped to actors), re-opens the same store
    again = pickle.loads(pickle.dumps(store))
    assert again.trials("S1").keys() == {4} and type(again.writer) is type(store.writer)
    with pytest.raises(StoreError, match="subject id"):
        store.write_trial(trial_record("../evil", 0, d), d["bold"], d["fc"], tr_s=2.0)
    with pytest.raises(StoreError, match="region"):
        store.write_trial(trial_record("S1", 1, d), d["bold"], d["fc"][:3], tr_s=2.0)
    with pytest.raises(StoreError, match="no signals store"):
        open_signals(tmp_path / "nothing")


def test_parallel_writers_match_serial(tmp_path, writer):
    jobs = [(sid, n) for sid in ("S1", "S2", "S3") for n in range(8)]
    serial = str(tmp_path / "serial.zarr")
    write_trials(serial, jobs, writer)
    parallel = str(tmp_path / "parallel.zarr")
    SignalStore(parallel)
    # 4 processes interleave subjects; trial ('S2', 3) is written twice at once (a retry race)
    chunks = [jobs[i::4] for i in range(4)]
    chunks[0].append(("S2", 3))
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=write_trials, args=(parallel, c, writer)) for c in chunks]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    a, b = dataset_checksums(serial), dataset_checksums(parallel)
    assert len(a) == len(jobs) and a == b
    for sid, n in jobs:
        assert checksum(trial_data(sid, n)["bold"]) == b[(sid, n)][0]
    # after packing every subject, the same bytes come back
    store = SignalStore(parallel)
    for sid in ("S1", "S2", "S3"):
        store.pack(sid)
        assert all(t["packed"] for t in store.trials(sid).values())
    assert dataset_checksums(parallel) == a


def test_killed_writer_is_invisible_and_retry_is_complete(tmp_path, writer):
    url = str(tmp_path / "s.zarr")
    write_trials(url, [("S1", 0)], writer)
    p = mp.get_context("spawn").Process(target=write_then_die, args=(url, "S1", 1, writer))
    p.start()
    p.join(120)
    assert p.exitcode == -9  # SIGKILL between the arrays and the commit marker
    store = SignalStore(url)
    staged = [p for p in (tmp_path / "s.zarr/subjects/S1/staging").iterdir() if p.is_dir()]
    assert len(staged) == 2  # the half-written attempt is on disk ...
    assert set(store.trials("S1")) == {0}  # ... but never visible
    assert open_signals(url).sizes["trial"] == 1
    write_trials(url, [("S1", 1)], writer)  # the retry: a fresh attempt, complete
    assert set(store.trials("S1")) == {0, 1}
    np.testing.assert_array_equal(store.read_trial("S1", 1)["bold"], trial_data("S1", 1)["bold"])
    assert store.pack("S1")["removed_stale"] == 1
    assert not (tmp_path / "s.zarr/subjects/S1/staging").exists()
    np.testing.assert_array_equal(open_signals(url).bold.sel(subject="S1").isel(trial=1).values,
                                  trial_data("S1", 1)["bold"])


def test_pack_layout_keep_best_delete_and_staged_after_pack(tmp_path, writer):
    url = str(tmp_path / "s.zarr")
    store = open_writing(url, writer)
    _fill(store, {"S1": list(range(6))})
    before = dataset_checksums(url)
    store.pack("S1", shard_trials=4)
    import zarr

    cur = zarr.open_group(url, path="subjects/S1/packed", mode="r").attrs["current"]
    arr = zarr.open_array(url, path=f"subjects/S1/packed/{cur}/bold", mode="r")
    assert arr.shape == (6, N_TIME, N_REGIONS) and arr.shards == (4, N_TIME, N_REGIONS)
    assert arr.chunks == (1, N_TIME, N_REGIONS)
    assert dataset_checksums(url) == before
    write_trials(url, [("S1", 9)], writer)  # a later trial (extend) stays staged beside the packed ones
    assert open_signals(url).trial_number.values.tolist() == [[0, 1, 2, 3, 4, 5, 9]]
    store.delete_trial("S1", 2)
    assert 2 not in store.trials("S1")
    scores = {n: t["scores"]["fc_r"] for n, t in store.trials("S1").items()}
    kept = store.keep_best("S1", 2, "fc_r", maximise=True)
    assert kept == sorted(sorted(scores, key=scores.get)[-2:])
    assert set(store.trials("S1")) == set(kept)
    after = dataset_checksums(url)
    assert after == {k: v for k, v in before.items() if k[1] in kept} | {k: v for k, v in after.items()
                                                                            if k[1] == 9}
    emp = store.empirical("S1")
    assert emp["labels"] == LABELS and emp["bold"].shape == (60, N_REGIONS)


def test_fsspec_url_uses_same_code(tmp_path):
    import fsspec

    url = "memory://explorer-test/signals.zarr"
    mem = fsspec.filesystem("memory")
    if mem.exists("/explorer-test"):
        mem.rm("/explorer-test", recursive=True)
    write_trials(url, [("S1", 0), ("S1", 1)])
    store = SignalStore(url)
    assert type(store.writer) is ZarrWriter  # an fsspec URL's own choice
    assert set(store.trials("S1")) == {0, 1}
    store.pack("S1")
    ds = open_signals(url)
    np.testing.assert_array_equal(ds.bold.sel(subject="S1").isel(trial=1).values, trial_data("S1", 1)["bold"])


def _write(store: SignalStore, sid: str, n: int) -> str:
    d = trial_data(sid, n)
    return store.write_trial(trial_record(sid, n, d), d["bold"], d["fc"], tr_s=2.0)


def test_recorded_locations_resolve_staged_packed_best_and_old_style(tmp_path, writer):
    url = str(tmp_path / "s.zarr")
    store = open_writing(url, writer)
    locs = {n: _write(store, "S1", n) for n in range(5)}
    assert locs[3] == f"{url}#subject=S1&trial=3" and parse_location(locs[3]) == (url, "S1", 3)
    assert store.location("S1", 3) == locs[3] and store.trials("S1")[3]["location"] == locs[3]
    # what older versions recorded: the attempt's staging group
    old = {int(p.name.split("-")[0]): f"{url}/subjects/S1/staging/{p.name}"
           for p in (tmp_path / "s.zarr/subjects/S1/staging").iterdir() if p.is_dir()}
    assert sorted(old) == list(range(5)) and parse_location(old[2]) == (url, "S1", 2)

    def check(loc: str, n: int, packed: bool, by: str = "location") -> None:
        got, d = store.resolve(loc), trial_data("S1", n)
        assert (got["subject"], got["number"], got["packed"], got["resolved_by"]) == ("S1", n, packed, by)
        assert got["params"] == pytest.approx(d["params"]) and got["scores"] == pytest.approx(d["scores"])
        assert got["seed"] == d["seed"] and got["location"] == locs[n]
        np.testing.assert_array_equal(got["bold"], d["bold"])
        np.testing.assert_array_equal(got["fc"], d["fc"])

    for n in locs:
        check(locs[n], n, packed=False)
        check(old[n], n, packed=False)
    store.pack("S1")
    assert not (tmp_path / "s.zarr/subjects/S1/staging").exists()  # the recorded groups are gone ...
    for n in locs:
        check(locs[n], n, packed=True)  # ... yet every recorded location resolves
        check(old[n], n, packed=True, by="trial number")
    assert "bold" not in store.resolve(locs[1], data=False)
    assert resolve_location(locs[4])["number"] == 4  # through the store the location names
    import zarr

    cur = zarr.open_group(url, path="subjects/S1/packed", mode="r").attrs["current"]
    check(f"{url}/subjects/S1/packed/{cur}[3]", 3, packed=True)  # what older trials() showed when packed
    ds = open_signals(locs[0])  # a location stands for its store
    assert ds.location.sel(subject="S1").values.tolist() == [locs[n] for n in range(5)]
    # store: best: kept trials resolve, pruned ones raise and say why
    kept = store.keep_best("S1", 2, "fc_r", maximise=True)
    for n in kept:
        check(locs[n], n, packed=True)
    pruned = next(n for n in locs if n not in kept)
    for loc in (locs[pruned], old[pruned]):
        with pytest.raises(StoreError, match=r"does not resolve: subject S1 has no trial .*pruned \(store: best"):
            store.resolve(loc)
    res = store.resolve_many({n: locs[n] for n in locs})
    assert {n for n, r in res.items() if not isinstance(r, StoreError)} == set(kept)
    assert locs[pruned] in str(res[pruned])
    # a deleted trial
    store.delete_trial("S1", kept[0])
    with pytest.raises(StoreError, match="simulated again") as err:
        store.resolve(locs[kept[0]])
    assert locs[kept[0]] in str(err.value)
    check(locs[kept[1]], kept[1], packed=True)
    # another store's location, and things that are no location
    with pytest.raises(StoreError, match="names the signals store"):
        store.resolve(trial_location(str(tmp_path / "other.zarr"), "S1", kept[1]))
    for bad in ("", "nothing", f"{url}#subject=S1&trial=x", f"{url}#subject=../x&trial=1",
                f"{url}#subject=..&trial=1"):
        with pytest.raises(StoreError, match="not a signals location"):
            parse_location(bad)


def test_staged_delete_and_keep_best_keep_locations_valid(tmp_path, writer):
    store = open_writing(str(tmp_path / "s.zarr"), writer)
    locs = {n: _write(store, "S2", n) for n in range(4)}
    _write(store, "S2", 1)  # a retry of trial 1: a second attempt; the location still names the trial
    assert store.resolve(locs[1])["number"] == 1
    store.delete_trial("S2", 0)
    with pytest.raises(StoreError, match="subject S2 has no trial 0"):
        store.resolve(locs[0])
    kept = store.keep_best("S2", 2, "fc_r", maximise=False)  # unpacked: prunes staged attempts
    res = store.resolve_many(locs)
    assert {n for n, r in res.items() if not isinstance(r, StoreError)} == set(kept)
    for n in kept:
        got = store.resolve(locs[n])
        assert not got["packed"] and got["seed"] == trial_data("S2", n)["seed"]


def test_best_trials_rank_by_a_combined_objective_and_keep_the_twin():
    from explorer.store import best_trials

    trials = {0: {"scores": {"fc_r": 0.6, "fcd_ks": 0.5}}, 1: {"scores": {"fc_r": 0.5, "fcd_ks": 0.1}},
              2: {"scores": {"fc_r": 0.4, "fcd_ks": 0.05}}, 3: {"scores": {"fc_r": 0.7, "fcd_ks": None}}}
    # fc_r - fcd_ks: 0.1, 0.4, 0.35, nan -> the two best are 1 and 2; the twin 3 is kept besides them
    assert best_trials(trials, 2, "fc_r - fcd_ks", True) == [1, 2]
    assert best_trials(trials, 2, "fc_r", True) == [0, 3]
    assert best_trials(trials, 2, "fc_r - fcd_ks", True, always=(3, 9)) == [1, 2, 3]
