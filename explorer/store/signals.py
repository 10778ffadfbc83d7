"""The signals store: every trial's simulated BOLD and FC in one zarr v3 hierarchy.

:class:`SignalStore` is the facade; each concern has its own module:

- :mod:`explorer.store.schema`: the layout, format version, variables and chunking;
- :mod:`explorer.store.locations`: the recorded trial locations (three forms) and their parsing;
- :mod:`explorer.store.staging` and :mod:`explorer.store.writers`: what a ``write_trials`` call
  stages and commits, and the :class:`~explorer.store.writers.TrialWriter` that writes it (plain files
  for a local folder, zarr for an fsspec URL);
- :mod:`explorer.store.index`: a subject's trials as stored, and reading them;
- :mod:`explorer.store.packing`: pack, delete, keep_best (the driver's maintenance);
- :mod:`explorer.store.resim`: the report's re-simulation cache.

Trial locations: ``write_trials`` and ``write_trial`` return (and Optuna/MLflow record as ``signals``)
the logical location ``<url>#subject=<subject>&trial=<number>``, which names the trial, not the
group that holds it now, so it stays valid when the trial is packed (:meth:`SignalStore.resolve`,
:func:`~explorer.store.locations.parse_location`, :func:`resolve_location`).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable, Mapping
from typing import Any, Sequence

import numpy as np

from explorer.errors import StoreError
from explorer.records import TrialRecord
from explorer.store import index as store_index
from explorer.store import ec, nodes, packing, resim, staging
from explorer.store.locations import parse_any, same_store, trial_location, unresolved
from explorer.store.schema import FORMAT_VERSION, SHARD_TRIALS
from explorer.store.staging import TrialSignals
from explorer.store.urls import check_id, open_store
from explorer.store.writers import TrialWriter, WriterFactory, writer_for


def resolve_location(location: str, storage_options: dict | None = None, *, data: bool = True) -> dict[str, Any]:
    """Open the store a location names (read-only) and :meth:`SignalStore.resolve` it there."""
    url = parse_any(location).url
    try:
        store = SignalStore(url, storage_options, read_only=True)
    except StoreError as exc:
        raise unresolved(location, f"its store cannot be opened ({exc})") from exc
    return store.resolve(location, data=data)


class SignalStore:
    """Simulated and empirical signals of a study, in a zarr v3 store at ``url``.

    Safe to construct in many processes at once (actors): construction writes nothing but the root
    group's metadata, and only if it is missing. Picklable (re-opens the URL on unpickling).
    ``writer``: how ``write_trials`` writes its groups, a factory taking the zarr store
    (:class:`~explorer.store.writers.FileWriter`, :class:`~explorer.store.writers.ZarrWriter`); None
    picks by the URL (:func:`~explorer.store.writers.writer_for`).

    Attributes: ``url``, ``storage_options``, ``read_only``, ``zstore`` (the zarr store) and ``writer``.
    """

    def __init__(self, url: str, storage_options: dict | None = None, *, read_only: bool = False,
                 writer: WriterFactory | None = None) -> None:
        import zarr

        self.url = str(url).rstrip("/") or str(url)
        self.storage_options = dict(storage_options or {})
        self.read_only = read_only
        self.zstore = open_store(self.url, self.storage_options, read_only=read_only)
        self._writer_factory = writer
        self.writer: TrialWriter = (writer or writer_for(self.url))(self.zstore)
        if not read_only and not nodes.exists(self.zstore, ""):
            try:
                zarr.create_group(self.zstore, path="", attributes={"explorer_signals": FORMAT_VERSION})
            except zarr.errors.ContainsGroupError:
                pass  # another process created it meanwhile

    def __reduce__(self):
        return (_reopen, (self.url, self.storage_options, self.read_only, self._writer_factory))

    def __repr__(self) -> str:
        return f"SignalStore({self.url!r})"

    # ---- what simulated the signals (driver writes, anyone reads) ---------------------------
    def describe(self, simulation: Mapping[str, Any], git_revision: str | None = None) -> bool:
        """Record on the root group what simulates this store's signals (driver only; once).

        ``simulation``: :func:`~explorer.store.records.simulation_attrs` of the study;
        ``git_revision``: the code's. The first description stays (the study's config is frozen;
        every trial group records its own as well). Returns whether it was written now.
        """
        import zarr

        root = zarr.open_group(self.zstore, path="", mode="a")
        if root.attrs.get("simulation") is not None:
            return False
        root.update_attributes({"simulation": dict(simulation), "git_revision": git_revision,
                                "described_at": time.time()})
        return True

    def description(self) -> dict[str, Any]:
        """``{"simulation", "git_revision"}`` of the root group (None where the store was never described)."""
        g = nodes.open_group(self.zstore, "")
        attrs = g.attrs.asdict() if g is not None else {}
        return {"simulation": attrs.get("simulation"), "git_revision": attrs.get("git_revision")}

    # ---- subjects and empirical data (driver) ----------------------------------------------
    def subjects(self) -> list[str]:
        """Ids of the subjects with anything stored, sorted."""
        g = nodes.open_group(self.zstore, "subjects")
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
        group = zarr.create_group(self.zstore, path=path, overwrite=True, attributes={"complete": False})
        if bold is not None:
            bold = np.asarray(bold, dtype=np.float32)
            if bold.ndim != 2 or bold.shape[1] != fc.shape[0]:
                raise StoreError(f"subject {sid}: empirical BOLD must be (time, {fc.shape[0]}), got {bold.shape}")
            nodes.write_array(self.zstore, f"{path}/bold", bold)
        nodes.write_array(self.zstore, f"{path}/fc", fc)
        labels = [str(x) for x in labels] if labels is not None else [str(i) for i in range(fc.shape[0])]
        if len(labels) != fc.shape[0]:
            raise StoreError(f"subject {sid}: {len(labels)} labels for {fc.shape[0]} regions")
        group.update_attributes({"complete": True, "tr_s": None if tr_s is None else float(tr_s),
                                 "labels": labels, "has_bold": bold is not None})

    def empirical(self, subject_id: str) -> dict[str, Any] | None:
        """``{"bold": (T,N) | None, "fc": (N,N), "tr_s", "labels"}`` or None if not stored."""
        path = f"subjects/{check_id('subject id', subject_id)}/empirical"
        g = nodes.open_group(self.zstore, path)
        if g is None or not g.attrs.get("complete"):
            return None
        attrs = g.attrs.asdict()
        return {"bold": nodes.read_array(self.zstore, f"{path}/bold") if attrs.get("has_bold") else None,
                "fc": nodes.read_array(self.zstore, f"{path}/fc"), "tr_s": attrs.get("tr_s"),
                "labels": attrs.get("labels")}

    # ---- report re-simulations (the report's driver writes, anyone reads) -------------------
    def write_resim(self, connectome: str, key: str, fc: np.ndarray | None, params: Mapping[str, Any],
                    seed: int, scores: Mapping[str, float]) -> None:
        """Store one re-simulation's FC (None when it diverged) under ``report/<connectome>/<key>``.

        ``connectome`` names what was simulated on (a subject id, or a group-mean connectome);
        ``key`` identifies the simulation (its parameters, seed and settings). Visible once committed.
        """
        resim.write_resim(self.zstore, connectome, key, fc, params, seed, scores)

    def resim(self, connectome: str, key: str) -> dict[str, Any] | None:
        """``{"fc": (N, N) float32 or None, "scores", "seed", "params"}`` of a stored re-simulation, or None."""
        return resim.read_resim(self.zstore, connectome, key)

    # ---- the EC stage (the driver holding the subject's lease writes, anyone reads) ----------
    def write_ec(self, subject_id: str, key: str, weights: np.ndarray, sc: np.ndarray, trace: np.ndarray,
                 summary: Mapping[str, Any], params: Mapping[str, Any], best_trial: int) -> None:
        """Store a subject's fitted EC, the SC it started from and the fit trace under ``ec/<subject>/<key>``."""
        ec.write_ec(self.zstore, subject_id, key, weights, sc, trace, summary, params, best_trial)

    def ec(self, subject_id: str, key: str | None = None, *, data: bool = True) -> dict[str, Any] | None:
        """A subject's stored EC fit (``key`` None: the newest), or None (:func:`explorer.store.ec.read_ec`)."""
        return ec.read_ec(self.zstore, subject_id, key, data=data)

    def ec_keys(self, subject_id: str) -> list[str]:
        """Keys of a subject's committed EC fits, oldest first."""
        return ec.ec_keys(self.zstore, subject_id)

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
        ``committed: true`` and every trial's record, in one put after the arrays (this store's
        :attr:`writer`). A writer killed before that leaves nothing visible; each call writes under a
        fresh uuid, so a retry never touches a killed attempt's objects. Every item is checked before
        anything is written (a bad item raises :class:`StoreError` and writes nothing). Safe to call
        from many processes and nodes at once, for different or equal trials.
        """
        prepared = [staging.prepare(item) for item in items]
        shared = {"tr_s": float(tr_s), "neural_dt_ms": None if neural_dt_ms is None else float(neural_dt_ms),
                  "simulation": dict(simulation) if simulation is not None else None, "git_revision": git_revision}
        for group in staging.plan(prepared, shared):
            staging.write(self.writer, group)
        return [trial_location(self.url, p.sid, p.number) for p in prepared]

    def entries(self, subject_id: str) -> dict[int, dict]:
        """A subject's stored trials, number -> marker (:mod:`explorer.store.index`; its ``_source`` says
        where the trial's arrays are)."""
        sid = check_id("subject id", subject_id)
        return store_index.subject_index(self.zstore, self.url, sid)["entries"]

    def location(self, subject_id: str, number: int) -> str:
        """The stable location of a trial in this store (whether or not it is stored)."""
        return trial_location(self.url, subject_id, number)

    def trials(self, subject_id: str) -> dict[int, dict]:
        """Committed trials of a subject: number -> {params, seed, scores, location, tr_s, packed, attempt,
        simulation, git_revision, record}.

        ``record`` is the trial's :class:`~explorer.records.TrialRecord` as the store keeps it
        (:func:`explorer.store.records.from_attrs`); ``params``, ``seed``, ``scores`` (finite) and
        ``attempt`` are its own. ``location`` is the trial's stable location (what ``write_trial``
        returned). ``simulation`` and ``git_revision``: what simulated it (None for trials written
        before they were recorded)."""
        return {n: store_index.record(m) for n, m in self.entries(subject_id).items()}

    def read_trial(self, subject_id: str, number: int) -> dict[str, Any]:
        """One committed trial: its record plus numpy ``bold``, ``fc`` (and ``neural`` if stored)."""
        sid = check_id("subject id", subject_id)
        entries = self.entries(sid)
        if int(number) not in entries:
            raise StoreError(f"subject {sid}: trial {number} is not in the signals store {self.url}")
        return store_index.read(self.zstore, sid, entries[int(number)], data=True)

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
        loc = parse_any(location)
        if not same_store(loc.url, self.url):
            raise unresolved(location, f"it names the signals store {loc.url!r}, not this one ({self.url!r})",
                             "Open that store (explorer.store.resolve_location), or, if the study was moved, "
                             "read the trial by its number (SignalStore.read_trial)")
        if loc.sid not in cache:
            cache[loc.sid] = store_index.subject_index(self.zstore, self.url, loc.sid)
        m, how, number = store_index.locate(cache[loc.sid], loc, location, self.url)
        return {"subject": loc.sid, "number": number, "resolved_by": how,
                **store_index.read(self.zstore, loc.sid, m, data)}

    # ---- maintenance (driver only) -----------------------------------------------------------
    def pack(self, subject_id: str, *, keep: Iterable[int] | None = None, stale_after_s: float | None = 0.0,
             shard_trials: int = SHARD_TRIALS) -> dict[str, int]:
        """Consolidate a subject's committed trials into one sharded array per variable.

        Single writer (the driver, once the subject's study is done). Writes a new packed copy,
        switches the ``packed`` pointer in one put, then deletes the old copy and the committed
        staging groups it absorbed (those committed after it listed them stay). ``keep`` restricts
        which trial numbers survive (store: best). Uncommitted attempts started more than
        ``stale_after_s`` ago are garbage-collected (None: keep them). Returns counts
        {"packed", "removed_staged", "removed_stale"} (:func:`explorer.store.packing.pack`).
        """
        sid = check_id("subject id", subject_id)
        # what this pack absorbs: attempts committed later stay staged
        index = store_index.subject_index(self.zstore, self.url, sid)
        return packing.pack(self.zstore, sid, index, keep, stale_after_s, shard_trials)

    def delete_trial(self, subject_id: str, number: int) -> None:
        """Remove a trial (every attempt; repacks if it was packed). Driver only."""
        packing.delete_trial(self.zstore, self.url, check_id("subject id", subject_id), int(number))

    def keep_best(self, subject_id: str, k: int, objective: str, maximise: bool, always: Sequence[int] = (),
                  *, pack: bool = False) -> list[int]:
        """Keep only the ``k`` best committed trials by ``objective``, and ``always`` (the twin); return their numbers.

        Trials with a missing or non-finite score rank last. Driver only (store: best). With ``pack``
        (a finished subject) the kept trials are packed at once (:meth:`pack` with ``keep``), which
        removes every staging group it absorbs: one pass, instead of marking the others deleted group
        by group and packing after (:func:`explorer.store.packing.keep_best`).
        """
        return packing.keep_best(self.zstore, self.url, check_id("subject id", subject_id), k, objective,
                                 maximise, always, pack_now=pack)


def _reopen(url: str, storage_options: dict, read_only: bool, writer: WriterFactory | None) -> SignalStore:
    return SignalStore(url, storage_options, read_only=read_only, writer=writer)
