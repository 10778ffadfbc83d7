"""Study configs: every invalid field is a ConfigError naming it; provenance; env overrides."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from explorer.config import DEFAULT_TRIALS, load_config, parse_config
from explorer.errors import ConfigError, OptionError
from explorer.layout import mlflow_uri, optuna_storage_url, ray_address, zarr_url
from explorer.study.frozen import incompatible_fields, load_frozen, save_frozen

REPO = Path(__file__).resolve().parent.parent

BASE = {
    "name": "t",
    "cohort": {"source": "demo", "subjects": ["NAP_001"]},
    "model": "rww_ei",
    "params": {"free": {"G": {"low": 0.5, "high": 3.0}, "w_plus": {}}, "fixed": {"J_NMDA": 0.15}},
}


def cfg_with(**changes):
    data = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        node = data
        keys = dotted.split("__")
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        if value is _DELETE:
            node.pop(keys[-1])
        else:
            node[keys[-1]] = value
    return data


_DELETE = object()


def error_of(data) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data, "test.yaml")
    return str(info.value)


def test_minimal_config_fills_defaults():
    cfg = parse_config(copy.deepcopy(BASE))
    assert cfg.n_trials == DEFAULT_TRIALS
    assert cfg.objectives == ["fc_r"] and cfg.directions == ["maximize"]
    assert cfg.free_bounds() == {"G": (0.5, 3.0, False), "w_plus": (1.0, 2.0, False)}
    assert cfg.study_dir == Path("studies/t")
    assert cfg.sampler.name == "tpe" and cfg.store.mode == "all" and cfg.ray.batch_size == 64 and cfg.ray.call_s == 2.0


@pytest.mark.parametrize("path", sorted((REPO / "experiments").glob("*.yaml")))
def test_shipped_experiments_are_valid(path):
    cfg = load_config(path)
    assert cfg.name == path.stem


@pytest.mark.parametrize("changes, field, words", [
    ({"bogus": 1}, "bogus", "unknown key"),
    ({"simulation__dt": 0.1}, "simulation.dt", "unknown key"),
    ({"sampler__nme": "tpe"}, "sampler.nme", "unknown key"),
    ({"params__free__G__lo": 1}, "params.free.G.lo", "unknown key"),
    ({"cohort": _DELETE}, "cohort", "missing"),
    ({"cohort__source": ""}, "cohort.source", "empty"),
    ({"model": "nope"}, "model", "rww_ei"),
    ({"params__free__Gx": {}}, "params.free.Gx", "valid"),
    ({"params__fixed__zzz": 1.0}, "params.fixed.zzz", "valid"),
    ({"params__free__G": {"low": 2.0, "high": 1.0}}, "params.free.G", "inverted"),
    ({"params__free__G": {"low": -1.0, "high": 1.0}}, "params.free.G", "hard limits"),
    ({"params__free__G": {"low": 0.0, "high": 1.0, "log": True}}, "params.free.G", "log"),
    ({"params__fixed__G": 1.0}, "params", "both free and fixed"),
    ({"params__fixed__J_NMDA": -1.0}, "params.fixed.J_NMDA", "hard limits"),
    ({"params__free": {"w_plus": {}}, "params__fixed": {"G": [0.1, 0.2]}}, "params.fixed.G", "scalar"),
    ({"params__free": {}}, "params.free", "no free parameters"),
    ({"sampler__name": "grid"}, "sampler.grid", "needs values"),
    ({"sampler__name": "grid", "sampler__grid": {"G": [1.0]}}, "sampler.grid", "missing for free parameters ['w_plus']"),
    ({"sampler__name": "grid", "sampler__grid": {"G": [9.0], "w_plus": [1.5]}}, "sampler.grid.G", "outside"),
    ({"sampler__grid": {"G": [1.0], "w_plus": [1.5]}}, "sampler.grid", "only used by sampler 'grid'"),
    ({"sampler__name": "annealing"}, "sampler.name", "tpe"),
    ({"objective": "fc_q"}, "objective", "unknown objective"),
    ({"trials": 0}, "trials", "greater than"),
    ({"store__mode": "some"}, "store.mode", "all"),
    ({"simulation__duration_s": -1}, "simulation.duration_s", "> 0"),
    ({"simulation__dt_ms": 0.3}, "simulation.dt_ms", "transient_s (20 s) is not a whole multiple of dt = 0.3 ms"),
    ({"simulation__integrator": "rk4"}, "simulation.integrator", "['euler', 'heun'], got 'rk4'"),
    ({"simulation__bold_monitor": "nope"}, "simulation.bold_monitor", "['balloon', 'sample'], got 'nope'"),
    ({"simulation__dtype": "float16"}, "simulation.dtype", "['float64', 'float32'], got 'float16'"),
    ({"simulation__repeats": 0}, "simulation.repeats", "integer >= 1"),
    ({"cohort__normalise": "mean"}, "cohort.normalise", "['max', 'none', 'log1p+max']"),
    ({"cohort__features__filter_order": 0}, "cohort.features.filter_order", "integer >= 1"),
    ({"cohort__features__windw": 3}, "cohort.features.windw", "unknown key"),
    ({"cohort__features__bandpass": [0.1, 0.01]}, "cohort.features.bandpass", "low < high"),
    ({"name": "a/b"}, "name", "plain folder name"),
    ({"ray__batch_size": 0}, "ray.batch_size", "greater than"),
])
def test_invalid_field_is_named(changes, field, words):
    msg = error_of(cfg_with(**changes))
    assert f"field '{field}'" in msg, msg
    assert words in msg, msg


def test_unknown_parameter_lists_valid_ones():
    msg = error_of(cfg_with(params__free__Gx={}))
    assert "'w_plus'" in msg and "'G'" in msg


def test_grid_sampler_trials_default_to_grid_size_and_cannot_exceed_it():
    cfg = parse_config(cfg_with(sampler__name="grid", sampler__grid={"G": [1.0, 2.0], "w_plus": [1.2, 1.4, 1.6]}))
    assert cfg.n_trials == 6
    msg = error_of(cfg_with(sampler__name="grid", sampler__grid={"G": [1.0], "w_plus": [1.2]}, trials=5))
    assert "field 'trials'" in msg


def test_multi_objective_directions():
    cfg = parse_config(cfg_with(objective=["fc_r", "fcd_ks"]))
    assert cfg.directions == ["maximize", "minimize"]


def test_load_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(tmp_path / "list.yaml")


def test_load_config_overrides_and_relative_cohort_path(tmp_path, monkeypatch):
    data = cfg_with(cohort__source="cohort_dir")
    (tmp_path / "cohort_dir").mkdir()
    (tmp_path / "x.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.chdir(REPO)  # relative to the config's folder when not found in the cwd
    cfg = load_config(tmp_path / "x.yaml", trials=7, **{"ray.actors": 3, "cohort.skip_bad": True})
    assert cfg.trials == 7 and cfg.ray.actors == 3 and cfg.cohort.skip_bad
    assert cfg.cohort.source == str((tmp_path / "cohort_dir").resolve())


def test_frozen_config_round_trip_with_provenance(tmp_path):
    cfg = parse_config(cfg_with(trials=5))
    path = save_frozen(cfg, tmp_path)
    doc = yaml.safe_load(path.read_text())
    prov = doc["provenance"]
    assert prov["versions"]["optuna"] and prov["versions"]["numpy"] and prov["versions"]["python"]
    assert "git_revision" in prov
    assert load_frozen(tmp_path) == cfg
    with pytest.raises(ConfigError, match="study folder"):
        load_frozen(tmp_path / "nowhere")


def test_storage_defaults_and_environment_overrides(tmp_path, monkeypatch):
    cfg = parse_config(copy.deepcopy(BASE))
    for var in ("EXPLORER_OPTUNA_STORAGE", "EXPLORER_MLFLOW_URI", "EXPLORER_ZARR_URL", "EXPLORER_RAY_ADDRESS"):
        monkeypatch.delenv(var, raising=False)
    assert optuna_storage_url(cfg, tmp_path) == str(tmp_path / "optuna.log")
    assert mlflow_uri(cfg, tmp_path) == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert zarr_url(cfg, tmp_path) == str(tmp_path.resolve() / "signals.zarr")
    assert ray_address(cfg) is None
    monkeypatch.setenv("EXPLORER_OPTUNA_STORAGE", "postgresql://u:p@db/optuna")
    monkeypatch.setenv("EXPLORER_MLFLOW_URI", "http://mlflow:5000")
    monkeypatch.setenv("EXPLORER_ZARR_URL", "s3://bucket/signals.zarr")
    monkeypatch.setenv("EXPLORER_RAY_ADDRESS", "auto")
    assert optuna_storage_url(cfg, tmp_path) == "postgresql://u:p@db/optuna"
    assert mlflow_uri(cfg, tmp_path) == "http://mlflow:5000"
    assert zarr_url(cfg, tmp_path) == "s3://bucket/signals.zarr"
    assert ray_address(cfg) == "auto"


def test_incompatible_changes_are_detected():
    old = parse_config(copy.deepcopy(BASE))
    same = parse_config(cfg_with(trials=100, cohort__subjects=["NAP_001", "NAP_002"], ray__actors=4))
    assert incompatible_fields(old, same) == []
    other = parse_config(cfg_with(model="hopf", params={"free": {"G": {}}}, cohort__normalise="none"))
    assert set(incompatible_fields(old, other)) == {"model", "params", "cohort.normalise"}


def test_bad_run_settings_are_refused_at_parse_time_with_the_run_settings_check():
    from explorer.sim import RunSettings

    bad = {"dt_ms": 0.3, "integrator": "rk4", "bold_monitor": "nope", "dtype": "float16"}
    for key, value in bad.items():
        with pytest.raises(OptionError) as expected:
            RunSettings(**{key: value})
        (field, message), = expected.value.problems
        msg = error_of(cfg_with(**{f"simulation__{key}": value}))
        assert msg == f"invalid study config test.yaml: field 'simulation.{field}': {message}"
    msg = error_of(cfg_with(simulation={"integrator": "rk4", "dtype": "float16"}))
    assert "field 'simulation.integrator'" in msg and "field 'simulation.dtype'" in msg


def test_simulation_is_run_settings_with_one_set_of_defaults():
    from explorer.sim import RunSettings

    cfg = parse_config(copy.deepcopy(BASE))
    assert type(cfg.simulation) is RunSettings and cfg.simulation == RunSettings()
    assert cfg.simulation.simulate_kwargs(2.0) == RunSettings().simulate_kwargs(2.0)
    cfg = parse_config(cfg_with(simulation={"duration_s": 60, "dt_ms": 0.5, "bold_tr_s": 2.0, "repeats": 3}))
    assert cfg.simulation == RunSettings(duration_s=60.0, dt_ms=0.5, bold_tr_s=2.0, repeats=3)
    assert yaml.safe_load(cfg.to_yaml())["simulation"] == {**vars(RunSettings()), "duration_s": 60.0,
                                                           "dt_ms": 0.5, "bold_tr_s": 2.0, "repeats": 3}


def test_check_tr_is_the_run_settings_check_with_the_subjects_tr():
    from explorer.config import check_tr

    cfg = parse_config(cfg_with(simulation={"duration_s": 70, "dt_ms": 0.7, "transient_s": 0.7}))
    check_tr(cfg, 0.7, "subject A")
    with pytest.raises(ConfigError) as info:
        check_tr(cfg, 0.72, "subject B")
    (field, message), = cfg.simulation.problems(0.72, tr_what="the TR of subject B")
    assert str(info.value) == f"field 'simulation.{field}': {message}"
    assert "the TR of subject B (0.72 s) is not a whole multiple of dt = 0.7 ms" in message
    with pytest.raises(ConfigError, match="field 'simulation.duration_s': the TR of subject C .* longer"):
        check_tr(cfg, 77.0, "subject C")


def test_features_are_feature_options_and_round_trip():
    from explorer.scoring.options import FeatureOptions

    cfg = parse_config(cfg_with(cohort__features={"bandpass": [0.02, 0.08], "filter_order": 4, "fcd_window": 20}))
    f = cfg.cohort.features
    assert type(f) is FeatureOptions
    assert f == FeatureOptions(bandpass=(0.02, 0.08), filter_order=4, fcd_window=20)
    dumped = cfg.model_dump(mode="json")["cohort"]["features"]
    assert dumped == f.to_dict() and dumped["bandpass"] == [0.02, 0.08] and dumped["filter_order"] == 4
    assert FeatureOptions.from_dict(dumped) == f
    assert parse_config(yaml.safe_load(cfg.to_yaml())).cohort.features == f
    assert parse_config(copy.deepcopy(BASE)).cohort.features == FeatureOptions()


def test_cohort_options_come_from_the_config():
    from explorer.cohort import CohortOptions
    from explorer.scoring.options import FeatureOptions

    cfg = parse_config(cfg_with(cohort={"source": "demo", "subjects": ["NAP_001"], "drop": [0, "x"],
                                        "normalise": "none", "tr_s": 0.8, "split": 2, "skip_bad": True,
                                        "features": {"fcd_window": 20}}))
    opts = cfg.cohort.options
    assert type(opts) is CohortOptions
    assert opts == CohortOptions(drop=[0, "x"], normalise="none", tr_s=0.8, split=2, skip_bad=True,
                                 features=FeatureOptions(fcd_window=20))
    assert opts == CohortOptions.from_dict(cfg.cohort.model_dump(mode="python", exclude={"source", "subjects"}))
    assert opts.features is cfg.cohort.features
    assert parse_config(copy.deepcopy(BASE)).cohort.options == CohortOptions()


def test_a_features_change_is_an_incompatible_cohort_change():
    old = parse_config(copy.deepcopy(BASE))
    new = parse_config(cfg_with(cohort__features={"filter_order": 4}))
    assert incompatible_fields(old, new) == ["cohort.features"]
    assert incompatible_fields(old, parse_config(yaml.safe_load(old.to_yaml()))) == []
