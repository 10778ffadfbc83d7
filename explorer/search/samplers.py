"""Sampler factory: tpe | gp | cmaes | random | qmc | grid, seeded per subject and per session."""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

from explorer.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from optuna.samplers import BaseSampler

    from explorer.config import StudyConfig


def subject_seed(seed: int, subject: str, offset: int = 0) -> int:
    """A stable 31-bit seed for one subject's sampler.

    ``offset`` (the number of trials the study already holds) makes a resumed session draw a
    fresh random stream instead of replaying the first session's draws (which would repeat
    parameter sets); a fresh study (offset 0) is reproducible from ``seed``.
    """
    return zlib.crc32(f"{seed}|{subject}|{offset}".encode()) & 0x7FFFFFFF


def trial_seed(seed: int, subject: str, number: int) -> int:
    """The simulator noise seed of trial ``number`` of ``subject`` (recorded in its user_attrs)."""
    return zlib.crc32(f"noise|{seed}|{subject}|{number}".encode()) & 0x3FFFFFFF


def make_sampler(cfg: "StudyConfig", seed: int) -> "BaseSampler":
    """Build the configured sampler; ``sampler.options`` go to its constructor."""
    import optuna

    name = cfg.sampler.name
    opts = dict(cfg.sampler.options)
    multi = len(cfg.objectives) > 1
    try:
        if name == "tpe":
            opts.setdefault("constant_liar", True)  # several trials in flight per subject
            return optuna.samplers.TPESampler(seed=seed, **opts)
        if name == "random":
            return optuna.samplers.RandomSampler(seed=seed, **opts)
        if name == "qmc":
            return optuna.samplers.QMCSampler(seed=seed, **opts)
        if name == "grid":
            return _grid_sampler_class()(dict(cfg.sampler.grid or {}), seed=seed, **opts)
        if name == "cmaes":
            if multi:
                raise ConfigError("field 'sampler.name': cmaes is single-objective; use tpe for "
                                  f"objective {cfg.objectives}")
            try:
                import cmaes  # noqa: F401
            except ImportError:
                raise ConfigError("field 'sampler.name': cmaes needs the `cmaes` package "
                                  "(pip install cmaes)") from None
            return optuna.samplers.CmaEsSampler(seed=seed, **opts)
        if name == "gp":
            try:
                import torch  # noqa: F401
            except ImportError:
                raise ConfigError("field 'sampler.name': gp needs PyTorch (pip install torch); "
                                  "or use tpe") from None
            return optuna.samplers.GPSampler(seed=seed, **opts)
    except TypeError as exc:
        raise ConfigError(f"field 'sampler.options': {exc}") from None
    raise ConfigError(f"field 'sampler.name': unknown sampler {name!r}")


def _grid_sampler_class():
    """GridSampler for ask/tell: its ``after_trial`` calls ``study.stop()``, which Optuna forbids
    outside ``optimize``; the driver's per-subject budget (the grid size) stops it instead."""
    import optuna

    class AskTellGridSampler(optuna.samplers.GridSampler):
        def after_trial(self, study, trial, state, values) -> None:  # noqa: ANN001
            return None

    return AskTellGridSampler
