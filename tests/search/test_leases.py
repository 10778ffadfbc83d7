"""Per-subject leases in the Optuna storage: exclusive, released, taken over when stale or dead, raced."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time

import pytest

from explorer.runner.commands import parse_shard
from explorer.search import open_storage
from explorer.search.leases import Holder, SubjectLeases, is_bookkeeping, lease_name, liveness, shard_of


@pytest.fixture(params=["journal", "sqlite"])
def storage_url(request, tmp_path):
    return {"journal": str(tmp_path / "optuna.log"), "sqlite": f"sqlite:///{tmp_path / 'optuna.db'}"}[request.param]


def _names(storage):
    return sorted(s.study_name for s in storage.get_all_studies())


def test_a_held_subject_is_refused_with_its_holder_then_free_once_released(storage_url):
    a = SubjectLeases(open_storage(storage_url), "st")
    b = SubjectLeases(open_storage(storage_url), "st")
    assert a.acquire(["S1", "S2"]) == {}
    refused = b.acquire(["S1", "S2", "S3"])
    assert sorted(refused) == ["S1", "S2"] and sorted(b.held) == ["S3"]
    assert refused["S1"].pid == os.getpid() and refused["S1"].owner == a.owner
    assert f"pid {os.getpid()} on " in refused["S1"].describe()
    a.release(["S1"])
    assert b.acquire(["S1", "S2"]) == {"S2": b.scan()["S2"]} and sorted(b.held) == ["S1", "S3"]
    assert b.takeovers == []          # a released lease is taken without a takeover
    assert [n for n in _names(open_storage(storage_url)) if n.startswith("explorer.lease:")] == [
        lease_name("st", s, 0) for s in ("S1", "S2", "S3")]
    a.close()
    b.close()
    # at rest, a study holds no lease and no driver record: nothing for optuna-dashboard to list
    assert _names(open_storage(storage_url)) == []
    assert is_bookkeeping(lease_name("st", "S1", 0)) and not is_bookkeeping("st/S1")


def test_a_stale_lease_is_taken_over_logged_and_the_old_driver_learns_it(storage_url, caplog):
    clock = [1000.0]
    a = SubjectLeases(open_storage(storage_url), "st", heartbeat_s=1, stale_s=5, clock=lambda: clock[0])
    a.host = "elsewhere"              # a driver on another host: only its heartbeat tells it is alive
    a.acquire(["S1", "S2"])
    b = SubjectLeases(open_storage(storage_url), "st", heartbeat_s=1, stale_s=5, clock=lambda: clock[0])
    clock[0] += 4.0                   # within stale_s: still held
    assert sorted(b.acquire(["S1"])) == ["S1"]
    a.beat()                          # a beats at t=1004 ...
    clock[0] += 4.0
    assert sorted(b.acquire(["S1"])) == ["S1"]      # ... so at t=1008 it is live again
    clock[0] += 6.0                   # no beat for 10 s > stale_s
    with caplog.at_level("WARNING", logger="explorer.search.leases"):
        assert b.acquire(["S1"]) == {}
    assert "S1" in b.held and len(b.takeovers) == 1
    assert "took over the lease of driver pid" in b.takeovers[0] and "no heartbeat for 10 s" in b.takeovers[0]
    assert "took over" in caplog.text
    assert a.beat() == {"S1"} and a.lost == {"S1"} and sorted(a.held) == ["S2"]
    assert a.beat() == set()          # told once
    assert f"explorer.driver:st/{a.owner}" in _names(b.storage)   # a still holds S2: its record stays
    clock[0] += 10.0
    assert b.acquire(["S2"]) == {} and sorted(b.held) == ["S1", "S2"]
    # b took over every lease of a: a's record is gone, and a learns at its next beat that it lost S2 too
    assert f"explorer.driver:st/{a.owner}" not in _names(b.storage)
    assert a.beat() == {"S2"} and a.held == {}
    a.close()
    b.close()
    assert _names(open_storage(storage_url)) == []


_HOLD = """
import sys, time
from explorer.search import open_storage
from explorer.search.leases import SubjectLeases
leases = SubjectLeases(open_storage(sys.argv[1]), "st")
leases.acquire(["S1"])
print("held", flush=True)
time.sleep(600)
"""


def test_the_lease_of_a_killed_driver_on_this_host_is_taken_over_at_once(storage_url):
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, storage_url], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        b = SubjectLeases(open_storage(storage_url), "st", stale_s=3600)
        refused = b.acquire(["S1"])
        assert refused["S1"].pid == proc.pid               # alive: held, whatever its heartbeat
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert b.acquire(["S1"]) == {}                         # gone: no need to wait stale_s
    assert f"its process (pid {proc.pid}) is gone" in b.takeovers[0]
    b.close()


_PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2]], stdout=subprocess.PIPE, text=True)
print(child.pid, child.stdout.readline().strip(), flush=True)
time.sleep(600)                       # never waits for the child: once killed, it stays a zombie
"""


def test_a_killed_driver_that_its_parent_has_not_reaped_counts_as_gone_and_its_record_goes(storage_url):
    import psutil

    parent = subprocess.Popen([sys.executable, "-c", _PARENT, _HOLD, storage_url], stdout=subprocess.PIPE,
                              text=True)
    try:
        pid, word = parent.stdout.readline().split()
        assert word == "held"
        pid = int(pid)
        b = SubjectLeases(open_storage(storage_url), "st", stale_s=3600)
        old = b.scan()["S1"]
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline, "the killed child never became a zombie"
            time.sleep(0.05)
        assert b.acquire(["S1"]) == {}                     # a zombie: gone at once, not after stale_s
        assert psutil.Process(pid).status() == psutil.STATUS_ZOMBIE    # still unreaped meanwhile
        assert f"its process (pid {pid}) is gone" in b.takeovers[0]
        # every lease of the dead driver was taken over: its record is gone, only b's own remains
        assert [n for n in _names(b.storage) if n.startswith("explorer.driver:")] == [f"explorer.driver:st/{b.owner}"]
        assert old.owner != b.owner
        b.close()
        assert _names(open_storage(storage_url)) == []     # a study at rest: no bookkeeping left
    finally:
        parent.kill()
        parent.wait()


def _race(url: str, start, out) -> None:
    leases = SubjectLeases(open_storage(url), "st")
    start.wait()
    leases.acquire([f"S{i}" for i in range(6)])
    out.put((os.getpid(), sorted(leases.held)))
    time.sleep(1.0)                   # hold until every racer has tried


def test_racing_drivers_each_subject_goes_to_exactly_one(storage_url):
    open_storage(storage_url)         # create the storage before the race
    ctx = mp.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(storage_url, start, out)) for _ in range(3)]
    for p in procs:
        p.start()
    start.set()
    got = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
    held = [s for _, subjects in got for s in subjects]
    assert sorted(held) == [f"S{i}" for i in range(6)], got    # none twice, none missing


def test_liveness_rules():
    now = 1000.0
    base = dict(subject="S", generation=0, owner="o", host="h2", pid=1, pstart=0.0, since=900.0)
    assert liveness(Holder(**base, heartbeat=990.0), 60, now, "h1") == (True, "")
    assert liveness(Holder(**base, heartbeat=900.0), 60, now, "h1")[0] is False
    assert liveness(Holder(**base, heartbeat=None), 60, now, "h1")[0] is False
    assert liveness(Holder("S", 0), 60, now, "h1") == (True, "")    # owner attributes not written yet


def test_shards_partition_the_subjects_and_bad_shards_are_refused():
    ids = [f"S{i}" for i in range(7)]
    parts = [shard_of(reversed(ids), (i, 3)) for i in range(3)]
    assert sorted(s for p in parts for s in p) == ids and all(len(p) in (2, 3) for p in parts)
    assert shard_of(ids, None) == ids
    assert parse_shard("1/4") == (1, 4)
    import argparse
    for bad in ("4/4", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(argparse.ArgumentTypeError, match="--shard"):
            parse_shard(bad)
