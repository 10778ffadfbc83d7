"""What the cluster tests share: a 2-node Ray cluster, `explorer` in the foreground or in the
background, and exact checks of a study's trials in PostgreSQL. The MLflow server (which a test can
stop and start again), PostgreSQL and free ports come from tests/services.py, shared with the benchmarks.

Each server process runs in its own session, so a test (or the teardown) stops exactly it, never
`ray stop` (which would stop every Ray instance of the machine) nor a kill by name.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from services import BIN, free_port, port_open, stop_group

SUBJECTS = ["NAP_001", "NAP_002"]
TRIALS = 4


def study_config(name: str, subjects: list[str] = SUBJECTS, trials: int = TRIALS, **overrides: Any) -> dict:
    """A small study for the cluster: Hopf at the BOLD time scale (as experiments/gw_fit.yaml), 300 s of
    BOLD in 3000 steps per trial, two actors (one per Ray node); the address comes from the environment."""
    cfg = {
        "name": name,
        "cohort": {"source": "demo", "subjects": list(subjects),
                   "features": {"bandpass": None, "fcd_window": 10}},
        "model": "hopf",
        "params": {"free": {"G": {"low": 0.05, "high": 2.0}, "a": {"low": -0.1, "high": 0.0}},
                   "fixed": {"f": "bold_peak"}},
        "simulation": {"duration_s": 300, "dt_ms": 100, "transient_s": 0, "noise_sigma": 0.02, "bold_tr_s": 2.0,
                       "bold_monitor": "sample"},
        "sampler": {"name": "tpe", "seed": 0},
        "trials": trials,
        "ray": {"address": None, "actors": 2, "batch_size": 2},
    }
    for key, value in overrides.items():
        cfg[key] = {**cfg[key], **value} if isinstance(value, dict) and isinstance(cfg.get(key), dict) else value
    return cfg


def write_config(tmp_path: Path, cfg: dict) -> Path:
    """``cfg`` as ``<tmp_path>/<name>.yaml``, its studies folder under ``tmp_path``."""
    path = tmp_path / f"{cfg['name']}.yaml"
    path.write_text(yaml.safe_dump({**cfg, "studies_dir": str(tmp_path / "studies")}, sort_keys=False))
    return path


def kill_leftovers(marker: str) -> None:
    """Kill the processes still alive whose command line names ``marker`` (a temp dir of ours)."""
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


# -- Ray -----------------------------------------------------------------------------------
class RayCluster:
    """A head node (with the dashboard: the job server) and one worker node, 1 CPU each, on this machine.

    Token authentication is on, with a token of this cluster's own, passed through :attr:`env`.
    The GCS declares a node dead after ~3 s of failed health checks (Ray's default: ~15 s).
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.dashboard_port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.dashboard_url = f"http://127.0.0.1:{self.dashboard_port}"
        self.temp_dir = tempfile.mkdtemp(prefix="exray", dir="/tmp")   # Ray's socket paths must stay < 108 chars
        self.env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
        self.env.pop("RAY_ADDRESS", None)
        # the nodes' environment has the virtual environment first (as if activated): a job's `explorer`
        self.env["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
        self.head: subprocess.Popen | None = None
        self.worker: subprocess.Popen | None = None
        self.workers_started = 0
        self._logs: list[Any] = []

    def _popen(self, args: list[str], log: str) -> subprocess.Popen:
        self._logs.append(open(Path(self.temp_dir) / log, "w"))
        return subprocess.Popen([str(BIN / "ray"), "start", *args, "--num-cpus=1", f"--temp-dir={self.temp_dir}",
                                 f"--dashboard-agent-listen-port={free_port()}", "--block", "--disable-usage-stats"],
                                env=self.env, stdout=self._logs[-1], stderr=subprocess.STDOUT,
                                start_new_session=True)

    def start(self) -> "RayCluster":
        env = {"RAY_health_check_period_ms": "1000", "RAY_health_check_failure_threshold": "3"}
        self.env.update(env)
        self.head = self._popen(["--head", f"--port={self.port}", "--include-dashboard=true",
                                 "--dashboard-host=127.0.0.1", f"--dashboard-port={self.dashboard_port}",
                                 f"--ray-client-server-port={free_port()}"], "head.log")
        self._wait_for_port(self.port)      # the worker node joins as soon as the head's GCS port answers
        self.start_worker()
        self.wait_for_nodes(2)
        return self

    def start_worker(self) -> None:
        self.workers_started += 1
        self.worker = self._popen([f"--address={self.address}"], f"worker{self.workers_started}.log")

    def kill_worker(self) -> None:
        """SIGKILL the worker node's `ray start --block` session (its raylet and agents: the node is lost)."""
        assert self.worker is not None
        stop_group(self.worker, grace_s=0, sig=signal.SIGKILL)

    def ensure_two_nodes(self) -> None:
        """Start a new worker node if a test lost the previous one."""
        if self.worker is None or self.worker.poll() is not None:
            self.start_worker()
        self.wait_for_nodes(2)

    def close(self) -> None:
        for p in (self.worker, self.head):
            if p is not None:
                stop_group(p, grace_s=2.0)
        kill_leftovers(self.temp_dir)
        for f in self._logs:
            f.close()
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def logs(self) -> str:
        return "\n".join(f"--- {f.name}\n{f.read_text()[-2000:]}" for f in Path(self.temp_dir).glob("*.log"))

    def _check_alive(self) -> None:
        for p in (self.head, self.worker):
            if p is not None and p.poll() is not None and p.returncode != -signal.SIGKILL:
                pytest.fail(f"`ray start` exited with {p.returncode}:\n{self.logs()}")

    def _wait_for_port(self, port: int, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._check_alive()
            if port_open(port):
                return
            time.sleep(0.2)
        pytest.fail(f"Ray head did not listen on port {port} within {timeout_s} s")

    def alive_nodes(self) -> int | None:
        """Live nodes, asked from a separate process (None when it cannot tell)."""
        probe = ("import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False, logging_level='ERROR');"
                 "print(sum(1 for x in ray.nodes() if x['Alive']))")
        out = subprocess.run([sys.executable, "-c", probe, self.address], env=self.env, capture_output=True,
                             text=True, timeout=60)
        last = out.stdout.strip().splitlines()[-1] if out.returncode == 0 and out.stdout.strip() else ""
        return int(last) if last.isdigit() else None

    def wait_for_nodes(self, n: int, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        alive = None
        while time.monotonic() < deadline:
            self._check_alive()
            alive = self.alive_nodes()
            if alive is not None and alive >= n:
                return
            time.sleep(1.0)
        pytest.fail(f"Ray cluster at {self.address}: {alive} node(s) alive after {timeout_s} s, expected {n}")


# -- explorer ------------------------------------------------------------------------------
def cluster_env(cluster: RayCluster, optuna_url: str, tracking_uri: str) -> dict[str, str]:
    """The environment that points `explorer` at the cluster, PostgreSQL and the MLflow server."""
    env = {**cluster.env, "EXPLORER_RAY_ADDRESS": cluster.address, "EXPLORER_OPTUNA_STORAGE": optuna_url,
           "EXPLORER_MLFLOW_URI": tracking_uri}
    env.pop("EXPLORER_ZARR_URL", None)
    return env


def explorer(args: list[str], env: dict, cwd: Path, timeout_s: float = 300) -> subprocess.CompletedProcess:
    """Run `explorer ARGS` to the end."""
    return subprocess.run([str(BIN / "explorer"), *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout_s)


class Background:
    """`explorer ARGS` in the background, in its own session (so that a test can kill exactly it and its
    children), its output in ``log``."""

    def __init__(self, args: list[str], env: dict, cwd: Path, log: Path):
        self.log = log
        self._f = open(log, "w")
        self.proc = subprocess.Popen([str(BIN / "explorer"), *args], env=env, cwd=cwd, stdout=self._f,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self) -> int:
        """SIGKILL the process and its group (a crash: no clean-up of any kind); returns its exit status."""
        stop_group(self.proc, grace_s=0, sig=signal.SIGKILL)
        self._f.close()
        return self.proc.wait()

    def wait(self, timeout_s: float = 300) -> int:
        try:
            return self.proc.wait(timeout=timeout_s)
        finally:
            self._f.close()

    @property
    def output(self) -> str:
        return self.log.read_text()


def launch_explorer(args: list[str], env: dict, cwd: Path, log: Path | None = None) -> Background:
    return Background(args, env, cwd, log or cwd / f"explorer-{time.monotonic_ns()}.log")


def verify(name: str, env: dict, cwd: Path, *extra: str) -> dict:
    """`explorer verify NAME --json` (plus ``extra``, e.g. ``--repair``) as a dict; fails on a bad exit."""
    out = explorer(["verify", name, "--studies-dir", str(cwd / "studies"), "--json", *extra], env, cwd)
    # the JSON report is the last thing printed (MLflow prints "View run ..." lines on stdout while repairing)
    start = out.stdout.find("\n{") + 1 if not out.stdout.startswith("{") else 0
    try:
        report = json.loads(out.stdout[start:])
    except json.JSONDecodeError:
        pytest.fail(f"`explorer verify` printed no JSON (exit {out.returncode}):\n{out.stdout}\n{out.stderr}")
    report["returncode"] = report.get("returncode", out.returncode)
    report["mlflow_prints_on_stdout"] = start > 0
    return report


def verify_ok(report: dict, checked: int) -> None:
    """``report`` (:func:`verify`) says ok, having checked ``checked`` COMPLETE trials; else fail showing its problems."""
    if not (report["ok"] and report["checked"] == checked):
        pytest.fail(f"explorer verify: ok={report['ok']} checked={report['checked']} (expected {checked}) "
                    f"counts={report.get('counts')} problems={report.get('problems', [])[:6]}")


# -- Optuna in PostgreSQL -------------------------------------------------------------------
def optuna_trials(optuna_url: str, cfg: dict) -> dict[str, list]:
    """The Optuna trials of every subject study of ``cfg``'s study, read from the storage: {subject: trials}."""
    from explorer.config import parse_config
    from explorer.search import list_subject_studies, open_storage, open_subject_study

    config = parse_config(cfg)
    storage = open_storage(optuna_url)
    return {sid: open_subject_study(storage, config, sid, create=False).get_trials(deepcopy=True)
            for sid in list_subject_studies(storage, config.name)}


def count_complete(optuna_url: str, cfg: dict) -> int:
    """COMPLETE trials of the study so far (0 while its studies do not exist yet)."""
    from optuna.trial import TrialState

    try:
        trials = optuna_trials(optuna_url, cfg)
    except Exception:  # noqa: BLE001 - not created yet
        return 0
    return sum(t.state == TrialState.COMPLETE for ts in trials.values() for t in ts)


def wait_until(what: str, predicate, timeout_s: float = 180.0, poll_s: float = 0.3,
               alive: subprocess.Popen | None = None) -> None:
    """Poll ``predicate()`` until true; fail after ``timeout_s`` or when ``alive`` (a process) has exited."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if alive is not None and alive.poll() is not None:
            pytest.fail(f"waiting for {what}: the process exited with {alive.returncode} first")
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout_s} s")
        time.sleep(poll_s)


def param_key(trial) -> tuple:
    return tuple(sorted(trial.params.items()))


def assert_exact(trials: dict[str, list], subjects: list[str], n: int) -> dict[str, Counter]:
    """Each subject has exactly ``n`` finished trials, all COMPLETE; nothing RUNNING or WAITING; no parameter
    set evaluated twice (a trial reaped as "interrupted" is evaluated once, by its re-enqueued twin).

    Returns each subject's trial states, with the FAIL reasons, e.g. ``{"COMPLETE": 8, "FAIL interrupted": 1}``.
    """
    from optuna.trial import TrialState

    from explorer.search.studies import FAIL_REASON_ATTR, INTERRUPTED

    assert sorted(trials) == sorted(subjects)
    states = {}
    for sid, ts in trials.items():
        c = Counter(t.state.name + (f" {t.user_attrs.get(FAIL_REASON_ATTR)}" if t.state == TrialState.FAIL else "")
                    for t in ts)
        states[sid] = c
        counted = [t for t in ts if not (t.state == TrialState.FAIL and t.user_attrs.get(FAIL_REASON_ATTR) == INTERRUPTED)]
        assert c["COMPLETE"] == n and len(counted) == n, (sid, c)
        assert set(c) <= {"COMPLETE", f"FAIL {INTERRUPTED}"}, (sid, c)       # nothing RUNNING, WAITING or failed
        keys = [param_key(t) for t in counted]
        assert len(set(keys)) == len(keys), (sid, "a parameter set was evaluated twice", Counter(keys).most_common(2))
        full = set().union(*(t.params for t in counted))
        for t in ts:    # an interrupted trial's parameters are evaluated by exactly one counted trial, unless
            # it was killed while being asked (some parameters missing): never simulated, it is not re-run
            if t not in counted and set(t.params) == full:
                assert keys.count(param_key(t)) == 1, (sid, t.number, "interrupted and never re-run")
    return states
