"""Process entry points for the store tests (importable by spawned children)."""

from __future__ import annotations

import hashlib
import os
import signal

import numpy as np

from explorer.records import TrialRecord
from explorer.store import FileWriter, SignalStore, ZarrWriter, open_signals, trial_location, writer_for
from explorer.store.records import to_attrs

N_REGIONS = 12
N_TIME = 40
#: the write back-ends the store tests run over, by name (a name travels to spawned children)
WRITERS = {"files": FileWriter, "zarr": ZarrWriter}


def open_writing(url: str, writer: str | None = None) -> SignalStore:
    """The store at ``url`` writing with ``WRITERS[writer]`` (None: the store's own choice)."""
    return SignalStore(url, writer=None if writer is None else WRITERS[writer])


class DiesBeforeCommit:
    """A TrialWriter that stages with ``inner``, then SIGKILLs its own process instead of committing."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def stage(self, path, marker, arrays):
        return self.inner.stage(path, marker, arrays)

    def commit(self, staged, attrs) -> None:
        os.kill(os.getpid(), signal.SIGKILL)


def _dying(url: str, writer: str | None) -> SignalStore:
    base = writer_for(url) if writer is None else WRITERS[writer]
    return SignalStore(url, writer=lambda zstore: DiesBeforeCommit(base(zstore)))


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
    d = d or trial_data(subject, number)
    return TrialRecord(subject=subject, number=number, params=d["params"], seed=d["seed"], state="COMPLETE",
                       scores=d["scores"])


def write_trials(url: str, jobs: list[tuple[str, int]], writer: str | None = None, store=None) -> None:
    """:func:`trial_data`'s trials, one ``write_trial`` each (``store``: a store to write with instead)."""
    store = store or open_writing(url, writer)
    for subject, number in jobs:
        d = trial_data(subject, number)
        store.write_trial(trial_record(subject, number, d), d["bold"], d["fc"], tr_s=2.0)


def write_call(url: str, subject: str, numbers: list[int], writer: str | None = None,
               store=None) -> list[str]:
    """One ``write_trials`` call (one actor call) of :func:`trial_data`'s trials."""
    items = []
    for n in numbers:
        d = trial_data(subject, n)
        items.append((trial_record(subject, n, d), d["bold"], d["fc"]))
    return (store or open_writing(url, writer)).write_trials(items, tr_s=2.0)


def write_calls(url: str, calls: list[tuple[str, list[int]]], writer: str | None = None) -> None:
    for subject, numbers in calls:
        write_call(url, subject, numbers, writer)


def write_call_then_die(url: str, subject: str, numbers: list[int], writer: str | None = None) -> None:
    """A ``write_trials`` call that writes every array, then SIGKILLs itself before the commit."""
    write_call(url, subject, numbers, store=_dying(url, writer))


def write_legacy_trial(url: str, subject: str, number: int) -> str:
    """:func:`trial_data`'s trial in the layout older versions wrote (and studies on disk hold): one group
    per attempt, ``staging/<number:06d>-<uuid>/{bold [time, region], fc}``, its marker the group's attrs.
    Returns the staging location those versions recorded."""
    import time
    import uuid

    import zarr
    from zarr.codecs import BloscCodec

    store = SignalStore(url)
    d = trial_data(subject, number)
    record = to_attrs(trial_record(subject, number, d))
    attempt_id = uuid.uuid4().hex[:16]
    path = f"subjects/{subject}/staging/{number:06d}-{attempt_id}"
    marker = {"explorer_trial": 1, "committed": False, "subject": subject, "number": number,
              "attempt_id": attempt_id, "attempt": record["attempt"], "started": time.time()}
    group = zarr.create_group(store.zstore, path=path, attributes=marker)
    arrays = {"bold": d["bold"], "fc": d["fc"]}
    for name, data in arrays.items():
        zarr.create_array(store.zstore, name=f"{path}/{name}", data=data, chunks=data.shape,
                          compressors=BloscCodec(cname="zstd", clevel=3, shuffle="shuffle"),
                          fill_value=np.nan, overwrite=True)
    marker.update({**record, "committed": True, "committed_at": time.time(), "tr_s": 2.0, "neural_dt_ms": None,
                   "shapes": {k: list(v.shape) for k, v in arrays.items()},
                   "location": trial_location(store.url, subject, number), "simulation": None, "git_revision": None})
    group.update_attributes(marker)
    return f"{store.url}/{path}"


def write_then_die(url: str, subject: str, number: int, writer: str | None = None) -> None:
    """Write a trial's arrays, then SIGKILL itself before the commit marker."""
    write_trials(url, [(subject, number)], store=_dying(url, writer))


def checksum(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a, dtype=np.float32).tobytes()).hexdigest()


def dataset_checksums(url: str) -> dict[tuple[str, int], tuple[str, str, float]]:
    """(subject, number) -> checksums of bold and fc, and fc_r, of every trial as open_signals shows it."""
    ds = open_signals(url).load()
    out = {}
    for sid in ds.subject.values:
        sub = ds.sel(subject=sid)
        for j in range(ds.sizes["trial"]):
            n = int(sub.trial_number[j])
            if n >= 0:
                out[(str(sid), n)] = (checksum(sub.bold[j].values), checksum(sub.fc[j].values), float(sub.fc_r[j]))
    return out
