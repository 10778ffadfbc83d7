"""explorer: distributed parameter exploration for virtual brain twins.

The public API, imported lazily so that ``import explorer`` has no side effects
(no JIT compilation, no Ray, no environment changes)::

    from explorer import simulate, load_cohort, open_signals, load_config
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "simulate": "explorer.sim",
    "get_model": "explorer.models",
    "MODELS": "explorer.models",
    "load_cohort": "explorer.cohort",
    "Cohort": "explorer.cohort",
    "Subject": "explorer.cohort",
    "open_signals": "explorer.store",
    "load_config": "explorer.config",
    "StudyConfig": "explorer.config",
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'explorer' has no attribute {name!r}")
