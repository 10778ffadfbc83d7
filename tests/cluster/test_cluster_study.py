"""A study on a real multi-node Ray cluster, with PostgreSQL (Optuna) and an MLflow tracking server.

Nothing in the config says "cluster": the same `explorer run CONFIG` is pointed at the cluster only
through the environment (EXPLORER_RAY_ADDRESS, EXPLORER_OPTUNA_STORAGE, EXPLORER_MLFLOW_URI), as
a user of `ray up ray_cluster.yaml` would do. The cluster has two Ray nodes of one CPU each (two
raylets on this machine, started with `ray start`), so the two simulator actors must land on two
different nodes; the driver runs in its own `explorer` process and joins by address.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.cluster

BIN = Path(sys.executable).parent
NAME = "on_cluster"
SUBJECTS = ["NAP_001", "NAP_002"]
TRIALS = 4
#: Hopf at the BOLD time scale (as experiments/gw_fit.yaml): 300 s of BOLD in 3000 steps per trial
CONFIG = {
    "name": NAME,
    "cohort": {"source": "demo", "subjects": SUBJECTS,
               "features": {"bandpass": None, "fcd_window": 10}},
    "model": "hopf",
    "params": {"free": {"G": {"low": 0.05, "high": 2.0}, "a": {"low": -0.1, "high": 0.0}},
               "fixed": {"f": "bold_peak"}},
    "simulation": {"duration_s": 300, "dt_ms": 100, "transient_s": 0, "noise_sigma": 0.02, "bold_tr_s": 2.0,
                   "bold_monitor": "sample"},
    "sampler": {"name": "tpe", "seed": 0},
    "trials": TRIALS,
    "ray": {"address": None, "actors": 2, "batch_size": 2},   # the address comes from the environment
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop_group(proc: subprocess.Popen, grace_s: float = 5.0) -> None:
    """SIGTERM, then SIGKILL, the process group of ``proc`` (started with start_new_session)."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
        if sig == signal.SIGKILL:
            return
    try:  # children that outlive the leader are still in the group
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _kill_leftovers(marker: str) -> None:
    """Kill the processes of *this* Ray cluster still alive (their command lines name its temp dir)."""
    import psutil

    mine = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            if p.pid != os.getpid() and any(marker in a for a in (p.info["cmdline"] or [])):
                mine.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    for p in mine:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(mine, timeout=10)


@pytest.fixture(scope="module")
def ray_cluster():
    """Two Ray nodes (head + worker, 1 CPU each) on this machine; yields (address, env for clients).

    Each `ray start --block` runs in its own session, so teardown stops exactly these processes
    (never `ray stop`, which would also stop other Ray instances on the machine). Token
    authentication is on, with a token of this cluster's own, passed through the environment.
    """
    port = _free_port()
    temp_dir = tempfile.mkdtemp(prefix="exray", dir="/tmp")   # short: Ray's socket paths must stay < 108 chars
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    env.pop("RAY_ADDRESS", None)
    procs: list[subprocess.Popen] = []
    logs = []
    address = f"127.0.0.1:{port}"
    ray = str(BIN / "ray")
    try:
        head = [ray, "start", "--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false",
                f"--temp-dir={temp_dir}", "--block", "--disable-usage-stats"]
        worker = [ray, "start", f"--address={address}", "--num-cpus=1", f"--temp-dir={temp_dir}", "--block",
                  "--disable-usage-stats"]
        for args, log in ((head, "head.log"), (worker, "worker.log")):
            logs.append(open(Path(temp_dir) / log, "w"))
            procs.append(subprocess.Popen(args, env=env, stdout=logs[-1], stderr=subprocess.STDOUT,
                                          start_new_session=True))
            if args is head:  # the worker node joins as soon as the head's GCS port answers
                _wait_for_port(port, procs, temp_dir)
        _wait_for_nodes(address, env, 2, procs, temp_dir)
        yield address, env
    finally:
        for p in reversed(procs):
            _stop_group(p, grace_s=2.0)
        _kill_leftovers(temp_dir)
        for f in logs:
            f.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _check_alive(procs: list, temp_dir: str) -> None:
    for p in procs:
        if p.poll() is not None:
            logs = "\n".join(f.read_text()[-2000:] for f in Path(temp_dir).glob("*.log"))
            pytest.fail(f"`ray start` exited with {p.returncode}:\n{logs}")


def _wait_for_port(port: int, procs: list, temp_dir: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _check_alive(procs, temp_dir)
        with socket.socket() as s:
            s.settimeout(1.0)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    pytest.fail(f"Ray head did not listen on port {port} within {timeout_s} s")


def _wait_for_nodes(address: str, env: dict, n: int, procs: list, temp_dir: str, timeout_s: float = 120.0) -> None:
    """Wait until the cluster at ``address`` has ``n`` live nodes (asked from a separate process)."""
    probe = ("import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False, logging_level='ERROR');"
             "print(sum(1 for x in ray.nodes() if x['Alive']))")
    deadline = time.monotonic() + timeout_s
    alive = "?"
    while time.monotonic() < deadline:
        _check_alive(procs, temp_dir)
        out = subprocess.run([sys.executable, "-c", probe, address], env=env, capture_output=True, text=True,
                             timeout=60)
        alive = out.stdout.strip().splitlines()[-1] if out.returncode == 0 and out.stdout.strip() else "?"
        if alive.isdigit() and int(alive) >= n:
            return
        time.sleep(1.0)
    pytest.fail(f"Ray cluster at {address}: {alive} node(s) alive after {timeout_s} s, expected {n}")


@pytest.fixture(scope="module")
def mlflow_server(postgres_server, tmp_path_factory):
    """`mlflow server` on the PostgreSQL MLflow database, serving artifacts.

    Yields (http URI, artifacts destination, server process, its log file).

    It is started, not waited for: the test calls :func:`_wait_healthy` once the Ray cluster is up,
    so that both start at the same time.
    """
    _, mlflow_db = postgres_server
    port = _free_port()
    artifacts = tmp_path_factory.mktemp("mlflow_artifacts")
    log_path = artifacts.parent / "mlflow_server.log"
    log = open(log_path, "w")
    proc = subprocess.Popen([str(BIN / "mlflow"), "server", "--backend-store-uri", mlflow_db,
                             "--artifacts-destination", str(artifacts), "--serve-artifacts",
                             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield f"http://127.0.0.1:{port}", artifacts, proc, log_path
    finally:
        _stop_group(proc)
        log.close()


def _wait_healthy(uri: str, proc: subprocess.Popen, log_path: Path, timeout_s: float = 120.0) -> None:
    """Wait until the MLflow server answers ``GET /health`` with 200."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            pytest.fail(f"mlflow server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"mlflow server did not answer {uri}/health within {timeout_s} s")
        time.sleep(0.5)


def _explorer(args: list[str], env: dict, cwd: Path, timeout_s: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "explorer"), *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout_s)


def _optuna_trials(optuna_url: str) -> dict[str, list]:
    from explorer.config import parse_config
    from explorer.search import list_subject_studies, open_storage, open_subject_study

    cfg = parse_config(CONFIG)
    storage = open_storage(optuna_url)
    return {sid: open_subject_study(storage, cfg, sid, create=False).get_trials(deepcopy=True)
            for sid in list_subject_studies(storage, NAME)}


def test_study_on_ray_cluster_with_postgres_and_mlflow_server(postgres_server, mlflow_server, ray_cluster,
                                                               tmp_path):
    from mlflow import MlflowClient
    from optuna.trial import TrialState

    address, ray_env = ray_cluster
    tracking_uri, artifacts, server, server_log = mlflow_server
    _wait_healthy(tracking_uri, server, server_log)
    optuna_url, _ = postgres_server
    config = tmp_path / f"{NAME}.yaml"
    config.write_text(yaml.safe_dump({**CONFIG, "studies_dir": str(tmp_path / "studies")}, sort_keys=False))
    env = {**ray_env, "EXPLORER_RAY_ADDRESS": address, "EXPLORER_OPTUNA_STORAGE": optuna_url,
           "EXPLORER_MLFLOW_URI": tracking_uri}
    env.pop("EXPLORER_ZARR_URL", None)

    run = _explorer(["run", str(config), "--no-progress"], env, tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr

    # Optuna: the trials are in PostgreSQL, not in a journal file of the study folder
    study_dir = tmp_path / "studies" / NAME
    assert not (study_dir / "optuna.log").exists() and not (study_dir / "mlflow.db").exists()
    trials = _optuna_trials(optuna_url)
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
    ver = _explorer(["verify", NAME, "--studies-dir", str(tmp_path / "studies"), "--json"], env, tmp_path)
    assert ver.returncode == 0, ver.stdout + ver.stderr
    report = json.loads(ver.stdout)
    assert report["ok"] and report["checked"] == TRIALS * len(SUBJECTS), report

    # a rerun of the same command resumes the study: nothing is repeated, nothing lost
    before = {sid: sorted((t.number, t.state.name, tuple(sorted(t.params.items()))) for t in ts)
              for sid, ts in trials.items()}
    again = _explorer(["run", str(config), "--no-progress"], env, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    after = {sid: sorted((t.number, t.state.name, tuple(sorted(t.params.items()))) for t in ts)
             for sid, ts in _optuna_trials(optuna_url).items()}
    assert after == before
    runs_after = client.search_runs([exp.experiment_id], max_results=1000)
    assert len(runs_after) == len(runs)
