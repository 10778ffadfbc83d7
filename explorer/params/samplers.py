"""The sampler registry: every sampler a study config may name, read by config validation and by
:func:`explorer.search.samplers.make_sampler` alike (no optuna here: config sits below search).

Adding a sampler is one :class:`SamplerSpec` line in :data:`SAMPLERS`; the contract test
(tests/search/test_sampler_registry.py) then checks that it builds, is seeded and validates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from explorer.errors import ConfigError

__all__ = ["SamplerSpec", "SAMPLERS", "DEFAULT_SAMPLER", "sampler_spec"]


@dataclass(frozen=True)
class SamplerSpec:
    """One sampler a study config may name (``sampler.name``).

    optuna_class: its class name in ``optuna.samplers``.
    doc: one line for the config reference.
    options: the constructor keywords ``sampler.options`` may give (``seed`` is always set by explorer).
    defaults: options explorer sets unless ``sampler.options`` gives them.
    multi_objective: whether it handles several objectives.
    needs: the module it needs beyond optuna (import name), or None.
    grid: whether it takes ``sampler.grid`` (every free parameter's values) as its search space.
    sequence: whether its seed fixes one sequence that the study walks along (qmc): deterministic mode then
        keeps one seed per subject instead of seeding each draw.
    """

    optuna_class: str
    doc: str
    options: tuple[str, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)
    multi_objective: bool = True
    needs: str | None = None
    grid: bool = False
    sequence: bool = False


#: sampler name -> its spec; the first is the default
SAMPLERS: dict[str, SamplerSpec] = {
    "tpe": SamplerSpec(
        "TPESampler", "tree-structured Parzen estimator; constant_liar on, as several trials run at once",
        ("consider_prior", "prior_weight", "consider_magic_clip", "consider_endpoints", "n_startup_trials",
         "n_ei_candidates", "multivariate", "group", "warn_independent_sampling", "constant_liar"),
        defaults={"constant_liar": True}),
    "gp": SamplerSpec(
        "GPSampler", "Gaussian-process Bayesian optimisation (needs PyTorch)",
        ("n_startup_trials", "deterministic_objective", "warn_independent_sampling"), needs="torch"),
    "cmaes": SamplerSpec(
        "CmaEsSampler", "CMA evolution strategy, one objective (needs the cmaes package)",
        ("x0", "sigma0", "n_startup_trials", "warn_independent_sampling", "consider_pruned_trials",
         "restart_strategy", "popsize", "inc_popsize", "use_separable_cma", "with_margin", "lr_adapt"),
        multi_objective=False, needs="cmaes"),
    "random": SamplerSpec("RandomSampler", "independent uniform draws"),
    "qmc": SamplerSpec(
        "QMCSampler", "quasi-Monte Carlo (scrambled Sobol or Halton) sequence",
        ("qmc_type", "scramble", "warn_asynchronous_seeding", "warn_independent_sampling"), sequence=True),
    "grid": SamplerSpec(
        "GridSampler", "every point of sampler.grid once (trials default to the grid size)", grid=True),
}

DEFAULT_SAMPLER = next(iter(SAMPLERS))


def sampler_spec(name: str) -> SamplerSpec:
    """The spec of sampler ``name``; ConfigError naming ``sampler.name`` and the valid samplers otherwise."""
    try:
        return SAMPLERS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"field 'sampler.name': unknown sampler {name!r}; valid samplers: "
                          f"{', '.join(SAMPLERS)}") from None
