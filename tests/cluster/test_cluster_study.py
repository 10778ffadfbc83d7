"""A study on a real multi-node Ray cluster, with PostgreSQL (Optuna) and an MLflow tracking server,
submitted as a Ray job (the README's runbook, tested).

Nothing in the config says "cluster": the same `explorer run CONFIG` is pointed at the cluster only
through the environment (EXPLORER_RAY_ADDRESS, EXPLORER_OPTUNA_STORAGE, EXPLORER_MLFLOW_URI), as
a user of `ray up ray_cluster.yaml` would do. The cluster has two Ray nodes of one CPU each (two
raylets on this machine, started with `ray start`), so the two simulator actors must land on two
different nodes.

The first run is `ray job submit --working-dir . -- explorer run CONFIG`: the job server lives in the
head node's dashboard; the client reaches it over HTTP with the cluster's auth token in its
environment; `--working-dir .` uploads the repository (Ray honours .gitignore and .rayignore:
neither the virtual environment nor studies/ nor .git travel); the job's environment variables go
through `--runtime-env-json`. The rerun is a plain `explorer run` from this process.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections import Counter
from pathlib import Path

import pytest

from cluster_helpers import (BIN, SUBJECTS, TRIALS, cluster_env, explorer, optuna_trials, study_config,
                             write_config)

pytestmark = pytest.mark.cluster

NAME = "on_cluster"
CONFIG = study_config(NAME)
ROOT = Path(__file__).resolve().parents[2]


def _ray(args: list[str], env: dict, timeout_s: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "ray"), *args], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout_s)


def _plain(text: str) -> str:
    """``text`` without the terminal colour codes of Ray's CLI."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def _submit_as_job(ray_cluster, config: Path, optuna_url: str, tracking_uri: str) -> None:
    """`ray job submit --working-dir . -- explorer run CONFIG`: the job succeeds and prints explorer's summary."""
    job_env = {"EXPLORER_OPTUNA_STORAGE": optuna_url, "EXPLORER_MLFLOW_URI": tracking_uri,
               "EXPLORER_RAY_ADDRESS": "auto"}
    client_env = {**ray_cluster.env}
    for key in ("EXPLORER_OPTUNA_STORAGE", "EXPLORER_MLFLOW_URI", "EXPLORER_RAY_ADDRESS", "EXPLORER_ZARR_URL"):
        client_env.pop(key, None)     # the job must get them from --runtime-env-json, not from this process
    job_id = f"explorer-on-cluster-{uuid.uuid4().hex[:8]}"
    submit = _ray(["job", "submit", "--address", ray_cluster.dashboard_url, "--submission-id", job_id,
                   "--working-dir", ".", "--runtime-env-json", json.dumps({"env_vars": job_env}),
                   "--", "explorer", "run", str(config), "--no-progress"], client_env)
    assert submit.returncode == 0, submit.stdout + submit.stderr
    status = _ray(["job", "status", "--address", ray_cluster.dashboard_url, job_id], client_env)
    assert f"Job '{job_id}' succeeded" in _plain(status.stdout), status.stdout + status.stderr   # SUCCEEDED
    logs = _ray(["job", "logs", "--address", ray_cluster.dashboard_url, job_id], client_env)
    assert logs.returncode == 0, logs.stderr
    # explorer's end-of-run summary, printed by the job's driver
    assert f"study {NAME} (hopf, tpe, {TRIALS} trials per subject)" in logs.stdout, logs.stdout
    assert f"this session (asynchronous): {TRIALS * len(SUBJECTS)} trials in" in logs.stdout, logs.stdout
    # what --working-dir uploaded: the code, not the virtual environment, the studies or .git
    packages = [p for p in Path(ray_cluster.temp_dir).glob("session_latest/runtime_resources/working_dir_files/*")
                if p.is_dir()]
    assert len(packages) == 1, packages
    pkg = packages[0]
    assert (pkg / "explorer" / "runner" / "pool.py").is_file() and (pkg / "pyproject.toml").is_file()
    for heavy in (".venv", "studies", ".git"):
        assert not (pkg / heavy).exists(), f"{heavy} was uploaded with --working-dir"
    size = sum(f.stat().st_size for f in pkg.rglob("*") if f.is_file())
    assert size < 20 * 2**20, f"the working dir uploaded {size / 2**20:.1f} MiB"


def test_study_submitted_as_a_ray_job_with_postgres_and_mlflow_server(postgres_server, mlflow_server, ray_cluster,
                                                               tmp_path):
    from mlflow import MlflowClient
    from optuna.trial import TrialState

    mlflow_server.wait_healthy()
    tracking_uri, artifacts = mlflow_server.uri, mlflow_server.artifacts
    optuna_url, _ = postgres_server
    config = write_config(tmp_path, CONFIG)
    env = cluster_env(ray_cluster, optuna_url, tracking_uri)

    _submit_as_job(ray_cluster, config, optuna_url, tracking_uri)

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
