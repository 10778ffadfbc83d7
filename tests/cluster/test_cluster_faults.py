"""Faults on the 2-node Ray cluster (PostgreSQL for Optuna, an MLflow server), each mid-sweep:

- a worker node is lost: its trials finish on the other node;
- the driver is SIGKILLed: the same command, run again from another process, resumes the study;
- the MLflow server goes down: the sweep goes on; `explorer verify --repair` fills MLflow in later.

Every test ends with exact counts in PostgreSQL (each subject exactly `trials` COMPLETE trials, nothing
RUNNING, no parameter set evaluated twice) and `explorer verify NAME --json` ok (zarr, Optuna and
MLflow agree). The studies are small (Hopf at the BOLD time scale, a few trials per subject).
"""

from __future__ import annotations

import json

import pytest

from cluster_helpers import (SUBJECTS, assert_exact, cluster_env, count_complete, explorer, launch_explorer,
                             optuna_trials, study_config, verify, verify_ok, wait_until, write_config)

pytestmark = pytest.mark.cluster


def _runs(study_dir) -> list[dict]:
    return [json.loads(line) for line in (study_dir / "runs.jsonl").read_text().splitlines() if line.strip()]


def test_lost_worker_node_its_trials_finish_on_the_other_node(postgres_server, mlflow_server, ray_cluster,
                                                              tmp_path):
    trials = 16
    # 1200 s of BOLD per trial (gw_fit's length): enough work left on both nodes when the worker goes
    cfg = study_config("node_loss", trials=trials, simulation={"duration_s": 1200})
    mlflow_server.wait_healthy()
    optuna_url, _ = postgres_server
    env = cluster_env(ray_cluster, optuna_url, mlflow_server.uri)
    run = launch_explorer(["run", str(write_config(tmp_path, cfg)), "--no-progress"], env, tmp_path)
    try:
        # mid-sweep: both actors have run (and each holds queued batches) when the node goes
        wait_until("2 COMPLETE trials", lambda: count_complete(optuna_url, cfg) >= 2, alive=run.proc)
        ray_cluster.kill_worker()
        code = run.wait(timeout_s=300)
    finally:
        if run.proc.poll() is None:
            run.kill()
    assert code == 0, run.output

    all_trials = optuna_trials(optuna_url, cfg)
    assert_exact(all_trials, SUBJECTS, trials)
    flat = [t for ts in all_trials.values() for t in ts]
    # the lost node's batches were sent again (attempt 1) and ran on the node that survived
    retried = [t for t in flat if t.user_attrs["attempt"] >= 1]
    assert retried, "no trial was retried: the node was lost after its actor had finished its work"
    nodes = {t.user_attrs["node"] for t in flat}
    assert len(nodes) == 2, nodes
    survivor = {t.user_attrs["node"] for t in retried}
    assert len(survivor) == 1
    last = max(flat, key=lambda t: t.datetime_complete)
    assert last.user_attrs["node"] in survivor
    study_dir = tmp_path / "studies" / cfg["name"]
    assert _runs(study_dir)[-1]["actors_replaced"] >= 1

    verify_ok(verify(cfg["name"], env, tmp_path), trials * len(SUBJECTS))


def _running(optuna_url: str, cfg: dict) -> int:
    from optuna.trial import TrialState

    return sum(t.state == TrialState.RUNNING for ts in optuna_trials(optuna_url, cfg).values() for t in ts)


def test_killed_driver_then_the_same_command_resumes_the_study(postgres_server, mlflow_server, ray_cluster,
                                                               tmp_path):
    from explorer.search.studies import FAIL_REASON_ATTR, INTERRUPTED

    trials = 6
    cfg = study_config("driver_loss", trials=trials)
    mlflow_server.wait_healthy()
    optuna_url, _ = postgres_server
    env = cluster_env(ray_cluster, optuna_url, mlflow_server.uri)
    command = ["run", str(write_config(tmp_path, cfg)), "--no-progress"]
    first = launch_explorer(command, env, tmp_path)
    try:
        wait_until("2 COMPLETE trials", lambda: count_complete(optuna_url, cfg) >= 2, alive=first.proc)
    finally:
        code = first.kill()     # SIGKILL: no signal handler, no clean-up; the cluster stays up
    assert code == -9
    # the dead driver left trials RUNNING in PostgreSQL (its queued batches), and the sweep unfinished
    left_running = _running(optuna_url, cfg)
    assert left_running >= 1
    assert count_complete(optuna_url, cfg) < trials * len(SUBJECTS)

    again = explorer(command, env, tmp_path)        # another process, the same command
    assert again.returncode == 0, again.stdout + again.stderr
    all_trials = optuna_trials(optuna_url, cfg)
    assert_exact(all_trials, SUBJECTS, trials)
    reaped = [t for ts in all_trials.values() for t in ts if t.user_attrs.get(FAIL_REASON_ATTR) == INTERRUPTED]
    assert len(reaped) >= left_running     # each trial left RUNNING was reaped (and its parameters re-run once)
    # the resume took the dead driver's leases over at once (its process is gone from this host) ...
    run = _runs(tmp_path / "studies" / cfg["name"])[-1]
    assert len(run["takeovers"]) == len(SUBJECTS), run
    assert all(f"(pid {first.proc.pid}) is gone" in line for line in run["takeovers"]), run["takeovers"]
    # ... and logged the trials the killed driver had told Optuna but not yet MLflow: the three agree
    verify_ok(verify(cfg["name"], env, tmp_path), trials * len(SUBJECTS))


def test_mlflow_server_down_mid_sweep_then_repaired(postgres_server, mlflow_server, ray_cluster, tmp_path):
    from mlflow import MlflowClient

    trials = 6
    # what is still queued for MLflow when the loop ends is waited for 5 s (drain_s), then left to --repair
    cfg = study_config("mlflow_down", trials=trials, tracking={"drain_s": 5})
    mlflow_server.wait_healthy()
    optuna_url, _ = postgres_server
    env = cluster_env(ray_cluster, optuna_url, mlflow_server.uri)
    run = launch_explorer(["run", str(write_config(tmp_path, cfg)), "--no-progress"], env, tmp_path)
    try:
        wait_until("2 COMPLETE trials", lambda: count_complete(optuna_url, cfg) >= 2, alive=run.proc)
        mlflow_server.stop()
        code = run.wait(timeout_s=300)
    finally:
        if run.proc.poll() is None:
            run.kill()
    assert code == 0, run.output
    # Optuna has every trial; the study was not finished when MLflow went away
    assert_exact(optuna_trials(optuna_url, cfg), SUBJECTS, trials)

    mlflow_server.start()   # same port, backend store and artifacts
    mlflow_server.wait_healthy()
    before = verify(cfg["name"], env, tmp_path)
    assert not before["ok"], before                  # MLflow lacks what was logged while it was down
    assert not [k for k in before["counts"] if "zarr" in k or "signals" in k], before   # zarr has every trial
    repaired = verify(cfg["name"], env, tmp_path, "--repair")
    assert repaired["returncode"] == 0, repaired
    verify_ok(verify(cfg["name"], env, tmp_path), trials * len(SUBJECTS))
    # every COMPLETE trial has its child run
    client = MlflowClient(tracking_uri=mlflow_server.uri)
    exp = client.get_experiment_by_name(cfg["name"])
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    children = {(r.data.tags.get("subject"), int(r.data.tags["trial"])) for r in runs if "trial" in r.data.tags}
    assert children == {(sid, t.number) for sid, ts in optuna_trials(optuna_url, cfg).items() for t in ts
                        if t.state.name == "COMPLETE"}
