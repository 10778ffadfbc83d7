"""A model's parameter array: one mapping name -> value per trial becomes [param, region, batch] (numpy).

Shared by the simulator (:mod:`explorer.sim.simulator`) and the parameter room's FIC step
(:func:`explorer.params.subject.with_fic`).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from explorer.errors import ModelError
from explorer.models.base import Model

__all__ = ["param_array"]


def param_array(model: Model, params: Sequence[Mapping[str, Any]], n: int) -> np.ndarray:
    """Parameters [param, region, batch] from one mapping per trial (missing names take defaults).

    Raises ModelError for unknown names (listing the valid ones), arrays for parameters that are
    not per-region or of the wrong length, non-finite values and values outside hard limits.
    """
    names = model.param_names
    B = len(params)
    p = np.empty((len(names), n, B), dtype=np.float64)
    for k, par in enumerate(model.params):
        p[k] = par.default
    for b, trial in enumerate(params):
        if not isinstance(trial, Mapping):
            raise ModelError(f"trial {b}: parameters must be a mapping name -> value, got {type(trial).__name__}")
        for name, value in trial.items():
            par = model.param(name)
            k = names.index(name)
            arr = np.asarray(value, dtype=np.float64)
            if arr.ndim == 0:
                p[k, :, b] = float(arr)
            elif arr.ndim == 1 and par.per_region:
                if arr.shape[0] != n:
                    raise ModelError(f"trial {b}: parameter {name!r} of model {model.name!r} has "
                                     f"{arr.shape[0]} values; give one per region ({n}) or a scalar")
                p[k, :, b] = arr
            elif arr.ndim == 1:
                raise ModelError(f"trial {b}: parameter {name!r} of model {model.name!r} is not per-region; "
                                 f"give a scalar")
            else:
                raise ModelError(f"trial {b}: parameter {name!r} must be a scalar or a length-{n} array")
            vals = p[k, :, b]
            if not np.all(np.isfinite(vals)):
                raise ModelError(f"trial {b}: parameter {name!r} of model {model.name!r} must be finite")
            bad = (vals < par.hard_low) | (vals > par.hard_high)
            if np.any(bad):
                raise ModelError(
                    f"trial {b}: parameter {name!r} = {vals[bad][0]:g} of model {model.name!r} is outside its "
                    f"hard limits [{par.hard_low:g}, {par.hard_high:g}] {par.unit}")
    return p
