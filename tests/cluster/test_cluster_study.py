"""A study on a real multi-node Ray cluster, with PostgreSQL (Optuna) and an MLflow tracking server.

Nothing in the config says "cluster": the same `explorer run CONFIG` is pointed at the cluster only
through the environment (EXPLORER_RAY_ADDRESS, EXPLORER_OPTUNA_STORAGE, EXPLORER_MLFLOW_URI), as
a user of `ray up ray_cluster.yaml` would do. The cluster has two Ray nodes of one CPU each (two
raylets on this machine, started with `ray start`), so the two simulator actors must land on two
different nodes; the driver runs in its own `explorer` process and joins by address.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from cluster_helpers import SUBJECTS, TRIALS, cluster_env, explorer, optuna_trials, study_config, write_config

pytestmark = pytest.mark.cluster

NAME = "on_cluster"
CONFIG = study_config(NAME)


def test_study_on_ray_cluster_with_postgres_and_mlflow_server(postgres_server, mlflow_server, ray_cluster,
                                                               tmp_path):
    from mlflow import MlflowClient
    from optuna.trial import TrialState

    mlflow_server.wait_healthy()
    tracking_uri, artifacts = mlflow_server.uri, mlflow_server.artifacts
    optuna_url, _ = postgres_server
    config = write_config(tmp_path, CONFIG)
    env = cluster_env(ray_cluster, optuna_url, tracking_uri)

    run = explorer(["run", str(config), "--no-progress"], env, tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr

    # Optuna: the trials are in PostgreSQL, not in a journal file of the study folder
    study_dir = tmp_path / "studies" / NAME
    assert not (study_dir / "optuna.log").exists() and not (study_dir / "mlflow.db").exists()
    trials = optuna_trials(optuna_url, CONFIG)
    assert sorted(trials) == SUBJECTS
    for sid, ts in trials.items():
        states = Counter(t.state for t in ts)
        assert states[TrialState.COMPLETE] == TRIALS, (sid, states, [t.user_attrs.get("reason") for t in ts])
        assert len(ts) == TRIALS
    nodes = {t.user_attrs["node"] for ts in trials.values() for t in ts}
    actors = {t.user_attrs["actor"] for ts in trials.values() for t in ts}
    assert len(nodes) >= 2, f"all trials ran on {nodes}: the actors did not spread over the Ray nodes"
    assert len(actors) >= 2

    # MLflow: the tracking server (backed by PostgreSQL) holds the experiment, parents and children
    client = MlflowClient(tracking_uri=tracking_uri)
    exp = client.get_experiment_by_name(NAME)
    assert exp is not None
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = {r.data.tags["subject"]: r for r in runs if r.data.tags.get("explorer.role") == "subject"}
    assert sorted(parents) == SUBJECTS
    for sid, parent in parents.items():
        assert parent.info.status == "FINISHED"
        children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        assert sorted(int(c.data.tags["trial"]) for c in children) == sorted(t.number for t in trials[sid])
        assert all(c.info.status == "FINISHED" and "fc_r" in c.data.metrics for c in children)
        by_number = {t.number: t for t in trials[sid]}
        for c in children:
            assert c.data.metrics["fc_r"] == pytest.approx(by_number[int(c.data.tags["trial"])].value)
        # artifacts went through the server's artifact proxy into its artifacts destination
        names = {a.path for a in client.list_artifacts(parent.info.run_id)}
        assert {"study.yaml", "convergence.png", "fc_empirical_vs_best.png"} <= names, names
    assert any(p.name == "convergence.png" for p in Path(artifacts).rglob("*.png"))

    # the three records agree (verify reads the same environment)
    ver = explorer(["verify", NAME, "--studies-dir", str(tmp_path / "studies"), "--json"], env, tmp_path)
    assert ver.returncode == 0, ver.stdout + ver.stderr
    report = json.loads(ver.stdout)
    assert report["ok"] and report["checked"] == TRIALS * len(SUBJECTS), report

    # a rerun of the same command resumes the study: nothing is repeated, nothing lost
    before = {sid: sorted((t.number, t.state.name, tuple(sorted(t.params.items()))) for t in ts)
              for sid, ts in trials.items()}
    again = explorer(["run", str(config), "--no-progress"], env, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    after = {sid: sorted((t.number, t.state.name, tuple(sorted(t.params.items()))) for t in ts)
             for sid, ts in optuna_trials(optuna_url, CONFIG).items()}
    assert after == before
    runs_after = client.search_runs([exp.experiment_id], max_results=1000)
    assert len(runs_after) == len(runs)
