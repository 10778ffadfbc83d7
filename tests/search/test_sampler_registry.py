"""Contract of the sampler registry (explorer.params.samplers): every registered sampler validates in a
config, builds through make_sampler as its optuna class, is seeded, and takes exactly its listed options."""

from __future__ import annotations

import importlib.util
import inspect

import optuna
import pytest

from explorer.config import parse_config
from explorer.errors import ConfigError
from explorer.params.samplers import DEFAULT_SAMPLER, SAMPLERS, sampler_spec
from explorer.search import make_sampler

optuna.logging.set_verbosity(optuna.logging.WARNING)

GRID = {"G": [0.5, 1.0, 2.0], "w_plus": [1.2, 1.6]}


def config_naming(name: str, **sampler):
    spec = SAMPLERS[name]
    section = {"name": name, **({"grid": GRID} if spec.grid else {}), **sampler}
    return parse_config({"name": "s", "cohort": {"source": "demo"}, "model": "rww_ei",
                         "params": {"free": {"G": {"low": 0.5, "high": 3.0}, "w_plus": {}}},
                         "trials": 6, "sampler": section})


def first_draws(sampler: optuna.samplers.BaseSampler, n: int = 3) -> list[dict[str, float]]:
    study = optuna.create_study(sampler=sampler)
    out = []
    for _ in range(n):
        t = study.ask({"G": optuna.distributions.FloatDistribution(0.5, 3.0),
                       "w_plus": optuna.distributions.FloatDistribution(1.0, 2.0)})
        out.append(dict(t.params))
        study.tell(t, t.params["G"] - t.params["w_plus"])
    return out


@pytest.fixture(params=list(SAMPLERS))
def name(request) -> str:
    spec = SAMPLERS[request.param]
    if spec.needs is not None and importlib.util.find_spec(spec.needs) is None:
        pytest.skip(f"sampler {request.param} needs {spec.needs}, which is not installed")
    return request.param


def test_a_config_naming_it_validates(name):
    cfg = config_naming(name)
    assert cfg.sampler.name == name
    assert cfg.n_trials == 6


def test_it_builds_as_its_optuna_class(name):
    sampler = make_sampler(config_naming(name), 3)
    assert isinstance(sampler, getattr(optuna.samplers, SAMPLERS[name].optuna_class))


def test_it_is_seeded(name):
    cfg = config_naming(name)
    a, b = first_draws(make_sampler(cfg, 7)), first_draws(make_sampler(cfg, 7))
    assert a == b
    if name != "grid":  # the grid's points are the same whatever the seed; only their order moves
        assert first_draws(make_sampler(cfg, 8)) != a


def test_its_options_are_constructor_keywords_and_others_are_refused(name):
    spec = SAMPLERS[name]
    accepted = set(inspect.signature(getattr(optuna.samplers, spec.optuna_class)).parameters)
    assert set(spec.options) <= accepted - {"seed"}
    assert set(spec.defaults) <= set(spec.options)
    with pytest.raises(ConfigError, match=r"sampler\.options.*bogus"):
        config_naming(name, options={"bogus": 1})


def test_an_unknown_name_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="sampler.name") as err:
        parse_config({"name": "s", "cohort": {"source": "demo"}, "model": "rww_ei",
                      "params": {"free": {"G": {}}}, "sampler": {"name": "annealing"}})
    assert all(n in str(err.value) for n in SAMPLERS)
    with pytest.raises(ConfigError, match="valid samplers: " + ", ".join(SAMPLERS)):
        sampler_spec("annealing")


def test_the_default_is_registered_and_is_what_a_config_gets():
    assert DEFAULT_SAMPLER in SAMPLERS
    cfg = parse_config({"name": "s", "cohort": {"source": "demo"}, "model": "rww_ei", "params": {"free": {"G": {}}}})
    assert cfg.sampler.name == DEFAULT_SAMPLER


def test_a_single_objective_sampler_refuses_several_objectives():
    single = [n for n, s in SAMPLERS.items() if not s.multi_objective]
    assert single  # cmaes
    for n in single:
        with pytest.raises(ConfigError, match="single-objective"):
            parse_config({"name": "s", "cohort": {"source": "demo"}, "model": "rww_ei",
                          "params": {"free": {"G": {}}}, "objective": ["fc_r", "fcd_ks"], "sampler": {"name": n}})
