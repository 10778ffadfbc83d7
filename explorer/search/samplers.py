"""Sampler factory: the registry's samplers (:mod:`explorer.params.samplers`), seeded per subject and per session."""

from __future__ import annotations

import importlib.util
import zlib
from typing import TYPE_CHECKING

from explorer.errors import ConfigError
from explorer.params.samplers import DEFAULT_SAMPLER, sampler_spec

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


def draw_sampler(cfg: "StudyConfig", subject: str, draw: int) -> "BaseSampler":
    """Deterministic mode (``sampler.deterministic``): the sampler of one draw, the ``draw``-th counted trial
    of ``subject`` (0-based), seeded for it alone.

    The trial then depends on the subject's told history and ``draw`` only: not on how earlier draws used
    the random stream, nor on draws an interruption threw away. A sequence sampler (qmc) keeps one seed
    per subject: its place in the sequence is kept in the study.
    """
    sequence = sampler_spec(cfg.sampler.name).sequence
    return make_sampler(cfg, subject_seed(cfg.sampler.seed, subject, 0 if sequence else draw))


def make_sampler(cfg: "StudyConfig", seed: int) -> "BaseSampler":
    """Build the configured sampler from its registry spec (:data:`~explorer.params.samplers.SAMPLERS`):
    ``optuna.samplers.<spec.optuna_class>`` with ``seed``, the spec's defaults and ``sampler.options``.

    Raises ConfigError naming the field for an unknown sampler, a missing package or a bad option.
    """
    import optuna

    spec = sampler_spec(cfg.sampler.name)
    if spec.needs is not None and importlib.util.find_spec(spec.needs) is None:
        raise ConfigError(f"field 'sampler.name': {cfg.sampler.name} needs the `{spec.needs}` package "
                          f"(pip install {spec.needs}); or use {DEFAULT_SAMPLER}")
    opts = {**spec.defaults, **cfg.sampler.options}
    try:
        if spec.grid:
            return _grid_sampler_class()(dict(cfg.sampler.grid or {}), seed=seed, **opts)
        return getattr(optuna.samplers, spec.optuna_class)(seed=seed, **opts)
    except TypeError as exc:
        raise ConfigError(f"field 'sampler.options': {exc}") from None


def _grid_sampler_class():
    """GridSampler for ask/tell: its ``after_trial`` calls ``study.stop()``, which Optuna forbids
    outside ``optimize``; the driver's per-subject budget (the grid size) stops it instead."""
    import optuna

    class AskTellGridSampler(optuna.samplers.GridSampler):
        def after_trial(self, study, trial, state, values) -> None:  # noqa: ANN001
            return None

    return AskTellGridSampler
