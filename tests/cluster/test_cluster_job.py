"""`ray job submit` runs `explorer run CONFIG` on the cluster (the README's runbook, tested).

The job server lives in the head node's dashboard; the client reaches it over HTTP with the cluster's
auth token in its environment. `--working-dir .` uploads the repository (Ray honours .gitignore and
.rayignore: neither the virtual environment nor studies/ nor .git travel); the job's environment
variables (where Optuna, MLflow and Ray are) go through `--runtime-env-json`.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from pathlib import Path

import pytest

from cluster_helpers import (BIN, SUBJECTS, assert_exact, cluster_env, optuna_trials, study_config, verify,
                             write_config)

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]


def _ray(args: list[str], env: dict, timeout_s: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "ray"), *args], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout_s)


def _plain(text: str) -> str:
    """``text`` without the terminal colour codes of Ray's CLI."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_ray_job_submit_runs_a_study_on_the_cluster(postgres_server, mlflow_server, ray_cluster, tmp_path):
    trials = 3
    cfg = study_config("as_job", trials=trials)
    mlflow_server.wait_healthy()
    optuna_url, _ = postgres_server
    config = write_config(tmp_path, cfg)
    job_env = {"EXPLORER_OPTUNA_STORAGE": optuna_url, "EXPLORER_MLFLOW_URI": mlflow_server.uri,
               "EXPLORER_RAY_ADDRESS": "auto"}
    client_env = {**ray_cluster.env}
    for key in ("EXPLORER_OPTUNA_STORAGE", "EXPLORER_MLFLOW_URI", "EXPLORER_RAY_ADDRESS", "EXPLORER_ZARR_URL"):
        client_env.pop(key, None)     # the job must get them from --runtime-env-json, not from this process
    job_id = f"explorer-as-job-{uuid.uuid4().hex[:8]}"
    submit = _ray(["job", "submit", "--address", ray_cluster.dashboard_url, "--submission-id", job_id,
                   "--working-dir", ".", "--runtime-env-json", json.dumps({"env_vars": job_env}),
                   "--", "explorer", "run", str(config), "--no-progress"], client_env)
    assert submit.returncode == 0, submit.stdout + submit.stderr

    status = _ray(["job", "status", "--address", ray_cluster.dashboard_url, job_id], client_env)
    assert f"Job '{job_id}' succeeded" in _plain(status.stdout), status.stdout + status.stderr   # SUCCEEDED
    logs = _ray(["job", "logs", "--address", ray_cluster.dashboard_url, job_id], client_env)
    assert logs.returncode == 0, logs.stderr
    # explorer's end-of-run summary, printed by the job's driver
    assert f"study {cfg['name']} (hopf, tpe, {trials} trials per subject)" in logs.stdout, logs.stdout
    assert f"this session: {trials * len(SUBJECTS)} trials in" in logs.stdout, logs.stdout

    # the study is in PostgreSQL, exact, its trials spread over both nodes
    all_trials = optuna_trials(optuna_url, cfg)
    assert_exact(all_trials, SUBJECTS, trials)
    assert len({t.user_attrs["node"] for ts in all_trials.values() for t in ts}) == 2
    env = cluster_env(ray_cluster, optuna_url, mlflow_server.uri)
    report = verify(cfg["name"], env, tmp_path)
    assert report["ok"] and report["checked"] == trials * len(SUBJECTS), report

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
