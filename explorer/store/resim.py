"""The report's re-simulation cache: one FC per (connectome, simulation key) under
``report/<connectome>/<key>/`` (never Optuna trials), written by the report's driver, visible once
its commit marker (params, seed, scores) is written, after the array."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from explorer.errors import StoreError
from explorer.store import nodes
from explorer.store.urls import check_id


def resim_path(connectome: str, key: str) -> str:
    """``report/<connectome>/<key>``, both checked as path components."""
    return f"report/{check_id('connectome', connectome)}/{check_id('simulation key', key)}"


def floats(d: Mapping[str, Any] | None) -> dict[str, float]:
    """``d`` with float values; :class:`StoreError` naming the first value that is not a number."""
    out: dict[str, float] = {}
    for k, v in (d or {}).items():
        try:
            out[str(k)] = float(v)
        except (TypeError, ValueError):
            raise StoreError(f"value {k}={v!r} is not a number; params and scores must be scalars") from None
    return out


def write_resim(zstore, connectome: str, key: str, fc: np.ndarray | None, params: Mapping[str, Any],
                seed: int, scores: Mapping[str, float]) -> None:
    """Store one re-simulation's FC (None when it diverged); ``params`` values: scalars or sequences."""
    import zarr

    path = resim_path(connectome, key)
    group = zarr.create_group(zstore, path=path, overwrite=True, attributes={"committed": False})
    if fc is not None:
        nodes.write_array(zstore, f"{path}/fc", np.asarray(fc, dtype=np.float32))
    group.update_attributes({"committed": True, "diverged": fc is None, "seed": int(seed),
                             "params": {k: (list(map(float, v)) if isinstance(v, (list, tuple, np.ndarray))
                                            else float(v)) for k, v in params.items()},
                             "scores": floats(scores)})


def read_resim(zstore, connectome: str, key: str) -> dict[str, Any] | None:
    """``{"fc": (N, N) float32 or None, "scores", "seed", "params"}`` of a committed re-simulation, or None."""
    path = resim_path(connectome, key)
    g = nodes.open_group(zstore, path)
    if g is None or not g.attrs.get("committed"):
        return None
    attrs = g.attrs.asdict()
    fc = None if attrs.get("diverged") else nodes.read_array(zstore, f"{path}/fc")
    return {"fc": fc, "scores": dict(attrs.get("scores", {})), "seed": attrs.get("seed"),
            "params": dict(attrs.get("params", {}))}
