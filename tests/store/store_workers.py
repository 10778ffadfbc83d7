"""Process entry points for the store tests (importable by spawned children)."""

from __future__ import annotations

import hashlib
import os
import signal

import numpy as np

N_REGIONS = 12
N_TIME = 40


def trial_data(subject: str, number: int) -> dict:
    """Deterministic arrays and record of one trial."""
    seed = 1000 * (ord(subject[-1]) % 7) + number
    rng = np.random.default_rng(seed)
    bold = rng.standard_normal((N_TIME, N_REGIONS)).astype(np.float32)
    fc = np.corrcoef(bold.T).astype(np.float32)
    return {"bold": bold, "fc": fc, "params": {"G": 0.1 * number, "J": 1.0 + number % 3}, "seed": seed,
            "scores": {"fc_r": float(rng.uniform()), "fcd_ks": float(rng.uniform())}}


def trial_record(subject: str, number: int, d: dict | None = None):
    """The COMPLETE TrialRecord of :func:`trial_data`'s trial."""
    from explorer.records import TrialRecord

    d = d or trial_data(subject, number)
    return TrialRecord(subject=subject, number=number, params=d["params"], seed=d["seed"], state="COMPLETE",
                       scores=d["scores"])


def write_trials(url: str, jobs: list[tuple[str, int]]) -> None:
    from explorer.store import SignalStore

    store = SignalStore(url)
    for subject, number in jobs:
        d = trial_data(subject, number)
        store.write_trial(trial_record(subject, number, d), d["bold"], d["fc"], tr_s=2.0)


def write_call(url: str, subject: str, numbers: list[int]) -> list[str]:
    """One ``write_trials`` call (one actor call) of :func:`trial_data`'s trials."""
    from explorer.store import SignalStore

    items = []
    for n in numbers:
        d = trial_data(subject, n)
        items.append((trial_record(subject, n, d), d["bold"], d["fc"]))
    return SignalStore(url).write_trials(items, tr_s=2.0)


def write_calls(url: str, calls: list[tuple[str, list[int]]]) -> None:
    for subject, numbers in calls:
        write_call(url, subject, numbers)


def write_call_then_die(url: str, subject: str, numbers: list[int]) -> None:
    """A ``write_trials`` call that writes every array, then SIGKILLs itself before the commit."""
    from explorer.store import SignalStore

    def die(self, group, marker):
        os.kill(os.getpid(), signal.SIGKILL)

    SignalStore._commit = SignalStore._commit_local = die
    write_call(url, subject, numbers)


def write_legacy_trial(url: str, subject: str, number: int) -> str:
    """:func:`trial_data`'s trial in the layout older versions wrote (and studies on disk hold): one group
    per attempt, ``staging/<number:06d>-<uuid>/{bold [time, region], fc}``, its marker the group's attrs.
    Returns the staging location those versions recorded."""
    import time
    import uuid

    import zarr
    from zarr.codecs import BloscCodec

    from explorer.store import SignalStore, trial_location
    from explorer.store.records import to_attrs

    store = SignalStore(url)
    d = trial_data(subject, number)
    record = to_attrs(trial_record(subject, number, d))
    attempt_id = uuid.uuid4().hex[:16]
    path = f"subjects/{subject}/staging/{number:06d}-{attempt_id}"
    marker = {"explorer_trial": 1, "committed": False, "subject": subject, "number": number,
              "attempt_id": attempt_id, "attempt": record["attempt"], "started": time.time()}
    group = zarr.create_group(store._store, path=path, attributes=marker)
    arrays = {"bold": d["bold"], "fc": d["fc"]}
    for name, data in arrays.items():
        zarr.create_array(store._store, name=f"{path}/{name}", data=data, chunks=data.shape,
                          compressors=BloscCodec(cname="zstd", clevel=3, shuffle="shuffle"),
                          fill_value=np.nan, overwrite=True)
    marker.update({**record, "committed": True, "committed_at": time.time(), "tr_s": 2.0, "neural_dt_ms": None,
                   "shapes": {k: list(v.shape) for k, v in arrays.items()},
                   "location": trial_location(store.url, subject, number), "simulation": None, "git_revision": None})
    group.update_attributes(marker)
    return f"{store.url}/{path}"


def write_then_die(url: str, subject: str, number: int) -> None:
    """Write a trial's arrays, then SIGKILL itself before the commit marker."""
    from explorer.store import SignalStore

    def die(self, group, marker):
        os.kill(os.getpid(), signal.SIGKILL)

    SignalStore._commit = SignalStore._commit_local = die
    write_trials(url, [(subject, number)])


def checksum(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a, dtype=np.float32).tobytes()).hexdigest()


def dataset_checksums(url: str) -> dict[tuple[str, int], tuple[str, str, float]]:
    """(subject, number) -> checksums of bold and fc, and fc_r, of every trial as open_signals shows it."""
    from explorer.store import open_signals

    ds = open_signals(url).load()
    out = {}
    for sid in ds.subject.values:
        sub = ds.sel(subject=sid)
        for j in range(ds.sizes["trial"]):
            n = int(sub.trial_number[j])
            if n >= 0:
                out[(str(sid), n)] = (checksum(sub.bold[j].values), checksum(sub.fc[j].values), float(sub.fc_r[j]))
    return out
