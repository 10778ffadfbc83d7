"""Packing and garbage collection of a subject's trials (the single driver only).

:func:`pack` consolidates the committed trials into one sharded, compressed array per variable and
removes what it absorbed and stale uncommitted attempts; :func:`delete_trial` and :func:`keep_best`
(store: best) prune. Deleting a trial of a write_trials group adds its number to the group's
``deleted`` (one put of the group's metadata) and removes the group once every trial of it is
deleted; the bytes go at the next :func:`pack`. Deleting a trial of an uncommitted group removes
that group (an interrupted call: none of its trials is visible).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from explorer.errors import StoreError
from explorer.scoring.ranking import objective_of, rank
from explorer.store import index as store_index
from explorer.store import nodes
from explorer.store.schema import SHARD_TRIALS, VARIABLES, packed_path, region_chunk, staging_path

log = logging.getLogger(__name__)


def pack(zstore, sid: str, index: Mapping[str, Any], keep: Iterable[int] | None = None,
         stale_after_s: float | None = 0.0, shard_trials: int = SHARD_TRIALS) -> dict[str, int]:
    """Pack subject ``sid``'s trials of ``index`` (:func:`explorer.store.index.subject_index`, read by
    the caller: attempts committed after it stay staged) into a new packed copy, switch the ``packed``
    pointer in one put, then delete the old copy and the committed staging groups of ``index``.

    ``keep`` restricts which trial numbers survive (store: best). Uncommitted attempts started more
    than ``stale_after_s`` s ago are garbage-collected (None: keep them). Returns counts
    {"packed", "removed_staged", "removed_stale"}.
    """
    import zarr

    entries, old_current = index["entries"], index["current"]
    if keep is not None:
        keep_set = {int(k) for k in keep}
        entries = {n: m for n, m in entries.items() if n in keep_set}
    markers = list(entries.values())
    new_current = uuid.uuid4().hex[:16] if markers else None
    base = packed_path(sid, new_current)
    for var in VARIABLES:
        shapes = {tuple(m["shapes"][var]) for m in markers if var in m.get("shapes", {})}
        if not shapes:
            continue
        if len(shapes) > 1 or any(var not in m.get("shapes", {}) for m in markers):
            raise StoreError(f"subject {sid}: trials disagree on the shape of {var!r} ({sorted(shapes)}); "
                             "cannot pack them into one array. Delete the odd trials or keep them staged.")
        (shape,) = shapes
        n = len(markers)
        shard = min(shard_trials, n)
        chunks = (1, shape[0], region_chunk(shape[1])) if var != "fc" else (1, shape[0], shape[1])
        arr = zarr.create_array(zstore, name=f"{base}/{var}", shape=(n, *shape), dtype="float32",
                                chunks=chunks, shards=(shard, *shape), compressors=nodes.codecs(),
                                fill_value=np.nan, overwrite=True,
                                dimension_names=("trial", "time", "region") if var != "fc"
                                else ("trial", "region", "region_to"))
        stacks: OrderedDict[str, np.ndarray] = OrderedDict()  # a few write_trials groups, read whole
        for i0 in range(0, n, shard):  # one whole shard per write: each shard written once
            block = np.stack([store_index.read_entry(zstore, sid, m, var, stacks) for m in markers[i0:i0 + shard]])
            arr[i0:i0 + len(block)] = block
    clean = [{k: v for k, v in m.items() if not k.startswith("_") and k != "location"} for m in markers]
    pg = zarr.open_group(zstore, path=packed_path(sid), mode="a")
    pg.update_attributes({"current": new_current, "trials": clean, "packed_at": time.time()})
    # the pointer has moved: remove what it no longer refers to
    if old_current and old_current != new_current:
        nodes.delete(zstore, packed_path(sid, old_current))
    now = time.time()
    removed = stale = 0
    for a in index["attempts"].values():
        if a.get("committed"):
            nodes.delete(zstore, staging_path(sid, a["_name"]))
            removed += 1
        elif stale_after_s is not None and now - float(a.get("started", 0.0)) >= stale_after_s:
            nodes.delete(zstore, staging_path(sid, a["_name"]))
            stale += 1
    if nodes.open_group(zstore, staging_path(sid)) is not None and not store_index.staged(zstore, sid)[1]:
        nodes.delete(zstore, staging_path(sid))
    log.info("packed subject %s: %d trials, removed %d staged and %d stale attempts",
             sid, len(markers), removed, stale)
    return {"packed": len(markers), "removed_staged": removed, "removed_stale": stale}


def forget(zstore, sid: str, attrs: Mapping[str, Any], numbers: set[int]) -> None:
    """Delete ``numbers`` from a committed write_trials group (``attrs``, with ``_name``): add them to its
    ``deleted`` list (one put of its metadata), or remove the group when none of its trials is left."""
    import zarr

    path = staging_path(sid, attrs["_name"])
    deleted = {int(n) for n in attrs.get("deleted") or ()} | {int(n) for n in numbers}
    if deleted >= {int(n) for n in attrs.get("numbers", ())}:
        nodes.delete(zstore, path)
    elif deleted != set(attrs.get("deleted") or ()):
        zarr.open_group(zstore, path=path, mode="r+").update_attributes({"deleted": sorted(deleted)})


def delete_trial(zstore, url: str, sid: str, number: int) -> None:
    """Remove trial ``number`` of subject ``sid`` from the store at ``url`` (every attempt; repacks if
    it was packed)."""
    index = store_index.subject_index(zstore, url, sid)
    if any(int(m["number"]) == number for m in index["packed"]):
        pack(zstore, sid, index, keep=[n for n in index["entries"] if n != number], stale_after_s=None)
    for a in store_index.staged(zstore, sid)[1]:
        if a.get("explorer_trials"):
            if number not in a.get("numbers", ()):
                continue
            if a.get("committed"):
                forget(zstore, sid, a, {number})
            else:  # an interrupted write_trials call: none of its trials is visible
                nodes.delete(zstore, staging_path(sid, a["_name"]))
        elif int(a.get("number", -1)) == number:
            nodes.delete(zstore, staging_path(sid, a["_name"]))


def keep_best(zstore, url: str, sid: str, k: int, objective: str, maximise: bool, always: Sequence[int] = (),
              *, pack_now: bool = False) -> list[int]:
    """Keep only the ``k`` best committed trials of subject ``sid`` by ``objective`` (:func:`best_trials`),
    and ``always`` (the twin); return their numbers.

    With ``pack_now`` (a finished subject) the kept trials are packed at once, which removes every
    staging group it absorbs: one pass, instead of marking the others deleted group by group and
    packing after. A packed subject is repacked.
    """
    index = store_index.subject_index(zstore, url, sid)   # read once: ranked, then pruned or packed
    keep = best_trials({n: store_index.record(m) for n, m in index["entries"].items()}, k, objective, maximise,
                       always)
    if pack_now or index["packed"]:
        pack(zstore, sid, index, keep, 0.0 if pack_now else None, SHARD_TRIALS)
    else:
        keep_set = set(keep)
        for a in index["attempts"].values():
            if not a.get("committed"):
                continue
            if a.get("explorer_trials"):
                forget(zstore, sid, a, {int(n) for n in a.get("numbers", ())} - keep_set)
            elif int(a["number"]) not in keep_set:
                nodes.delete(zstore, staging_path(sid, a["_name"]))
    return keep


def best_trials(trials: Mapping[int, Mapping[str, Any]], k: int, objective: str, maximise: bool,
                always: Sequence[int] = ()) -> list[int]:
    """Numbers of the ``k`` best trials by ``objective`` (a score or a combination of scores; non-finite
    last), plus those of ``always`` that are in ``trials`` (a multi-objective twin), sorted by number."""
    values = {n: objective_of(trials[n].get("scores") or {}, objective) for n in trials}
    best = rank(values, maximise, k)
    return sorted(set(best) | {int(n) for n in always if n in trials})
