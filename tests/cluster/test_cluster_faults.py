"""Faults on the 2-node Ray cluster (PostgreSQL for Optuna, an MLflow server), mid-sweep:

- the driver is SIGKILLed: the same command, run again from another process, resumes the study;
- a worker node is lost and the MLflow server goes down at once: the lost node's trials finish on
  the other node, the sweep goes on, and `explorer verify --repair` fills MLflow in later.

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


def _complete_nodes(optuna_url: str, cfg: dict) -> set[str]:
    """The Ray nodes that have completed trials of the study so far."""
    try:
        trials = optuna_trials(optuna_url, cfg)
    except Exception:  # noqa: BLE001 - not created yet
        return set()
    return {t.user_attrs["node"] for ts in trials.values() for t in ts if t.state.name == "COMPLETE"}


def test_worker_node_lost_and_mlflow_server_down_mid_sweep(postgres_server, mlflow_server, ray_cluster,
                                                           tmp_path):
    """Both at once, mid-sweep: the lost node's batches finish on the other node, the MLflow calls are
    spooled; the sweep ends with exact counts, and `explorer verify --repair` fills MLflow in later."""
    from mlflow import MlflowClient

    trials = 32
    # 2400 s of BOLD per trial: work left on both nodes when the worker goes; what is still queued for
    # MLflow when the loop ends is waited for 5 s (drain_s), then left to --repair
    cfg = study_config("faults", trials=trials, simulation={"duration_s": 2400}, tracking={"drain_s": 5})
    mlflow_server.wait_healthy()
    optuna_url, _ = postgres_server
    env = cluster_env(ray_cluster, optuna_url, mlflow_server.uri)
    run = launch_explorer(["run", str(write_config(tmp_path, cfg)), "--no-progress"], env, tmp_path)
    try:
        # mid-sweep: both nodes' actors have completed trials (and hold queued batches) when the faults come
        wait_until("COMPLETE trials on both nodes", lambda: len(_complete_nodes(optuna_url, cfg)) == 2,
                   alive=run.proc)
        ray_cluster.kill_worker()
        mlflow_server.stop()
        code = run.wait(timeout_s=300)
    finally:
        if run.proc.poll() is None:
            run.kill()
    assert code == 0, run.output

    all_trials = optuna_trials(optuna_url, cfg)
    assert_exact(all_trials, SUBJECTS, trials)       # Optuna has every trial, exactly
    flat = [t for ts in all_trials.values() for t in ts]
    # the lost node's batches were sent again (attempt 1) and ran on the node that survived
    retried = [t for t in flat if t.user_attrs["attempt"] >= 1]
    assert retried, "no trial was retried: the node was lost after its actor had finished its work"
    survivor = {t.user_attrs["node"] for t in retried}
    assert len({t.user_attrs["node"] for t in flat}) == 2 and len(survivor) == 1
    assert max(flat, key=lambda t: t.datetime_complete).user_attrs["node"] in survivor
    run_line = _runs(tmp_path / "studies" / cfg["name"])[-1]
    assert run_line["actors_replaced"] >= 1
    assert any("MLflow" in f for f in run_line["hook_failures"]), run_line["hook_failures"]

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
    assert children == {(sid, t.number) for sid, ts in all_trials.items() for t in ts if t.state.name == "COMPLETE"}
