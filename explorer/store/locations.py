"""Trial locations: what ``write_trials`` returns and Optuna/MLflow record as a trial's ``signals``.

Three forms are read:

- ``<url>#subject=<subject>&trial=<number>``: the stable location (what this version writes). It
  names the trial, not the group that holds it now, so it stays valid when the trial is packed;
- ``<url>/subjects/<subject>/staging/<number:06d>-<uuid>``: a staging group, recorded by older
  versions; it resolves to that group while it holds the trial, else by (subject, number);
- ``<url>/subjects/<subject>/packed/<uuid>[<index>]``: a packed position as older ``trials()`` showed it.

Resolving one against a store's contents: :func:`explorer.store.index.locate`,
:meth:`explorer.store.SignalStore.resolve`.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from explorer.errors import StoreError
from explorer.store.urls import check_id, is_remote, local_path

_ID = r"[A-Za-z0-9_.\-]+"
#: ``<url>#subject=<sid>&trial=<number>``: what ``write_trial`` returns (the stable location)
_LOC_TRIAL = re.compile(rf"^(?P<url>.+)#subject=(?P<sid>{_ID})&trial=(?P<num>\d+)$")
#: ``<url>/subjects/<sid>/staging/<number:06d>-<uuid>``: returned by older versions (one write attempt)
_LOC_STAGING = re.compile(rf"^(?P<url>.+)/subjects/(?P<sid>{_ID})/staging/(?P<name>(?P<num>\d+)-[0-9A-Za-z]+)/?$")
#: ``<url>/subjects/<sid>/packed/<uuid>[<index>]``: a packed trial as older ``trials()`` showed it
_LOC_PACKED = re.compile(rf"^(?P<url>.+)/subjects/(?P<sid>{_ID})/packed/(?P<cur>[0-9A-Za-z]+)\[(?P<idx>\d+)\]$")


class Location(NamedTuple):
    """A parsed location: its store ``url``, subject ``sid``, trial ``number`` (-1 for "packed") and
    ``kind``: "trial", "staging" (``extra``: the group's name) or "packed" (``extra``: (packed uuid, index))."""

    url: str
    sid: str
    number: int
    kind: str
    extra: Any = None


def trial_location(url: str, subject_id: str, number: int) -> str:
    """The stable location of a trial's signals: ``<store url>#subject=<subject>&trial=<number>``."""
    number = int(number)
    if number < 0:
        raise StoreError(f"trial number must be >= 0, got {number}")
    return f"{str(url).rstrip('/') or str(url)}#subject={check_id('subject id', subject_id)}&trial={number}"


def parse_any(location: str) -> Location:
    """Any of the three forms, parsed; :class:`StoreError` for anything else."""
    s = str(location).strip()
    m = _LOC_TRIAL.match(s)
    if m and m["sid"] not in (".", ".."):
        return Location(m["url"], m["sid"], int(m["num"]), "trial")
    m = _LOC_STAGING.match(s)
    if m and m["sid"] not in (".", ".."):
        return Location(m["url"], m["sid"], int(m["num"]), "staging", m["name"])
    m = _LOC_PACKED.match(s)
    if m and m["sid"] not in (".", ".."):
        return Location(m["url"], m["sid"], -1, "packed", (m["cur"], int(m["idx"])))
    raise StoreError(f"{location!r} is not a signals location: expected '<store url>#subject=<id>&trial=<number>' "
                     "(what write_trial returns and trials record as `signals`), or an older "
                     "'<store url>/subjects/<id>/staging/<number>-<uuid>'")


def parse_location(location: str) -> tuple[str, str, int]:
    """``(store url, subject, trial number)`` of a recorded signals location.

    Accepts the stable form ``<url>#subject=<id>&trial=<n>`` and the staging paths recorded by
    older versions (``<url>/subjects/<id>/staging/<n:06d>-<uuid>``). Raises :class:`StoreError`
    for anything else, and for an old packed location (``.../packed/<uuid>[i]``), whose trial number
    only the store knows (use :meth:`~explorer.store.SignalStore.resolve`).
    """
    loc = parse_any(location)
    if loc.kind == "packed":
        raise StoreError(f"{location!r} names a packed position, not a trial: resolve it with "
                         "SignalStore(url).resolve(location) to learn its trial number")
    return loc.url, loc.sid, loc.number


def same_store(a: str, b: str) -> bool:
    """Whether two store URLs name one store (local paths compared once resolved)."""
    a, b = str(a).rstrip("/"), str(b).rstrip("/")
    if a == b:
        return True
    if is_remote(a) or is_remote(b):
        return False
    try:
        return local_path(a).resolve() == local_path(b).resolve()
    except OSError:
        return False


def unresolved(location: str, why: str, advice: str | None = None) -> StoreError:
    """A StoreError for a location that does not resolve; ``.location`` and ``.reason`` for callers."""
    if advice is None:
        advice = ("The trial's signals were pruned (store: best keeps only the best k trials), deleted, or lost: "
                  "`explorer verify NAME` says which trials are affected; lost signals can only be simulated again")
    err = StoreError(f"signals location {location!r} does not resolve: {why}. {advice}")
    err.location, err.reason = location, why
    return err
