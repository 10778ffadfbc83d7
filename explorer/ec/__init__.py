"""The EC stage: per-subject effective connectivity fitted analytically (linearised Hopf network).

numpy/scipy only (no ray, optuna, mlflow or zarr). :func:`fit_ec` fits one subject;
:mod:`explorer.ec.linear` holds the covariances and the gradient, :mod:`explorer.ec.options` the
``ec`` section's options. The names below are imported on first use, so that the study config
(which reads :mod:`explorer.ec.options`) does not load the fit and scipy's optimiser for
``explorer --help``.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "fit": ("DIVERGED", "NO_IMPROVEMENT", "OK", "TRACE_COLUMNS", "UNSTABLE_START", "EcFit", "fit_ec"),
    "linear": ("Moments", "empirical_moments", "hopf_jacobian", "moments"),
    "options": ("EC_MODELS", "EcOptions"),
    "targets": ("connection_mask", "empirical_targets", "homotopic_pairs"),
}
_MODULE = {name: module for module, names in _WHERE.items() for name in names}
__all__ = sorted(_MODULE)


def __getattr__(name: str) -> Any:
    if name in _MODULE:
        return getattr(importlib.import_module(f"explorer.ec.{_MODULE[name]}"), name)
    raise AttributeError(f"module 'explorer.ec' has no attribute {name!r}")
