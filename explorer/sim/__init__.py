"""The batched brain-network simulator: delays, coupling, noise, online monitors, numba kernels.

    from explorer.sim import simulate, warmup
    ds = simulate("rww_ei", W, L, params=[{"G": 0.5}, {"G": 1.2}], duration_s=60, bold_tr_s=2.0)

Attributes are imported lazily so that ``explorer bench --help`` does not load numba or xarray.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["simulate", "warmup", "run_batch"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("explorer.sim.simulator"), name)
    raise AttributeError(f"module 'explorer.sim' has no attribute {name!r}")
