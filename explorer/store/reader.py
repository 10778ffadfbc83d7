"""``open_signals``: a study's signals as one lazy (dask-backed) xarray Dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from explorer.errors import StoreError
from explorer.store.locations import parse_location
from explorer.store.nodes import open_group, sync
from explorer.store.schema import packed_path, staging_path
from explorer.store.signals import SignalStore
from explorer.store.urls import SIGNALS_NAME, is_remote, join, local_path, open_store


def resolve_signals_url(url_or_study_dir: str | Path, storage_options: dict | None = None) -> str:
    """The signals store URL: ``url_or_study_dir`` itself if it is a zarr store, else its signals.zarr.

    A trial's recorded location (``<url>#subject=<id>&trial=<n>``) stands for its store."""
    s = str(url_or_study_dir)
    if "#subject=" in s:
        try:
            s = parse_location(s)[0]
        except StoreError:
            pass
    s = s.rstrip("/")
    if not is_remote(s):
        p = local_path(s)
        if (p / "zarr.json").exists():
            return str(p)
        if (p / SIGNALS_NAME / "zarr.json").exists():
            return str(p / SIGNALS_NAME)
        raise StoreError(f"no signals store at {str(p)!r} (looked for {p / 'zarr.json'} and "
                         f"{p / SIGNALS_NAME}): pass a study folder or its signals.zarr")
    store = open_store(s, storage_options, read_only=True)
    if sync(store.exists("zarr.json")):
        return s
    inner = join(s, SIGNALS_NAME)
    if sync(open_store(inner, storage_options, read_only=True).exists("zarr.json")):
        return inner
    raise StoreError(f"no signals store at {s!r} or {inner!r}: pass a study location or its signals.zarr")


def _load(url: str, storage_options: dict, path: str, index: Any = ...) -> np.ndarray:
    import zarr

    arr = zarr.open_array(open_store(url, storage_options, read_only=True), path=path, mode="r")
    return np.asarray(arr[index])


def _pad(arr, shape: tuple[int, ...]):
    """Pad a dask array with NaN at the end of every axis up to ``shape``."""
    import dask.array as da

    if tuple(arr.shape) == tuple(shape):
        return arr
    widths = [(0, s - a) for a, s in zip(arr.shape, shape)]
    return da.pad(arr, widths, mode="constant", constant_values=np.nan)


def _pieces(entries: dict[int, dict], var: str) -> list[tuple[str, Any, int, int, dict | None]]:
    """A subject's trials (number order) as pieces ``(kind, container, start, stop, marker)``: runs of
    consecutive positions in one packed array ("packed") or one write_trials group ("batch", the
    group's name) become one slice; an older one-trial group is a piece of its own ("staged");
    a trial without ``var`` is "nan"."""
    pieces: list[tuple[str, Any, int, int, dict | None]] = []
    for m in entries.values():
        kind, where = m["_source"]
        if var not in m.get("shapes", {}):
            pieces.append(("nan", None, 0, 1, None))
            continue
        if kind == "staged":
            pieces.append(("staged", where, 0, 1, m))
            continue
        container, i = (None, where) if kind == "packed" else where
        last = pieces[-1] if pieces else None
        if last is not None and last[0] == kind and last[1] == container and last[3] == i:
            pieces[-1] = (kind, container, last[2], i + 1, last[4])
        else:
            pieces.append((kind, container, i, i + 1, m))
    return pieces


def _subject_var(sig: SignalStore, sid: str, entries: dict[int, dict], var: str, shape: tuple[int, ...]):
    """Dask array (trial, *shape) for one subject and variable, trials in number order."""
    import dask
    import dask.array as da
    import zarr

    packed_arr = None
    arrays = []
    for kind, container, i0, i1, m in _pieces(entries, var):
        if kind == "packed":
            if packed_arr is None:
                z = zarr.open_array(sig.zstore, path=f"{packed_path(sid, m['_current'])}/{var}", mode="r")
                shards = z.shards or z.chunks
                packed_arr = da.from_array(z, chunks=(shards[0], *z.shape[1:]), asarray=True, lock=False,
                                           name=f"signals-{sid}-{m['_current']}-{var}")
            a = packed_arr[i0:i1]
            arrays.append(_pad(a, (a.shape[0], *shape)))
        elif kind in ("staged", "batch"):
            path = f"{staging_path(sid, container)}/{var}"
            index = slice(i0, i1) if kind == "batch" else ...
            d = dask.delayed(_load, pure=True)(sig.url, sig.storage_options, path, index)
            m_shape = tuple(m["shapes"][var])
            a = da.from_delayed(d, shape=(i1 - i0, *m_shape) if kind == "batch" else m_shape, dtype=np.float32)
            arrays.append(_pad(a if kind == "batch" else a[None], (i1 - i0, *shape)))
        else:
            arrays.append(da.full((1, *shape), np.nan, dtype=np.float32))
    if not arrays:
        return da.full((0, *shape), np.nan, dtype=np.float32)
    return da.concatenate(arrays, axis=0)


def open_signals(url_or_study_dir: str | Path, storage_options: dict | None = None,
                 subjects: list[str] | None = None):
    """Open a study's signals lazily as an ``xarray.Dataset``.

    ``url_or_study_dir``: a study folder (its ``signals.zarr`` is used), or the store's path or URL.
    Reads packed and still-staged (committed) trials alike, whether written one per group
    (``write_trial`` of older versions) or several per group (``write_trials``); uncommitted attempts
    are invisible.

    Variables: ``bold`` (subject, trial, time, region), ``fc`` (subject, trial, region, region_to),
    ``neural`` (subject, trial, neural_time, region) if any trial stored it, ``emp_bold``
    (subject, emp_time, region), ``emp_fc`` (subject, region, region_to). Coordinates over
    (subject, trial): ``trial_number`` (the Optuna trial number, -1 = padding), ``seed`` (-1 = padding),
    ``location`` (the trial's stable signals location, as recorded in Optuna and MLflow; "" = padding),
    every parameter and every score (NaN = padding). ``time`` and ``emp_time`` are in s.
    Attributes: ``signals_url``, ``tr_s`` and, where the driver described the store
    (:meth:`SignalStore.describe`), the model, the run settings and the ``git_revision``.
    ``trial`` is a position (0..max trials-1); subjects with fewer trials are NaN-padded.
    """
    import dask.array as da
    import xarray as xr

    url = resolve_signals_url(url_or_study_dir, storage_options)
    sig = SignalStore(url, storage_options, read_only=True)
    sids = sig.subjects() if subjects is None else list(subjects)
    def subject_info(sid: str) -> tuple[dict, dict | None, dict[str, tuple[int, ...]]]:
        g = open_group(sig.zstore, f"subjects/{sid}/empirical")
        attrs = g.attrs.asdict() if g is not None and g.attrs.get("complete") else None
        shp = {}
        if attrs:
            for var in ("bold", "fc") if attrs.get("has_bold") else ("fc",):
                shp[var] = sync(_shape(sig, f"subjects/{sid}/empirical/{var}"))
        return sig.entries(sid), attrs, shp

    # a few small metadata reads per subject: overlap them (object stores have high latency)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(16, max(len(sids), 1))) as pool:
        infos = dict(zip(sids, pool.map(subject_info, sids)))
    entries = {sid: infos[sid][0] for sid in sids}
    emp_attrs = {sid: infos[sid][1] for sid in sids}
    emp_shapes = {sid: infos[sid][2] for sid in sids}

    n_trials = max((len(e) for e in entries.values()), default=0)
    shapes: dict[str, list[int]] = {}
    for e in entries.values():
        for m in e.values():
            for var, shp in m.get("shapes", {}).items():
                cur = shapes.setdefault(var, list(shp))
                shapes[var] = [max(a, b) for a, b in zip(cur, shp)]
    n_regions = max([shapes.get("bold", [0, 0])[1]]
                    + [len(a.get("labels") or []) for a in emp_attrs.values() if a])

    data_vars: dict[str, Any] = {}
    dims = {"bold": ("time", "region"), "fc": ("region", "region_to"), "neural": ("neural_time", "region")}
    for var, shp in shapes.items():
        shp = (shp[0], n_regions) if var != "fc" else (n_regions, n_regions)
        per_subject = [_pad(_subject_var(sig, sid, entries[sid], var, shp), (n_trials, *shp)) for sid in sids]
        data_vars[var] = (("subject", "trial", *dims[var]), da.stack(per_subject) if per_subject
                          else da.zeros((0, n_trials, *shp), dtype=np.float32))

    # empirical signals
    emp_t = max([0] + [emp_shapes[sid]["bold"][0] for sid in sids if "bold" in emp_shapes[sid]])
    if any(emp_attrs.values()):
        import dask

        def empirical(sid: str, var: str, present: bool, shape: tuple[int, ...]):
            """A subject's empirical array, lazily loaded and NaN-padded to ``shape`` (all NaN if absent)."""
            if not present:
                return da.full(shape, np.nan, dtype=np.float32)
            d = da.from_delayed(dask.delayed(_load, pure=True)(url, sig.storage_options,
                                                              f"subjects/{sid}/empirical/{var}"),
                                shape=emp_shapes[sid][var], dtype=np.float32)
            return _pad(d, shape)

        eb = [empirical(sid, "bold", bool(emp_attrs[sid] and emp_attrs[sid].get("has_bold")), (emp_t, n_regions))
              for sid in sids]
        ef = [empirical(sid, "fc", bool(emp_attrs[sid]), (n_regions, n_regions)) for sid in sids]
        if emp_t:
            data_vars["emp_bold"] = (("subject", "emp_time", "region"), da.stack(eb))
        data_vars["emp_fc"] = (("subject", "region", "region_to"), da.stack(ef))

    # coordinates
    def grid(fill, dtype):
        return np.full((len(sids), n_trials), fill, dtype=dtype)

    number, seed = grid(-1, np.int64), grid(-1, np.int64)
    location = grid("", object)
    param_names = sorted({k for e in entries.values() for m in e.values() for k in m.get("params", {})})
    score_names = sorted({k for e in entries.values() for m in e.values() for k in m.get("scores", {})})
    params = {k: grid(np.nan, np.float64) for k in param_names}
    scores = {k: grid(np.nan, np.float64) for k in score_names}
    for i, sid in enumerate(sids):
        for j, (n, m) in enumerate(entries[sid].items()):
            number[i, j], seed[i, j] = n, int(m.get("seed", -1))
            location[i, j] = m.get("location", "")
            for k, v in m.get("params", {}).items():
                params[k][i, j] = np.nan if v is None else v
            for k, v in m.get("scores", {}).items():
                scores[k][i, j] = np.nan if v is None else v
    reserved = {"subject", "trial", "time", "region", "region_to", "emp_time", "neural_time",
                "trial_number", "seed", "location", "tr_s", *data_vars}
    coords: dict[str, Any] = {"subject": np.array(sids, dtype=object), "trial": np.arange(n_trials),
                              "trial_number": (("subject", "trial"), number), "seed": (("subject", "trial"), seed),
                              "location": (("subject", "trial"), location)}
    for k, v in {**params, **scores}.items():
        coords[k if k not in reserved else f"param_{k}"] = (("subject", "trial"), v)
    tr = [next((m.get("tr_s") for m in entries[sid].values()), None) for sid in sids]
    tr_known = [t for t in tr if t]
    tr_s = float(tr_known[0]) if tr_known else 1.0
    if "bold" in shapes:
        coords["time"] = np.arange(shapes["bold"][0]) * tr_s
    emp_tr = [a.get("tr_s") for a in emp_attrs.values() if a and a.get("tr_s")]
    if emp_t:
        coords["emp_time"] = np.arange(emp_t) * float(emp_tr[0] if emp_tr else tr_s)
    labels = _labels(emp_attrs, n_regions)
    coords["region"] = labels
    coords["region_to"] = labels
    coords["tr_s"] = ("subject", np.array([np.nan if t is None else t for t in tr], dtype=float))
    described = sig.description()
    about = {**(described["simulation"] or {}), "git_revision": described["git_revision"]}
    ds = xr.Dataset(data_vars, coords=coords, attrs={**{k: v for k, v in about.items() if v is not None},
                                                      "signals_url": url, "tr_s": tr_s})
    return ds


def _labels(emp_attrs: dict[str, dict | None], n_regions: int) -> np.ndarray:
    """Region labels shared by every subject with empirical data, else region indices as strings."""
    sets = {tuple(a["labels"]) for a in emp_attrs.values() if a and a.get("labels")}
    if len(sets) == 1:
        (labels,) = sets
        if len(labels) == n_regions:
            return np.array(labels, dtype=object)
    return np.array([str(i) for i in range(n_regions)], dtype=object)


async def _shape(sig: SignalStore, path: str) -> tuple[int, ...]:
    import json

    from zarr.core.buffer import default_buffer_prototype

    buf = await sig.zstore.get(f"{path}/zarr.json", prototype=default_buffer_prototype())
    if buf is None:
        raise StoreError(f"missing array metadata {path}/zarr.json in {sig.url}")
    return tuple(json.loads(buf.to_bytes())["shape"])
