"""A subject's trials as stored: its committed staging groups and its packed copy, read into one
index (number -> marker), and the reads of one trial's record and arrays through it.

A marker is a trial's stored attrs (:func:`explorer.store.records.to_attrs` plus the group's
``tr_s``, ``shapes``, ``simulation``...) with ``_source``: where its arrays are, ("packed", index),
("batch", (staging group name, index)) for a ``write_trials`` group, or ("staged", group name) for a
one-trial group of older versions. Packed trials win over a leftover staged copy; among staged
copies, the most recently committed undeleted one.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np

from explorer.store import nodes
from explorer.store.locations import Location, trial_location, unresolved
from explorer.store.records import from_attrs
from explorer.store.schema import FORMAT_VERSION, VARIABLES, packed_path, staging_path


def attempt_trials(attrs: Mapping[str, Any]) -> dict[int, dict]:
    """The committed, undeleted trials of one staging group's attrs (``_name``: the group's name):
    number -> marker with ``_source`` ("staged", name) for a one-trial group of older versions,
    ("batch", (name, index)) for a ``write_trials`` group. Empty while uncommitted."""
    name = attrs["_name"]
    if not attrs.get("committed"):
        return {}
    if attrs.get("explorer_trial"):  # one trial per group (older versions): the attrs are its marker
        return {int(attrs["number"]): {**attrs, "_source": ("staged", name)}}
    if not attrs.get("explorer_trials"):
        return {}
    deleted = {int(n) for n in attrs.get("deleted") or ()}
    common = {k: attrs.get(k) for k in ("attempt_id", "started", "committed_at", "tr_s", "neural_dt_ms", "shapes",
                                        "simulation", "git_revision")}
    out = {}
    for i, rec in enumerate(attrs.get("trials") or ()):
        n = int(rec["number"])
        if n not in deleted:
            out[n] = {"explorer_trial": FORMAT_VERSION, "committed": True, **common, **rec,
                      "_source": ("batch", (name, i))}
    return out


def staged(zstore, sid: str) -> tuple[dict[int, dict], list[dict]]:
    """(latest committed, undeleted copy per trial number, every attempt group's attrs incl. uncommitted,
    each with ``_name``)."""
    g = nodes.open_group(zstore, staging_path(sid))
    if g is None:
        return {}, []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        members = list(g.groups())
    attempts, committed = [], {}
    for name, sub in members:
        attrs = dict(sub.attrs.asdict())
        attrs["_name"] = name
        attempts.append(attrs)
        for n, m in attempt_trials(attrs).items():
            if n not in committed or m["committed_at"] > committed[n]["committed_at"]:
                committed[n] = m
    return committed, attempts


def packed(zstore, sid: str) -> tuple[str | None, list[dict]]:
    """(the packed copy's uuid or None, its markers in number order)."""
    g = nodes.open_group(zstore, packed_path(sid))
    if g is None:
        return None, []
    attrs = g.attrs.asdict()
    return attrs.get("current"), list(attrs.get("trials", []))


def subject_index(zstore, url: str, sid: str) -> dict[str, Any]:
    """A subject's trials as stored now: ``entries`` (number -> marker with ``_source`` and its stable
    ``location`` in the store at ``url``), ``attempts`` (staging group name -> attrs, committed or not),
    ``current`` (packed uuid or None) and ``packed`` (packed markers)."""
    current, packed_markers = packed(zstore, sid)
    committed, attempts = staged(zstore, sid)
    out: dict[int, dict] = {}
    out.update(committed)
    for i, m in enumerate(packed_markers):  # packed wins over a leftover staged copy of the same trial
        out[int(m["number"])] = {**m, "_source": ("packed", i), "_current": current}
    for n, m in out.items():
        m["location"] = trial_location(url, sid, n)
    return {"entries": dict(sorted(out.items())), "attempts": {a["_name"]: a for a in attempts},
            "current": current, "packed": packed_markers}


def record(m: Mapping[str, Any]) -> dict[str, Any]:
    """What the store tells of a trial (its marker ``m``): params, seed, scores, location, tr_s, packed,
    attempt, simulation, git_revision and its :class:`~explorer.records.TrialRecord` as ``record``."""
    rec = from_attrs(m)
    return {"params": rec.params, "seed": rec.seed, "scores": rec.scores, "location": m.get("location", ""),
            "tr_s": m.get("tr_s"), "packed": m["_source"][0] == "packed", "attempt": rec.attempt,
            "simulation": m.get("simulation"), "git_revision": m.get("git_revision"), "record": rec}


def read_entry(zstore, sid: str, m: Mapping[str, Any], var: str, stacks: OrderedDict | None = None) -> np.ndarray:
    """One trial's ``var``; ``stacks``: a cache of whole write_trials arrays (a few), for reading many."""
    kind, where = m["_source"]
    if kind == "packed":
        return nodes.read_array(zstore, f"{packed_path(sid, m['_current'])}/{var}", where)
    if kind == "batch":
        name, i = where
        path = f"{staging_path(sid, name)}/{var}"
        if stacks is None:
            return nodes.read_array(zstore, path, i)
        if path not in stacks:
            stacks[path] = nodes.read_array(zstore, path)
            while len(stacks) > 8:
                stacks.popitem(last=False)
        return stacks[path][i]
    return nodes.read_array(zstore, f"{staging_path(sid, where)}/{var}")


def read(zstore, sid: str, m: Mapping[str, Any], data: bool) -> dict[str, Any]:
    """:func:`record` of a trial plus, with ``data``, its numpy ``bold``, ``fc`` (and ``neural`` if stored)."""
    out = record(m)
    if data:
        for var in VARIABLES:
            if var in m.get("shapes", {}):
                out[var] = read_entry(zstore, sid, m, var)
    return out


def locate(index: Mapping[str, Any], loc: Location, location: str, url: str) -> tuple[dict, str, int]:
    """(marker, how, trial number) of parsed location ``loc`` (``location`` as recorded) in a subject's
    ``index`` (:func:`subject_index` of the store at ``url``); how: "location", or "trial number" for
    an old staging location whose group is gone (packed since). Raises :func:`unresolved` errors."""
    number, m, how = loc.number, None, "location"
    if loc.kind == "staging":
        a = index["attempts"].get(loc.extra)
        own = attempt_trials(a).get(number) if a is not None else None
        if own is not None:  # the named group still holds the trial
            m = {**own, "location": trial_location(url, loc.sid, number)}
        elif number in index["entries"]:
            m, how = index["entries"][number], "trial number"
    elif loc.kind == "packed":
        cur, i = loc.extra
        if cur != index["current"] or i >= len(index["packed"]):
            raise unresolved(location, f"subject {loc.sid} was repacked since (its packed copy {cur} is gone), "
                             "and an old packed position names no trial number")
        number = int(index["packed"][i]["number"])
        m = index["entries"].get(number)
    else:
        m = index["entries"].get(number)
    if m is None:
        raise unresolved(location, f"subject {loc.sid} has no trial {number} (staged or packed) in {url}")
    return m, how, number
