"""Ray actors hosting warm simulators, and the driver that feeds them Optuna trials.

``run_study`` and ``RunResult`` (:mod:`explorer.runner.driver`) are imported on first use, so that
importing ``explorer.runner.commands`` (the CLI's parser) does not load numba, Ray or Optuna.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["RunResult", "run_study"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("explorer.runner.driver"), name)
    raise AttributeError(f"module 'explorer.runner' has no attribute {name!r}")
