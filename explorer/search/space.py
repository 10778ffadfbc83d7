"""Parameter space of a study config -> Optuna distributions and full parameter sets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:  # pragma: no cover
    from optuna.distributions import BaseDistribution

    from explorer.config import StudyConfig


def distributions(cfg: "StudyConfig") -> dict[str, "BaseDistribution"]:
    """Free parameters as ``FloatDistribution(low, high, log)``, in config order."""
    from optuna.distributions import FloatDistribution

    return {name: FloatDistribution(low, high, log=log) for name, (low, high, log) in cfg.free_bounds().items()}


def fixed_params(cfg: "StudyConfig") -> dict[str, Any]:
    """Fixed parameters as given (floats, or lists for per-region parameters)."""
    return {k: (list(v) if isinstance(v, list) else float(v)) for k, v in cfg.params.fixed.items()}


def trial_params(cfg: "StudyConfig", free: Mapping[str, float]) -> dict[str, Any]:
    """The parameter set a simulator receives: fixed parameters plus the trial's free values."""
    out = fixed_params(cfg)
    out.update({k: float(v) for k, v in free.items()})
    return out
