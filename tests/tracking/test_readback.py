"""After a real tiny study, its embedded MLflow store read back with the plain MLflow client agrees with Optuna."""

from __future__ import annotations

import json
import math

import pytest
from optuna.trial import TrialState

from explorer.layout import embedded_mlflow_uri, mlflow_uri, optuna_storage_url
from explorer.runner.driver import run_study
from explorer.search import list_subject_studies, open_storage, open_subject_study

from study_configs import fast_config

# the MLflow metrics every child run has besides its scores
TIME_METRICS = {"sim_seconds", "wall_seconds", "simulate_wall_seconds", "score_wall_seconds", "store_wall_seconds"}
GRID = {"G": [0.3, 0.8, 1000.0], "a": [-0.05]}   # G = 1000 diverges: one FAIL trial per subject
# run settings a run may record as params beside the free parameters (the study's, not the trial's)
SETTINGS = ("dt_ms", "duration_s")


def _free_params(run, cfg) -> dict[str, float]:
    """A run's params as floats, the run settings it records checked against the study's and left out."""
    params = {k: float(v) for k, v in run.data.params.items()}
    for k in SETTINGS:
        if k in params:
            assert params.pop(k) == float(getattr(cfg.simulation, k)), k
    return params


def test_mlflow_read_back_matches_optuna(tmp_path, ray_session):
    from mlflow import MlflowClient

    cfg = fast_config(tmp_path, name="readback", sampler={"name": "grid", "grid": GRID}, trials=None,
                      params={"free": {"G": {"low": 0.1, "high": 1000.0}, "a": {"low": -0.1, "high": 0.05}}},
                      ray={"actors": 1, "batch_size": 2})
    result = run_study(cfg)
    assert result.trials_run == 6 and result.hook_failures == []
    storage = open_storage(optuna_storage_url(cfg, cfg.study_dir))
    studies = {sid: open_subject_study(storage, cfg, sid, create=False)
               for sid in list_subject_studies(storage, cfg.name)}
    assert sorted(studies) == ["NAP_001", "NAP_002"]

    uri = mlflow_uri(cfg, cfg.study_dir)
    assert uri == embedded_mlflow_uri(cfg.study_dir) and uri.startswith("sqlite:///")
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(cfg.name)
    assert exp is not None and exp.lifecycle_stage == "active"
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("explorer.role") == "subject"]
    children = [r for r in runs if r.data.tags.get("explorer.role") == "trial"]
    assert len(parents) + len(children) == len(runs)
    assert sorted(p.data.tags["subject"] for p in parents) == sorted(studies)   # one parent per subject

    for sid, study in studies.items():
        trials = study.get_trials(deepcopy=False)
        finished = {t.number: t for t in trials if t.state in (TrialState.COMPLETE, TrialState.FAIL)}
        assert len(finished) == len(trials) == 3
        assert sorted(t.state.name for t in trials) == ["COMPLETE", "COMPLETE", "FAIL"]
        parent = next(p for p in parents if p.data.tags["subject"] == sid)
        pid = parent.info.run_id
        assert parent.info.status == "FINISHED"

        # one child run per finished trial, under this subject's parent
        mine = [c for c in children if c.data.tags["mlflow.parentRunId"] == pid]
        assert all(c.data.tags["subject"] == sid for c in mine)
        by_number = {int(c.data.tags["trial"]): c for c in mine}
        assert len(by_number) == len(mine) and set(by_number) == set(finished)
        for n, t in finished.items():
            run = by_number[n]
            assert run.data.tags["state"] == t.state.name
            assert _free_params(run, cfg) == t.params   # exact: repr(float) round-trips
            assert run.data.tags["seed"] == str(t.user_attrs["seed"])
            scores = {k: v for k, v in run.data.metrics.items() if k not in TIME_METRICS}
            assert TIME_METRICS <= set(run.data.metrics)
            assert run.data.metrics["sim_seconds"] == pytest.approx(t.user_attrs["sim_seconds"])
            if t.state == TrialState.COMPLETE:
                assert run.info.status == "FINISHED"
                assert scores == pytest.approx(t.user_attrs["scores"]) and "fc_r" in scores
                assert scores["fc_r"] == pytest.approx(t.value)
                assert run.data.tags["signals"] == t.user_attrs["signals"]
            else:
                assert run.info.status == "FAILED"
                assert run.data.tags["reason"] == t.user_attrs["reason"] == "diverged"
                assert scores == {} and t.params["G"] == 1000.0

        # the parent: Optuna's best trial, under the children's names
        best = study.best_trial
        assert math.isfinite(best.value) and best.state == TrialState.COMPLETE
        assert best.value == max(t.value for t in finished.values() if t.state == TrialState.COMPLETE)
        assert _free_params(parent, cfg) == best.params
        assert parent.data.metrics["fc_r"] == pytest.approx(best.value)
        for k, v in best.user_attrs["scores"].items():
            assert parent.data.metrics[k] == pytest.approx(v), k
        tags = parent.data.tags
        assert tags["best_trial"] == str(best.number)
        assert tags["best_run_id"] == by_number[best.number].info.run_id
        assert json.loads(tags["best_params"]) == pytest.approx(best.params)
        assert json.loads(tags["objectives"]) == ["fc_r"] and json.loads(tags["directions"]) == ["maximize"]
        assert tags["model"] == "hopf"
        hist = client.get_metric_history(pid, "best_so_far_fc_r")
        assert sorted(m.step for m in hist) == sorted(n for n, t in finished.items() if t.state == TrialState.COMPLETE)
        assert max(m.value for m in hist) == pytest.approx(best.value)
    assert len(children) == sum(len(s.get_trials(deepcopy=False)) for s in studies.values())
