"""The batched brain-network simulator: delays, coupling, noise, online monitors, numba kernels.

    from explorer.sim import RunSettings, simulate, warmup
    ds = simulate("rww_ei", W, L, params=[{"G": 0.5}, {"G": 1.2}], duration_s=60, bold_tr_s=2.0)
    ds = simulate("rww_ei", W, L, {"G": 0.5}, settings=RunSettings(duration_s=60), bold_tr_s=2.0)

``RunSettings`` (:mod:`explorer.sim.settings`) holds the run settings' one set of defaults and
their one check, shared with the study config's ``simulation`` section.

simulate, simulate_arrays (the same without xarray), warmup and run_batch are imported lazily so that ``explorer bench --help`` does not load numba or xarray.
"""

from __future__ import annotations

import importlib
from typing import Any

from explorer.sim.settings import RunSettings

__all__ = ["simulate", "simulate_arrays", "warmup", "run_batch", "RunSettings"]


def __getattr__(name: str) -> Any:
    if name in ("simulate", "simulate_arrays", "warmup", "run_batch"):
        return getattr(importlib.import_module("explorer.sim.simulator"), name)
    raise AttributeError(f"module 'explorer.sim' has no attribute {name!r}")
