"""What one ``write_trials`` call stages: its items checked, grouped (one group per subject and array
shapes), and each group's path, marker, stacked arrays and commit attrs; written by a
:class:`~explorer.store.writers.TrialWriter`, marker and arrays first, the commit last."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from explorer.errors import StoreError
from explorer.records import TrialRecord
from explorer.store.records import to_attrs
from explorer.store.schema import FORMAT_VERSION, staging_path
from explorer.store.urls import check_id
from explorer.store.writers import TrialWriter


class TrialSignals(NamedTuple):
    """One trial for :meth:`~explorer.store.SignalStore.write_trials`: its COMPLETE record, BOLD
    (time, region), FC (region, region) and optionally its neural signal (time, region)."""

    record: TrialRecord
    bold: np.ndarray
    fc: np.ndarray
    neural: np.ndarray | None = None


class Prepared(NamedTuple):
    """A checked item: subject, trial number, stored record (attrs) and float32 arrays."""

    sid: str
    number: int
    record: dict[str, Any]
    arrays: dict[str, np.ndarray]


class Group(NamedTuple):
    """One staging group to write: ``path``, ``marker`` (uncommitted attrs), stacked ``arrays``
    (trial, ...) and ``commit`` (the attrs that make it visible, but for ``committed_at``)."""

    path: str
    marker: dict[str, Any]
    arrays: dict[str, np.ndarray]
    commit: dict[str, Any]


def prepare(item: TrialSignals | Sequence[Any]) -> Prepared:
    """Check one item of ``write_trials``: its subject, number, record and array shapes."""
    if not isinstance(item, TrialSignals):
        item = TrialSignals(*item)
    rec = item.record
    sid = check_id("subject id", rec.subject)
    number = int(rec.number)
    if number < 0:
        raise StoreError(f"subject {sid}: trial number must be >= 0, got {number}")
    record = to_attrs(rec)
    arrays = {"bold": np.asarray(item.bold, dtype=np.float32), "fc": np.asarray(item.fc, dtype=np.float32)}
    if item.neural is not None:
        arrays["neural"] = np.asarray(item.neural, dtype=np.float32)
    b, f = arrays["bold"], arrays["fc"]
    if b.ndim != 2 or f.shape != (b.shape[1], b.shape[1]):
        raise StoreError(f"subject {sid} trial {number}: expected bold (time, region) and fc (region, region), "
                         f"got {b.shape} and {f.shape}")
    if "neural" in arrays and arrays["neural"].ndim != 2:
        raise StoreError(f"subject {sid} trial {number}: expected neural (time, region), "
                         f"got {arrays['neural'].shape}")
    return Prepared(sid, number, record, arrays)


def plan(prepared: Iterable[Prepared], shared: Mapping[str, Any]) -> list[Group]:
    """The groups of one call: one per (subject, array shapes), trials in number order, each under a
    fresh attempt uuid. ``shared``: the call's attrs (tr_s, neural_dt_ms, simulation, git_revision).
    Raises :class:`StoreError` (before anything is written) for a trial given twice."""
    by_key: dict[tuple, list[Prepared]] = {}
    for p in prepared:
        by_key.setdefault((p.sid, tuple((k, v.shape) for k, v in p.arrays.items())), []).append(p)
    for (sid, _), ps in by_key.items():
        numbers = [p.number for p in ps]
        if len(set(numbers)) != len(numbers):
            dup = sorted({n for n in numbers if numbers.count(n) > 1})
            raise StoreError(f"subject {sid}: trial(s) {dup} given more than once in one write_trials call")
    return [_group(sid, sorted(ps, key=lambda p: p.number), shared) for (sid, _), ps in by_key.items()]


def _group(sid: str, ps: list[Prepared], shared: Mapping[str, Any]) -> Group:
    attempt_id = uuid.uuid4().hex[:16]
    numbers = [p.number for p in ps]
    marker = {"explorer_trials": FORMAT_VERSION, "committed": False, "subject": sid, "numbers": numbers,
              "attempt_id": attempt_id, "started": time.time()}
    commit = {**marker, **shared, "committed": True, "shapes": {k: list(v.shape) for k, v in ps[0].arrays.items()},
              "trials": [p.record for p in ps], "deleted": []}
    return Group(staging_path(sid, f"{numbers[0]:06d}-{attempt_id}"), marker,
                 {var: np.stack([p.arrays[var] for p in ps]) for var in ps[0].arrays}, commit)


def write(writer: TrialWriter, group: Group) -> None:
    """Stage ``group`` with ``writer``, then commit it (``committed_at``: now, s since the epoch)."""
    staged = writer.stage(group.path, group.marker, group.arrays)
    writer.commit(staged, {**group.commit, "committed_at": time.time()})
