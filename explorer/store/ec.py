"""The EC stage's results: one group per (subject, fit key) under ``ec/<subject>/<key>/``.

A group holds the fitted EC (``weights``, float64 (N, N)), the SC it started from (``sc``) and the fit
trace (``trace``, float64 (iterations + 1, 3)); its attributes hold the fit's summary, the global
parameters it started from and ``committed``, written last: a group without it (a driver killed while
writing) is invisible and overwritten by the next fit. Written by the driver that holds the subject's
lease, so no two processes write one group. A new key (new best global parameters after ``extend``,
other options) adds a group beside the old ones: nothing stored is lost.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from explorer.errors import StoreError
from explorer.store import nodes
from explorer.store.urls import check_id


def ec_path(subject_id: str, key: str | None = None) -> str:
    """``ec/<subject>`` or ``ec/<subject>/<key>``, checked as path components."""
    base = f"ec/{check_id('subject id', subject_id)}"
    return base if key is None else f"{base}/{check_id('EC key', key)}"


def write_ec(zstore, subject_id: str, key: str, weights: np.ndarray, sc: np.ndarray, trace: np.ndarray,
             summary: Mapping[str, Any], params: Mapping[str, Any], best_trial: int) -> None:
    """Store one subject's EC fit; visible once its ``committed`` attribute is written (last)."""
    import zarr

    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 2 or weights.shape[0] != weights.shape[1] or np.shape(sc) != weights.shape:
        raise StoreError(f"subject {subject_id}: EC and SC must be the same (region, region) shape, got "
                         f"{weights.shape} and {np.shape(sc)}")
    path = ec_path(subject_id, key)
    group = zarr.create_group(zstore, path=path, overwrite=True, attributes={"committed": False})
    nodes.write_array(zstore, f"{path}/weights", weights)
    nodes.write_array(zstore, f"{path}/sc", np.asarray(sc, dtype=np.float64))
    nodes.write_array(zstore, f"{path}/trace", np.asarray(trace, dtype=np.float64))
    group.update_attributes({"committed": True, "key": key, "summary": dict(summary), "best_trial": int(best_trial),
                             "params": {k: (np.asarray(v, dtype=float).tolist() if np.ndim(v) else float(v))
                                        for k, v in params.items()},
                             "fitted_at": time.time()})


def _attrs(zstore, path: str) -> dict[str, Any] | None:
    g = nodes.open_group(zstore, path)
    if g is None or not g.attrs.get("committed"):
        return None
    return g.attrs.asdict()


def _committed(zstore, subject_id: str) -> list[tuple[str, dict[str, Any]]]:
    """``(key, attributes)`` of ``subject_id``'s committed EC fits, oldest first."""
    g = nodes.open_group(zstore, ec_path(subject_id))
    if g is None:
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        names = [name for name, _ in g.groups()]
    done = [(k, a) for k in names if (a := _attrs(zstore, ec_path(subject_id, k))) is not None]
    return sorted(done, key=lambda ka: ka[1]["fitted_at"])


def ec_keys(zstore, subject_id: str) -> list[str]:
    """The keys of ``subject_id``'s committed EC fits, oldest first."""
    return [k for k, _ in _committed(zstore, subject_id)]


def read_ec(zstore, subject_id: str, key: str | None = None, *, data: bool = True) -> dict[str, Any] | None:
    """The EC fit of ``subject_id`` with ``key`` (None: the newest), or None if there is none.

    ``{"key", "summary", "params", "best_trial", "fitted_at"}`` and, with ``data``, the arrays
    ``"weights"``, ``"sc"`` and ``"trace"``.
    """
    if key is None:
        fits = _committed(zstore, subject_id)
        if not fits:
            return None
        key, attrs = fits[-1]
    else:
        attrs = _attrs(zstore, ec_path(subject_id, key))
        if attrs is None:
            return None
    path = ec_path(subject_id, key)
    out = {k: attrs.get(k) for k in ("key", "summary", "params", "best_trial", "fitted_at")}
    if data:
        for name in ("weights", "sc", "trace"):
            out[name] = nodes.read_array(zstore, f"{path}/{name}")
    return out
