"""The signals store: every trial's simulated BOLD and FC in one zarr v3 hierarchy.

Layout (``<url>`` is a local folder or any fsspec URL)::

    <url>/                                     root group, attrs {"explorer_signals": 1, "simulation": {model,
                                               dt_ms, duration_s, ...}, "git_revision"} (driver, :meth:`describe`)
      subjects/<subject>/
        empirical/        bold [time, region], fc [region, region]; attrs tr_s, labels (driver)
        staging/<first number:06d>-<attempt uuid>/   one group per write_trials call (actors)
            bold [trial, time, region]  fc [trial, region, region]  (neural [trial, time, region], optional)
                      each ONE uncompressed chunk (temporary: packing compresses, and one trial
                      can then be read alone); trials in number order
            zarr.json attrs: {explorer_trials: 1, committed: false, numbers, attempt_id, started} while
                      writing; the commit marker, written last in one atomic put, adds committed=true,
                      committed_at, trials (one record per trial, in array order:
                      explorer.store.records.to_attrs), deleted (numbers deleted since; [] at first),
                      tr_s, neural_dt_ms, shapes (per trial), simulation, git_revision
        staging/<number:06d>-<attempt uuid>/   a one-trial group written by older versions (still read):
            bold [time, region]  fc [region, region]; attrs explorer_trial=1 and the trial's marker
        packed/           attrs {current: <uuid>, trials: [marker per trial, ordered by number]}
            <uuid>/bold [trial, time, region]  fc [trial, region, region]  (neural ...)
                      sharded: one shard holds ``shard_trials`` trials; inner chunks
                      (1 trial, all times, <=16 regions)
      report/<connectome>/<key>/              the report's re-simulations (never Optuna trials), driver
            fc [region, region]; attrs: the commit marker (params, seed, scores), written last

A subject's trials: the packed ones, plus, per trial number not packed, the copy in the most
recently committed staging group that holds it and has not deleted it (a retried trial has
several). Deleting a trial of a write_trials group (the driver: :meth:`SignalStore.delete_trial`,
:meth:`SignalStore.keep_best`) adds its number to the group's ``deleted`` (one put of the group's
metadata) and removes the group once every trial of it is deleted; the bytes go at the next
:meth:`SignalStore.pack`. Deleting a trial of an uncommitted group removes that group (an
interrupted call: none of its trials is visible).

Trial locations: ``write_trials`` and ``write_trial`` return (and Optuna/MLflow record as ``signals``) the logical
location ``<url>#subject=<subject>&trial=<number>``, which names the trial, not the group that
holds it now, so it stays valid when the trial is packed (:meth:`SignalStore.resolve`,
:func:`parse_location`, :func:`resolve_location`). Locations recorded by older versions, the
staging group ``<url>/subjects/<subject>/staging/<number:06d>-<uuid>``, resolve too: to that group
while it holds the trial, else by (subject, number).

Concurrency rules (zarr-developers/zarr-python#3682: two writers of one chunk or shard lose data):

- actors only write below their own ``staging/<number>-<uuid>/`` prefix (a fresh uuid per
  call, so a retry never collides with a killed attempt), and never touch a committed group;
- a trial is visible only once its group carries ``committed: true``; that attribute is written
  after every array, in a single (atomic) object put, for all the trials of the group at once;
- ``write_empirical``, ``pack``, ``keep_best`` and ``delete_trial`` are for the single driver.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, Sequence

import numpy as np

from explorer.errors import StoreError
from explorer.records import TrialRecord
from explorer.scoring.ranking import objective_of, rank
from explorer.store import files
from explorer.store.records import from_attrs, to_attrs
from explorer.store.urls import check_id, is_remote, local_path, open_store

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
#: trials per shard of a packed array (128 x 1200 TRs x 80 regions x 4 B = 49 MB before compression)
SHARD_TRIALS = 128
#: regions per inner chunk of a packed array, at most
REGION_CHUNK = 16
VARIABLES = ("bold", "fc", "neural")


class TrialSignals(NamedTuple):
    """One trial for :meth:`SignalStore.write_trials`: its COMPLETE record, BOLD (time, region),
    FC (region, region) and optionally its neural signal (time, region)."""

    record: TrialRecord
    bold: np.ndarray
    fc: np.ndarray
    neural: np.ndarray | None = None


class _Prepared(NamedTuple):
    sid: str
    number: int
    record: dict[str, Any]
    arrays: dict[str, np.ndarray]


def _codecs(clevel: int = 3):
    from zarr.codecs import BloscCodec

    return BloscCodec(cname="zstd", clevel=clevel, shuffle="shuffle")


def region_chunk(n_regions: int, target: int = REGION_CHUNK) -> int:
    """Regions per inner chunk: the largest divisor of ``n_regions`` in [target/2, target], else all."""
    if n_regions <= target:
        return n_regions
    for d in range(target, max(target // 2, 1) - 1, -1):
        if n_regions % d == 0:
            return d
    return n_regions


def _sync(coro):
    from zarr.core.sync import sync

    return sync(coro)


def _floats(d: Mapping[str, Any] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in (d or {}).items():
        try:
            out[str(k)] = float(v)
        except (TypeError, ValueError):
            raise StoreError(f"value {k}={v!r} is not a number; params and scores must be scalars") from None
    return out


_ID = r"[A-Za-z0-9_.\-]+"
#: ``<url>#subject=<sid>&trial=<number>``: what ``write_trial`` returns (the stable location)
_LOC_TRIAL = re.compile(rf"^(?P<url>.+)#subject=(?P<sid>{_ID})&trial=(?P<num>\d+)$")
#: ``<url>/subjects/<sid>/staging/<number:06d>-<uuid>``: returned by older versions (one write attempt)
_LOC_STAGING = re.compile(rf"^(?P<url>.+)/subjects/(?P<sid>{_ID})/staging/(?P<name>(?P<num>\d+)-[0-9A-Za-z]+)/?$")
#: ``<url>/subjects/<sid>/packed/<uuid>[<index>]``: a packed trial as older ``trials()`` showed it
_LOC_PACKED = re.compile(rf"^(?P<url>.+)/subjects/(?P<sid>{_ID})/packed/(?P<cur>[0-9A-Za-z]+)\[(?P<idx>\d+)\]$")


def trial_location(url: str, subject_id: str, number: int) -> str:
    """The stable location of a trial's signals: ``<store url>#subject=<subject>&trial=<number>``."""
    number = int(number)
    if number < 0:
        raise StoreError(f"trial number must be >= 0, got {number}")
    return f"{str(url).rstrip('/') or str(url)}#subject={check_id('subject id', subject_id)}&trial={number}"


def _parse(location: str) -> tuple[str, str, int, str, Any]:
    """(store url, subject, number, kind, extra): kind "trial", "staging" (extra: group name) or
    "packed" (extra: (packed uuid, index))."""
    s = str(location).strip()
    m = _LOC_TRIAL.match(s)
    if m and m["sid"] not in (".", ".."):
        return m["url"], m["sid"], int(m["num"]), "trial", None
    m = _LOC_STAGING.match(s)
    if m and m["sid"] not in (".", ".."):
        return m["url"], m["sid"], int(m["num"]), "staging", m["name"]
    m = _LOC_PACKED.match(s)
    if m and m["sid"] not in (".", ".."):
        return m["url"], m["sid"], -1, "packed", (m["cur"], int(m["idx"]))
    raise StoreError(f"{location!r} is not a signals location: expected '<store url>#subject=<id>&trial=<number>' "
                     "(what write_trial returns and trials record as `signals`), or an older "
                     "'<store url>/subjects/<id>/staging/<number>-<uuid>'")


def parse_location(location: str) -> tuple[str, str, int]:
    """``(store url, subject, trial number)`` of a recorded signals location.

    Accepts the stable form ``<url>#subject=<id>&trial=<n>`` and the staging paths recorded by
    older versions (``<url>/subjects/<id>/staging/<n:06d>-<uuid>``). Raises :class:`StoreError`
    for anything else, and for an old packed location (``.../packed/<uuid>[i]``), whose trial number
    only the store knows (use :meth:`SignalStore.resolve`).
    """
    url, sid, number, kind, _ = _parse(location)
    if kind == "packed":
        raise StoreError(f"{location!r} names a packed position, not a trial: resolve it with "
                         "SignalStore(url).resolve(location) to learn its trial number")
    return url, sid, number


def _same_store(a: str, b: str) -> bool:
    a, b = str(a).rstrip("/"), str(b).rstrip("/")
    if a == b:
        return True
    if is_remote(a) or is_remote(b):
        return False
    try:
        return local_path(a).resolve() == local_path(b).resolve()
    except OSError:
        return False


def _unresolved(location: str, why: str, advice: str | None = None) -> StoreError:
    """A StoreError for a location that does not resolve; ``.location`` and ``.reason`` for callers."""
    if advice is None:
        advice = ("The trial's signals were pruned (store: best keeps only the best k trials), deleted, or lost: "
                  "`explorer verify NAME` says which trials are affected; lost signals can only be simulated again")
    err = StoreError(f"signals location {location!r} does not resolve: {why}. {advice}")
    err.location, err.reason = location, why
    return err


def resolve_location(location: str, storage_options: dict | None = None, *, data: bool = True) -> dict[str, Any]:
    """Open the store a location names (read-only) and :meth:`SignalStore.resolve` it there."""
    url = _parse(location)[0]
    try:
        store = SignalStore(url, storage_options, read_only=True)
    except StoreError as exc:
        raise _unresolved(location, f"its store cannot be opened ({exc})") from exc
    return store.resolve(location, data=data)


class SignalStore:
    """Simulated and empirical signals of a study, in a zarr v3 store at ``url``.

    Safe to construct in many processes at once (actors): construction writes nothing but the root
    group's metadata, and only if it is missing. Picklable (re-opens the URL on unpickling).
    """

    def __init__(self, url: str, storage_options: dict | None = None, *, read_only: bool = False) -> None:
        import zarr

        self.url = str(url).rstrip("/") or str(url)
        self.storage_options = dict(storage_options or {})
        self.read_only = read_only
        self._store = open_store(self.url, self.storage_options, read_only=read_only)
        #: the folder of a local store: write_trials writes its groups there as plain files
        self._root = self._store.root if isinstance(self._store, zarr.storage.LocalStore) else None
        if not read_only and not _sync(self._store.exists("zarr.json")):
            try:
                zarr.create_group(self._store, path="", attributes={"explorer_signals": FORMAT_VERSION})
            except zarr.errors.ContainsGroupError:
                pass  # another process created it meanwhile

    def __reduce__(self):
        return (_reopen, (self.url, self.storage_options, self.read_only))

    def __repr__(self) -> str:
        return f"SignalStore({self.url!r})"

    # ---- helpers -------------------------------------------------------------------------
    def _group(self, path: str):
        import zarr

        try:
            return zarr.open_group(self._store, path=path, mode="r")
        except (FileNotFoundError, KeyError):
            return None

    def _exists(self, path: str) -> bool:
        return bool(_sync(self._store.exists(f"{path}/zarr.json")))

    def _delete(self, path: str) -> None:
        _sync(self._store.delete_dir(path))
        # LocalStore/FsspecStore delete_dir removes keys below the prefix; drop the node itself
        if _sync(self._store.exists(f"{path}/zarr.json")):
            _sync(self._store.delete(f"{path}/zarr.json"))

    def _write_array(self, path: str, data: np.ndarray, **kw) -> None:
        import zarr

        zarr.create_array(self._store, name=path, data=data, chunks=kw.pop("chunks", data.shape),
                          compressors=_codecs(), fill_value=np.nan, overwrite=True, **kw)

    def _read_array(self, path: str, index: Any = ...) -> np.ndarray:
        import zarr

        return np.asarray(zarr.open_array(self._store, path=path, mode="r")[index])

    # ---- what simulated the signals (driver writes, anyone reads) ---------------------------
    def describe(self, simulation: Mapping[str, Any], git_revision: str | None = None) -> bool:
        """Record on the root group what simulates this store's signals (driver only; once).

        ``simulation``: :func:`~explorer.store.records.simulation_attrs` of the study;
        ``git_revision``: the code's. The first description stays (the study's config is frozen;
        every trial group records its own as well). Returns whether it was written now.
        """
        import zarr

        root = zarr.open_group(self._store, path="", mode="a")
        if root.attrs.get("simulation") is not None:
            return False
        root.update_attributes({"simulation": dict(simulation), "git_revision": git_revision,
                                "described_at": time.time()})
        return True

    def description(self) -> dict[str, Any]:
        """``{"simulation", "git_revision"}`` of the root group (None where the store was never described)."""
        g = self._group("")
        attrs = g.attrs.asdict() if g is not None else {}
        return {"simulation": attrs.get("simulation"), "git_revision": attrs.get("git_revision")}

    # ---- subjects and empirical data (driver) ----------------------------------------------
    def subjects(self) -> list[str]:
        """Ids of the subjects with anything stored, sorted."""
        g = self._group("subjects")
        if g is None:
            return []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return sorted(name for name, _ in g.groups())

    def write_empirical(self, subject_id: str, bold: np.ndarray | None, fc: np.ndarray, tr_s: float | None,
                        labels: Iterable[str] | None = None) -> None:
        """Store a subject's empirical BOLD (time, region) and FC (region, region). Driver only."""
        import zarr

        sid = check_id("subject id", subject_id)
        fc = np.asarray(fc, dtype=np.float32)
        if fc.ndim != 2 or fc.shape[0] != fc.shape[1]:
            raise StoreError(f"subject {sid}: empirical FC must be (region, region), got {fc.shape}")
        path = f"subjects/{sid}/empirical"
        group = zarr.create_group(self._store, path=path, overwrite=True, attributes={"complete": False})
        if bold is not None:
            bold = np.asarray(bold, dtype=np.float32)
            if bold.ndim != 2 or bold.shape[1] != fc.shape[0]:
                raise StoreError(f"subject {sid}: empirical BOLD must be (time, {fc.shape[0]}), got {bold.shape}")
            self._write_array(f"{path}/bold", bold)
        self._write_array(f"{path}/fc", fc)
        labels = [str(x) for x in labels] if labels is not None else [str(i) for i in range(fc.shape[0])]
        if len(labels) != fc.shape[0]:
            raise StoreError(f"subject {sid}: {len(labels)} labels for {fc.shape[0]} regions")
        group.update_attributes({"complete": True, "tr_s": None if tr_s is None else float(tr_s),
                                 "labels": labels, "has_bold": bold is not None})

    def empirical(self, subject_id: str) -> dict[str, Any] | None:
        """``{"bold": (T,N) | None, "fc": (N,N), "tr_s", "labels"}`` or None if not stored."""
        path = f"subjects/{check_id('subject id', subject_id)}/empirical"
        g = self._group(path)
        if g is None or not g.attrs.get("complete"):
            return None
        attrs = g.attrs.asdict()
        return {"bold": self._read_array(f"{path}/bold") if attrs.get("has_bold") else None,
                "fc": self._read_array(f"{path}/fc"), "tr_s": attrs.get("tr_s"), "labels": attrs.get("labels")}

    # ---- report re-simulations (the report's driver writes, anyone reads) -------------------
    def write_resim(self, connectome: str, key: str, fc: np.ndarray | None, params: Mapping[str, Any],
                    seed: int, scores: Mapping[str, float]) -> None:
        """Store one re-simulation's FC (None when it diverged) under ``report/<connectome>/<key>``.

        ``connectome`` names what was simulated on (a subject id, or a group-mean connectome);
        ``key`` identifies the simulation (its parameters, seed and settings). Visible once committed.
        """
        import zarr

        path = f"report/{check_id('connectome', connectome)}/{check_id('simulation key', key)}"
        group = zarr.create_group(self._store, path=path, overwrite=True, attributes={"committed": False})
        if fc is not None:
            self._write_array(f"{path}/fc", np.asarray(fc, dtype=np.float32))
        group.update_attributes({"committed": True, "diverged": fc is None, "seed": int(seed),
                                 "params": {k: (list(map(float, v)) if isinstance(v, (list, tuple, np.ndarray))
                                                else float(v)) for k, v in params.items()},
                                 "scores": _floats(scores)})

    def resim(self, connectome: str, key: str) -> dict[str, Any] | None:
        """``{"fc": (N, N) float32 or None, "scores", "seed", "params"}`` of a stored re-simulation, or None."""
        path = f"report/{check_id('connectome', connectome)}/{check_id('simulation key', key)}"
        g = self._group(path)
        if g is None or not g.attrs.get("committed"):
            return None
        attrs = g.attrs.asdict()
        fc = None if attrs.get("diverged") else self._read_array(f"{path}/fc")
        return {"fc": fc, "scores": dict(attrs.get("scores", {})), "seed": attrs.get("seed"),
                "params": dict(attrs.get("params", {}))}

    # ---- trials (actors write, anyone reads) ------------------------------------------------
    def write_trial(self, rec: TrialRecord, bold: np.ndarray, fc: np.ndarray, tr_s: float, *,
                    neural: np.ndarray | None = None, neural_dt_ms: float | None = None,
                    simulation: Mapping[str, Any] | None = None, git_revision: str | None = None) -> str:
        """Write one COMPLETE trial's BOLD (time, region), FC (region, region) and record; return its location.

        A one-trial :meth:`write_trials` (same layout, same guarantees). ``rec``: the trial's
        :class:`~explorer.records.TrialRecord` (what the store keeps of it:
        :func:`explorer.store.records.to_attrs`). ``simulation`` (:func:`~explorer.store.records.simulation_attrs`)
        and ``git_revision``: what simulated it, recorded with it. The location is the stable
        ``<url>#subject=<subject>&trial=<number>`` (:func:`trial_location`): it names the trial, not
        this attempt's group, so it resolves (:meth:`resolve`) before and after packing.
        """
        return self.write_trials([TrialSignals(rec, bold, fc, neural)], tr_s, neural_dt_ms=neural_dt_ms,
                                 simulation=simulation, git_revision=git_revision)[0]

    def write_trials(self, items: Iterable[TrialSignals | Sequence[Any]], tr_s: float, *,
                     neural_dt_ms: float | None = None, simulation: Mapping[str, Any] | None = None,
                     git_revision: str | None = None) -> list[str]:
        """Write the COMPLETE trials of one actor call together; return each one's location, in order.

        ``items``: :class:`TrialSignals` or tuples ``(record, bold, fc[, neural])``: a trial's
        :class:`~explorer.records.TrialRecord`, BOLD (time, region), FC (region, region) and
        optionally its neural signal (time, region). ``tr_s``, ``neural_dt_ms``, ``simulation`` and
        ``git_revision`` are the call's, recorded with each trial.

        The trials of one subject with equal array shapes (normally the whole call) go to ONE new
        attempt group ``subjects/<subject>/staging/<first number:06d>-<uuid>/`` as stacked arrays
        ``bold`` (trial, time, region), ``fc`` (trial, region, region) (and ``neural``), one object
        each, and become visible together when the group's metadata is rewritten with
        ``committed: true`` and every trial's record, in one put after the arrays. A writer killed
        before that leaves nothing visible; each call writes under a fresh uuid, so a retry never
        touches a killed attempt's objects. Every item is checked before anything is written (a bad
        item raises :class:`StoreError` and writes nothing). Safe to call from many processes and
        nodes at once, for different or equal trials.
        """
        prepared = [self._prepare(item) for item in items]
        groups: dict[tuple, list[_Prepared]] = {}
        for p in prepared:
            key = (p.sid, tuple((k, v.shape) for k, v in p.arrays.items()))
            groups.setdefault(key, []).append(p)
        for (sid, _), ps in groups.items():
            numbers = [p.number for p in ps]
            if len(set(numbers)) != len(numbers):
                dup = sorted({n for n in numbers if numbers.count(n) > 1})
                raise StoreError(f"subject {sid}: trial(s) {dup} given more than once in one write_trials call")
        shared = {"tr_s": float(tr_s), "neural_dt_ms": None if neural_dt_ms is None else float(neural_dt_ms),
                  "simulation": dict(simulation) if simulation is not None else None, "git_revision": git_revision}
        for (sid, _), ps in groups.items():
            self._write_group(sid, sorted(ps, key=lambda p: p.number), shared)
        return [trial_location(self.url, p.sid, p.number) for p in prepared]

    @staticmethod
    def _prepare(item: TrialSignals | Sequence[Any]) -> _Prepared:
        """Check one item of :meth:`write_trials`: its subject, number, record and array shapes."""
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
        return _Prepared(sid, number, record, arrays)

    def _write_group(self, sid: str, ps: list[_Prepared], shared: dict[str, Any]) -> None:
        """One attempt group for trials ``ps`` (one subject, equal shapes): marker, arrays, commit."""
        attempt_id = uuid.uuid4().hex[:16]
        numbers = [p.number for p in ps]
        path = f"subjects/{sid}/staging/{numbers[0]:06d}-{attempt_id}"
        marker = {"explorer_trials": FORMAT_VERSION, "committed": False, "subject": sid, "numbers": numbers,
                  "attempt_id": attempt_id, "started": time.time()}
        stacks = {var: np.stack([p.arrays[var] for p in ps]) for var in ps[0].arrays}
        commit = {**marker, **shared, "committed": True,
                  "shapes": {k: list(v.shape) for k, v in ps[0].arrays.items()},
                  "trials": [p.record for p in ps], "deleted": []}
        if self._root is None:
            _sync(self._stage_and_commit(path, marker, stacks, commit))
            return
        directory = files.write_group(self._root, path, marker, stacks)   # local: zarr's files, not its loop
        self._commit_local(directory, {**commit, "committed_at": time.time()})

    async def _stage_and_commit(self, path: str, marker: dict[str, Any], stacks: dict[str, np.ndarray],
                                commit: dict[str, Any]) -> None:
        """The uncommitted group (its marker first: an attempt killed later is found and collected), then
        its arrays, concurrently, then the commit: one pass through zarr's event loop (each pass is a
        hand-over to its thread, slow on cores the simulations keep busy). Each array is a (trial, ...)
        stack in ONE uncompressed chunk. This write is on the actors' path: zstd and a shard of
        per-trial chunks took ~45% longer for ~12% fewer bytes of float BOLD (6 trials x 700 TRs x 80
        regions: 14.6 vs 8.0 ms); packing compresses and chunks per trial."""
        import asyncio

        import zarr.api.asynchronous as az

        group = await az.create_group(store=self._store, path=path, attributes=marker)
        await asyncio.gather(*(az.create_array(self._store, name=f"{path}/{var}", data=data,
                                               chunks=data.shape, compressors=None, fill_value=np.nan,
                                               overwrite=True)
                               for var, data in stacks.items()))
        await self._commit(group, {**commit, "committed_at": time.time()})

    async def _commit(self, group, marker: dict[str, Any]) -> None:
        """Make a written attempt visible: one atomic put of its group metadata."""
        await group.update_attributes(marker)

    def _commit_local(self, directory, marker: dict[str, Any]) -> None:
        """:meth:`_commit` of a group written as files (:mod:`explorer.store.files`): one atomic rename."""
        files.replace_group_metadata(directory, marker)

    def _staged(self, sid: str) -> tuple[dict[int, dict], list[dict]]:
        """(latest committed, undeleted copy per trial number, every attempt group's attrs incl. uncommitted)."""
        g = self._group(f"subjects/{sid}/staging")
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
            for n, m in _attempt_trials(attrs).items():
                if n not in committed or m["committed_at"] > committed[n]["committed_at"]:
                    committed[n] = m
        return committed, attempts

    def _packed(self, sid: str) -> tuple[str | None, list[dict]]:
        g = self._group(f"subjects/{sid}/packed")
        if g is None:
            return None, []
        attrs = g.attrs.asdict()
        return attrs.get("current"), list(attrs.get("trials", []))

    def _index(self, sid: str) -> dict[str, Any]:
        """A subject's trials as stored now: ``entries`` (number -> marker with ``_source``
        ("packed", index), ("batch", (group name, index)) or ("staged", group name)), ``attempts``
        (staging group name -> attrs, committed or not), ``current`` (packed uuid or None) and
        ``packed`` (packed markers)."""
        current, packed = self._packed(sid)
        committed, attempts = self._staged(sid)
        out: dict[int, dict] = {}
        out.update(committed)
        for i, m in enumerate(packed):  # packed wins over a leftover staged copy of the same trial
            out[int(m["number"])] = {**m, "_source": ("packed", i), "_current": current}
        for n, m in out.items():
            m["location"] = trial_location(self.url, sid, n)
        return {"entries": dict(sorted(out.items())), "attempts": {a["_name"]: a for a in attempts},
                "current": current, "packed": packed}

    def _entries(self, sid: str) -> dict[int, dict]:
        """number -> marker with ``_source`` ("packed", index), ("batch", (group name, index)) or
        ("staged", group name) (a one-trial group of older versions)."""
        return self._index(sid)["entries"]

    def location(self, subject_id: str, number: int) -> str:
        """The stable location of a trial in this store (whether or not it is stored)."""
        return trial_location(self.url, subject_id, number)

    @staticmethod
    def _record(m: Mapping[str, Any]) -> dict[str, Any]:
        rec = from_attrs(m)
        return {"params": rec.params, "seed": rec.seed, "scores": rec.scores, "location": m.get("location", ""),
                "tr_s": m.get("tr_s"), "packed": m["_source"][0] == "packed", "attempt": rec.attempt,
                "simulation": m.get("simulation"), "git_revision": m.get("git_revision"), "record": rec}

    def trials(self, subject_id: str) -> dict[int, dict]:
        """Committed trials of a subject: number -> {params, seed, scores, location, tr_s, packed, attempt,
        simulation, git_revision, record}.

        ``record`` is the trial's :class:`~explorer.records.TrialRecord` as the store keeps it
        (:func:`explorer.store.records.from_attrs`); ``params``, ``seed``, ``scores`` (finite) and
        ``attempt`` are its own. ``location`` is the trial's stable location (what ``write_trial``
        returned). ``simulation`` and ``git_revision``: what simulated it (None for trials written
        before they were recorded)."""
        sid = check_id("subject id", subject_id)
        return {n: self._record(m) for n, m in self._entries(sid).items()}

    def _read_entry(self, sid: str, m: dict, var: str, stacks: OrderedDict | None = None) -> np.ndarray:
        """One trial's ``var``; ``stacks``: a cache of whole write_trials arrays (a few), for reading many."""
        kind, where = m["_source"]
        if kind == "packed":
            return self._read_array(f"subjects/{sid}/packed/{m['_current']}/{var}", where)
        if kind == "batch":
            name, i = where
            path = f"subjects/{sid}/staging/{name}/{var}"
            if stacks is None:
                return self._read_array(path, i)
            if path not in stacks:
                stacks[path] = self._read_array(path)
                while len(stacks) > 8:
                    stacks.popitem(last=False)
            return stacks[path][i]
        return self._read_array(f"subjects/{sid}/staging/{where}/{var}")

    def read_trial(self, subject_id: str, number: int) -> dict[str, Any]:
        """One committed trial: its record plus numpy ``bold``, ``fc`` (and ``neural`` if stored)."""
        sid = check_id("subject id", subject_id)
        entries = self._entries(sid)
        if int(number) not in entries:
            raise StoreError(f"subject {sid}: trial {number} is not in the signals store {self.url}")
        return self._read(sid, entries[int(number)], data=True)

    def _read(self, sid: str, m: dict, data: bool) -> dict[str, Any]:
        out = self._record(m)
        if data:
            for var in VARIABLES:
                if var in m.get("shapes", {}):
                    out[var] = self._read_entry(sid, m, var)
        return out

    # ---- recorded locations -------------------------------------------------------------------
    def resolve(self, location: str, *, data: bool = True) -> dict[str, Any]:
        """The trial a recorded ``signals`` location names, staged or packed: like :meth:`read_trial`
        (``params``, ``seed``, ``scores``, ``location``, ``tr_s``, ``packed``, ``attempt`` and, with
        ``data``, numpy ``bold``, ``fc`` and ``neural`` if stored) plus ``subject``, ``number`` and
        ``resolved_by``: "location", or "trial number" for an old staging location whose group
        is gone (packed since) and was found by (subject, number).

        Raises :class:`StoreError` naming the location when it does not resolve: a location of
        another store, a trial that is not stored (pruned by ``store: best``, deleted or lost).
        """
        return self._resolve(location, data, {})

    def resolve_many(self, locations: Mapping[Any, str], *, data: bool = False) -> dict[Any, dict | StoreError]:
        """:meth:`resolve` each of ``locations`` (key -> location), listing each subject once:
        key -> the resolved trial, or the :class:`StoreError` saying why it does not resolve."""
        cache: dict[str, dict] = {}
        out: dict[Any, dict | StoreError] = {}
        for key, loc in locations.items():
            try:
                out[key] = self._resolve(loc, data, cache)
            except StoreError as exc:
                out[key] = exc
        return out

    def _resolve(self, location: str, data: bool, cache: dict[str, dict]) -> dict[str, Any]:
        url, sid, number, kind, extra = _parse(location)
        if not _same_store(url, self.url):
            raise _unresolved(location, f"it names the signals store {url!r}, not this one ({self.url!r})",
                              "Open that store (explorer.store.resolve_location), or, if the study was moved, "
                              "read the trial by its number (SignalStore.read_trial)")
        if sid not in cache:
            cache[sid] = self._index(sid)
        idx = cache[sid]
        m, how = None, "location"
        if kind == "staging":
            a = idx["attempts"].get(extra)
            own = _attempt_trials(a).get(number) if a is not None else None
            if own is not None:  # the named group still holds the trial
                m = {**own, "location": trial_location(self.url, sid, number)}
            elif number in idx["entries"]:
                m, how = idx["entries"][number], "trial number"
        elif kind == "packed":
            cur, i = extra
            if cur != idx["current"] or i >= len(idx["packed"]):
                raise _unresolved(location, f"subject {sid} was repacked since (its packed copy {cur} is gone), "
                                  "and an old packed position names no trial number")
            number = int(idx["packed"][i]["number"])
            m = idx["entries"].get(number)
        else:
            m = idx["entries"].get(number)
        if m is None:
            raise _unresolved(location, f"subject {sid} has no trial {number} (staged or packed) in {self.url}")
        return {"subject": sid, "number": number, "resolved_by": how, **self._read(sid, m, data)}

    # ---- maintenance (driver only) -----------------------------------------------------------
    def pack(self, subject_id: str, *, keep: Iterable[int] | None = None, stale_after_s: float | None = 0.0,
             shard_trials: int = SHARD_TRIALS) -> dict[str, int]:
        """Consolidate a subject's committed trials into one sharded array per variable.

        Single writer (the driver, once the subject's study is done). Writes a new packed copy,
        switches the ``packed`` pointer in one put, then deletes the old copy and the committed
        staging groups it absorbed (those committed after it listed them stay). ``keep`` restricts which trial numbers survive (store: best).
        Uncommitted attempts started more than ``stale_after_s`` ago are garbage-collected
        (None: keep them). Returns counts {"packed", "removed_staged", "removed_stale"}.
        """
        sid = check_id("subject id", subject_id)
        # what this pack absorbs: attempts committed later stay staged
        return self._pack(sid, self._index(sid), keep, stale_after_s, shard_trials)

    def _pack(self, sid: str, index: dict[str, Any], keep: Iterable[int] | None, stale_after_s: float | None,
              shard_trials: int) -> dict[str, int]:
        """:meth:`pack` of the trials and attempts of ``index`` (:meth:`_index`, read by the caller)."""
        import zarr

        entries, old_current = index["entries"], index["current"]
        if keep is not None:
            keep_set = {int(k) for k in keep}
            entries = {n: m for n, m in entries.items() if n in keep_set}
        markers = list(entries.values())
        new_current = uuid.uuid4().hex[:16] if markers else None
        base = f"subjects/{sid}/packed/{new_current}"
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
            arr = zarr.create_array(self._store, name=f"{base}/{var}", shape=(n, *shape), dtype="float32",
                                    chunks=chunks, shards=(shard, *shape), compressors=_codecs(),
                                    fill_value=np.nan, overwrite=True,
                                    dimension_names=("trial", "time", "region") if var != "fc"
                                    else ("trial", "region", "region_to"))
            stacks: OrderedDict[str, np.ndarray] = OrderedDict()  # a few write_trials groups, read whole
            for i0 in range(0, n, shard):  # one whole shard per write: each shard written once
                block = np.stack([self._read_entry(sid, m, var, stacks) for m in markers[i0:i0 + shard]])
                arr[i0:i0 + len(block)] = block
        clean = [{k: v for k, v in m.items() if not k.startswith("_") and k != "location"} for m in markers]
        pg = zarr.open_group(self._store, path=f"subjects/{sid}/packed", mode="a")
        pg.update_attributes({"current": new_current, "trials": clean, "packed_at": time.time()})
        # the pointer has moved: remove what it no longer refers to
        if old_current and old_current != new_current:
            self._delete(f"subjects/{sid}/packed/{old_current}")
        now = time.time()
        removed = stale = 0
        for a in index["attempts"].values():
            if a.get("committed"):
                self._delete(f"subjects/{sid}/staging/{a['_name']}")
                removed += 1
            elif stale_after_s is not None and now - float(a.get("started", 0.0)) >= stale_after_s:
                self._delete(f"subjects/{sid}/staging/{a['_name']}")
                stale += 1
        if self._group(f"subjects/{sid}/staging") is not None and not self._staged(sid)[1]:
            self._delete(f"subjects/{sid}/staging")
        log.info("packed subject %s: %d trials, removed %d staged and %d stale attempts",
                 sid, len(markers), removed, stale)
        return {"packed": len(markers), "removed_staged": removed, "removed_stale": stale}

    def delete_trial(self, subject_id: str, number: int) -> None:
        """Remove a trial (every attempt; repacks if it was packed). Driver only."""
        sid = check_id("subject id", subject_id)
        number = int(number)
        _, packed = self._packed(sid)
        if any(int(m["number"]) == number for m in packed):
            others = [n for n in self._entries(sid) if n != number]
            self.pack(sid, keep=others, stale_after_s=None)
        for a in self._staged(sid)[1]:
            if a.get("explorer_trials"):
                if number not in a.get("numbers", ()):
                    continue
                if a.get("committed"):
                    self._forget(sid, a, {number})
                else:  # an interrupted write_trials call: none of its trials is visible
                    self._delete(f"subjects/{sid}/staging/{a['_name']}")
            elif int(a.get("number", -1)) == number:
                self._delete(f"subjects/{sid}/staging/{a['_name']}")

    def _forget(self, sid: str, attrs: Mapping[str, Any], numbers: set[int]) -> None:
        """Delete ``numbers`` from a committed write_trials group: add them to its ``deleted`` list
        (one put of its metadata), or remove the group when none of its trials is left."""
        import zarr

        path = f"subjects/{sid}/staging/{attrs['_name']}"
        deleted = {int(n) for n in attrs.get("deleted") or ()} | {int(n) for n in numbers}
        if deleted >= {int(n) for n in attrs.get("numbers", ())}:
            self._delete(path)
        elif deleted != set(attrs.get("deleted") or ()):
            zarr.open_group(self._store, path=path, mode="r+").update_attributes({"deleted": sorted(deleted)})

    def keep_best(self, subject_id: str, k: int, objective: str, maximise: bool, always: Sequence[int] = (),
                  *, pack: bool = False) -> list[int]:
        """Keep only the ``k`` best committed trials by ``objective``, and ``always`` (the twin); return their numbers.

        Trials with a missing or non-finite score rank last. Driver only (store: best). With ``pack``
        (a finished subject) the kept trials are packed at once (:meth:`pack` with ``keep``), which
        removes every staging group it absorbs: one pass, instead of marking the others deleted group
        by group and packing after.
        """
        sid = check_id("subject id", subject_id)
        index = self._index(sid)   # read once: ranked, then pruned or packed
        keep = best_trials({n: self._record(m) for n, m in index["entries"].items()}, k, objective, maximise,
                           always)
        if pack or index["packed"]:
            self._pack(sid, index, keep, 0.0 if pack else None, SHARD_TRIALS)
        else:
            keep_set = set(keep)
            for a in index["attempts"].values():
                if not a.get("committed"):
                    continue
                if a.get("explorer_trials"):
                    self._forget(sid, a, {int(n) for n in a.get("numbers", ())} - keep_set)
                elif int(a["number"]) not in keep_set:
                    self._delete(f"subjects/{sid}/staging/{a['_name']}")
        return keep


def _attempt_trials(attrs: Mapping[str, Any]) -> dict[int, dict]:
    """The committed, undeleted trials of one staging group's attrs (``_name``: the group's name):
    number -> marker with ``_source`` ("staged", name) for a one-trial group of older versions,
    ("batch", (name, index)) for a :meth:`SignalStore.write_trials` group. Empty while uncommitted."""
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


def best_trials(trials: Mapping[int, Mapping[str, Any]], k: int, objective: str, maximise: bool,
                always: Sequence[int] = ()) -> list[int]:
    """Numbers of the ``k`` best trials by ``objective`` (a score or a combination of scores; non-finite
    last), plus those of ``always`` that are in ``trials`` (a multi-objective twin), sorted by number."""
    values = {n: objective_of(trials[n].get("scores") or {}, objective) for n in trials}
    best = rank(values, maximise, k)
    return sorted(set(best) | {int(n) for n in always if n in trials})


def _reopen(url: str, storage_options: dict, read_only: bool) -> SignalStore:
    return SignalStore(url, storage_options, read_only=read_only)
