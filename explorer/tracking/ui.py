"""The servers of `explorer ui NAME`: browse a study in the MLflow UI (and optuna-dashboard), light on CPUs.

``mlflow server`` runs with one uvicorn worker and no job runner (``MLFLOW_SERVER_ENABLE_JOB_EXECUTION
=false``: no huey consumers). MLflow 3's UI picks GenAI or model-training views from a browser-side
``workflowType`` (URL parameter, else localStorage ``mlflow.workflowType``, default GenAI) and
ignores the experiment's ``mlflow.experimentKind`` tag for that choice, so the printed links carry
``?workflowType=machine_learning`` and open straight on the runs table. For the embedded store it
also saves a runs view "Best fit per subject" on the experiment (tag
``mlflow.sharedViewState.explorer-best-fit``: parent runs, best first, best scores and parameters as
columns), listed in the UI's Views menu and opened by the ``per subject`` link.

Cheap to import: its command line (``ui`` in :mod:`explorer.study.commands`, which reads the study's frozen
config and passes it to :func:`start_ui`) is imported to build the CLI's parser.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from explorer.config import StudyConfig
from explorer.errors import StudyError, TrackingError
from explorer.layout import mlflow_artifacts, mlflow_uri, optuna_storage_url
from explorer.search.storage import journal_path, storage_kind
from explorer.secrets import has_secret, redact_url
from explorer.tracking.auth import auth_headers, refused
from explorer.tracking.relocate import repair_artifact_locations
from explorer.tracking.tracker import metric_key

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
MLFLOW_PORT, OPTUNA_PORT = 5000, 8080
WORKFLOW = "workflowType=machine_learning"
#: the runs view explorer saves on the study's experiment (MLflow's shared view state tag)
VIEW_TAG_PREFIX, VIEW_KEY, VIEW_NAME = "mlflow.sharedViewState.", "explorer-best-fit", "Best fit per subject"
#: what keeps ``mlflow server`` light: no job runner (huey consumers), no telemetry
LIGHT_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}


class ServerExited(TrackingError):
    """A UI server process ended on its own; the message holds its exit status and log tail."""


# ---- URLs and the MLflow REST API ------------------------------------------------------------
def runs_url(base: str, experiment_id: str) -> str:
    """The study's runs table: ``<base>/#/experiments/<id>/runs?workflowType=machine_learning``."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?{WORKFLOW}"


def run_url(base: str, experiment_id: str, run_id: str) -> str:
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}?{WORKFLOW}"


def _opener(base: str) -> urllib.request.OpenerDirector:
    host = urllib.parse.urlparse(base).hostname or ""
    handlers = [urllib.request.ProxyHandler({})] if host in ("127.0.0.1", "localhost", "::1") else []
    return urllib.request.build_opener(*handlers)


def _request(base: str, path: str, payload: dict | None = None, timeout_s: float = 10.0) -> dict:
    """GET (or POST ``payload``) ``<base><path>`` and decode its JSON, with the credentials MLflow's client
    sends (:func:`explorer.tracking.auth.auth_headers`)."""
    headers = {"Content-Type": "application/json"} if payload is not None else {}
    headers.update(auth_headers())
    data = json.dumps(payload).encode() if payload is not None else None
    req = urllib.request.Request(base.rstrip("/") + path, data=data, headers=headers)
    with _opener(base).open(req, timeout=timeout_s) as resp:
        return json.loads(resp.read() or b"{}")


def experiment_id(base: str, name: str) -> str:
    """Id of experiment ``name`` on the MLflow server at ``base``."""
    try:
        q = urllib.parse.urlencode({"experiment_name": name})
        return str(_request(base, f"/api/2.0/mlflow/experiments/get-by-name?{q}")["experiment"]["experiment_id"])
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise refused(base, exc.code, name) from None
        if exc.code == 404:
            raise StudyError(f"MLflow at {redact_url(base)} has no experiment {name!r}: has the study logged "
                             "anything yet? (`explorer run CONFIG`)") from None
        raise TrackingError(f"MLflow at {redact_url(base)} answered {exc.code} for experiment {name!r}: "
                            f"{exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise TrackingError(f"cannot reach MLflow at {redact_url(base)} ({exc}); start that server or check "
                            "storage.mlflow / EXPLORER_MLFLOW_URI") from None


@dataclass(frozen=True)
class BestSubject:
    """The subject whose parent run has the best ``metric`` (the objective) and its best ``params``."""

    subject: str
    run_id: str
    metric: str
    value: float
    params: dict[str, str]

    def describe(self) -> str:
        def fmt(v: str) -> str:
            try:
                return f"{float(v):.4g}"
            except ValueError:
                return v
        params = ", ".join(f"{k}={fmt(v)}" for k, v in sorted(self.params.items()))
        return f"{self.subject}: {self.metric}={self.value:.4f}" + (f" ({params})" if params else "")


def subject_runs(base: str, exp_id: str) -> list[dict]:
    """The parent runs (tag ``explorer.role = subject``) of experiment ``exp_id``, as REST JSON."""
    runs, token = [], None
    while True:
        body = {"experiment_ids": [exp_id], "filter": "tags.`explorer.role` = 'subject'", "max_results": 1000,
                **({"page_token": token} if token else {})}
        page = _request(base, "/api/2.0/mlflow/runs/search", body)
        runs += page.get("runs", [])
        token = page.get("next_page_token")
        if not token:
            return runs


def _kv(run: dict, kind: str) -> dict[str, str]:
    return {x["key"]: x["value"] for x in run.get("data", {}).get(kind, [])}


def _objective_key(runs: list[dict], objective: str) -> str:
    """The parent metric holding a subject's best ``objective``: its own MLflow name (the children's
    column), or ``best_<objective>`` in studies logged before the parent shared the children's names."""
    key = metric_key(objective)
    return key if any(key in _kv(r, "metrics") for r in runs) or not runs else f"best_{key}"


def _best_params(run: dict) -> dict[str, str]:
    """The subject's current best parameters: tag ``best_params`` (JSON), else params (``best.*`` in
    older studies, with their ``.latest`` tags)."""
    tags = _kv(run, "tags")
    try:
        best = json.loads(tags.get("best_params", ""))
        if isinstance(best, dict):
            return {k: str(v) for k, v in best.items()}
    except ValueError:
        pass
    params = _kv(run, "params")
    if any(k.startswith("best.") for k in params):
        params = {k[5:]: v for k, v in params.items() if k.startswith("best.")}
        params.update({k[5:-7]: v for k, v in tags.items() if k.startswith("best.") and k.endswith(".latest")})
    return params


def best_subject(runs: list[dict], objective: str, direction: str) -> BestSubject | None:
    """Among parent ``runs``, the subject with the best ``objective`` (``direction``: maximize/minimize)."""
    metric, best, sign = _objective_key(runs, objective), None, -1.0 if direction == "minimize" else 1.0
    for run in runs:
        value = _kv(run, "metrics").get(metric)
        if value is None or not math.isfinite(float(value)):
            continue
        if best is None or sign * float(value) > sign * best.value:
            best = BestSubject(_kv(run, "tags").get("subject", run["info"].get("run_name", "")),
                               run["info"]["run_id"], metric, float(value), _best_params(run))
    return best


def best_fit_view(runs: list[dict], objectives: list[str], direction: str) -> dict:
    """MLflow runs-page view state: parent runs only, best first (by ``objectives[0]`` in
    ``direction``), with the objectives and the best parameters as columns."""
    metrics = [_objective_key(runs, o) for o in objectives]
    params = sorted({k for r in runs for k in _kv(r, "params")})
    tags = [t for t in ("participant", "session", "best_trial") if any(t in _kv(r, "tags") for r in runs)]
    return {"searchFilter": "tags.`explorer.role` = 'subject'", "orderByKey": f"metrics.`{metrics[0]}`",
            "orderByAsc": direction == "minimize",
            "selectedColumns": [f"metrics.`{k}`" for k in metrics] + [f"params.`{k}`" for k in params]
            + [f"tags.`{k}`" for k in tags]}


def save_view(base: str, exp_id: str, state: dict, key: str = VIEW_KEY, name: str = VIEW_NAME) -> str:
    """Store ``state`` as the experiment's shared runs view ``key`` (it shows in the UI's Views menu);
    returns the runs URL that opens it."""
    now = int(time.time() * 1000)
    envelope = {"name": name, "createdAt": now, "updatedAt": now, "state": json.dumps(state)}
    _request(base, "/api/2.0/mlflow/experiments/set-experiment-tag",
             {"experiment_id": exp_id, "key": f"{VIEW_TAG_PREFIX}{key}", "value": json.dumps(envelope)})
    return f"{runs_url(base, exp_id)}&viewStateShareKey={urllib.parse.quote(key)}"


# ---- child servers --------------------------------------------------------------------------
@dataclass
class _Child:
    name: str
    proc: subprocess.Popen
    log_path: Path
    port: int

    def tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.rstrip().splitlines()[-lines:])

    def exited(self) -> ServerExited:
        tail = self.tail()
        hint = (f"; port {self.port} is taken: pass another with --{'optuna-' if 'optuna' in self.name else ''}port"
                if re.search(r"address already in use|errno 98", tail, re.IGNORECASE) else "")
        return ServerExited(f"{self.name} exited with status {self.proc.returncode}{hint}. Its last output:\n{tail}")


def _check_port(port: int, flag: str) -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            raise TrackingError(f"port {port} on {HOST} is in use (another `explorer ui`?); pass a free one "
                                f"with {flag}, e.g. {flag} {port + 1}") from None


def _parent_death_signal():
    """Linux: a ``preexec_fn`` that has the child sent SIGTERM when its parent thread ends (even by
    SIGKILL), so no server outlives explorer; None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl    # looked up before the fork
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, int(signal.SIGTERM))          # 1 = PR_SET_PDEATHSIG


def _spawn(name: str, cmd: list[str], env: dict[str, str], logdir: Path, port: int) -> _Child:
    """Start ``cmd`` in its own process group (so Ctrl-C reaches explorer only), output to a log file."""
    log_path = logdir / f"{name}.log"
    log.debug("starting %s: %s", name, " ".join(cmd))
    with open(log_path, "wb") as out:   # the child keeps its own descriptor
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, **env}, start_new_session=True,
                                preexec_fn=_parent_death_signal())
    return _Child(name, proc, log_path, port)


def _wait_http(child: _Child, url: str, timeout_s: float) -> None:
    """Return once ``url`` answers below 500; ServerExited if the child ends first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.proc.poll() is not None:
            raise child.exited()
        try:
            with _opener(url).open(url, timeout=2.0) as resp:
                if resp.status < 500:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    raise TrackingError(f"{child.name} did not answer on {url} within {timeout_s:.0f} s; its last output:\n"
                        f"{child.tail()}")


def _mlflow_cmd(uri: str, artifact_root: str | None, port: int) -> tuple[list[str], dict[str, str]]:
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", HOST, "--port", str(port), "--workers", "1",
           "--uvicorn-opts", "--timeout-graceful-shutdown 5"]
    env = dict(LIGHT_ENV)
    if has_secret(uri):
        env["MLFLOW_BACKEND_STORE_URI"] = uri       # keeps the password out of `ps`
    else:
        cmd += ["--backend-store-uri", uri]
    if artifact_root:
        cmd += ["--default-artifact-root", artifact_root]
    return cmd, env


def _optuna_cmd(storage: str, port: int, logdir: Path) -> list[str]:
    exe = Path(sysconfig.get_path("scripts")) / "optuna-dashboard"
    exe = str(exe) if exe.is_file() else shutil.which("optuna-dashboard")
    if not exe:
        raise TrackingError("optuna-dashboard is not installed: pip install '.[cluster]' (or pip install "
                            "optuna-dashboard), or leave out --optuna")
    opts = ["--host", HOST, "--port", str(port), "--server", "wsgiref", "--quiet"]
    if storage_kind(storage) == "journal":
        path = journal_path(storage).resolve()
        if not path.is_file():
            raise StudyError(f"no Optuna journal at {path}: has the study run? (`explorer run CONFIG`)")
        return [exe, str(path), "--storage-class", "JournalFileStorage", *opts]
    if has_secret(storage):                         # keeps the password out of `ps`
        conf = logdir / "optuna-dashboard.toml"
        conf.write_text(f"[optuna_dashboard]\nstorage = {json.dumps(storage)}\n")
        conf.chmod(0o600)
        return [exe, "--from-config", str(conf), *opts]
    return [exe, storage, *opts]


@dataclass
class UIServers:
    """What :func:`start_ui` started: ``urls`` (``mlflow``, ``subjects``, ``runs``, ``best``,
    ``optuna``), the ``best`` subject, the artifact ``relocations`` done; :meth:`stop` ends it."""

    urls: dict[str, str] = field(default_factory=dict)
    best: BestSubject | None = None
    relocations: list = field(default_factory=list)
    children: list[_Child] = field(default_factory=list)
    logdir: Path | None = None

    @property
    def running(self) -> bool:
        return any(c.proc.poll() is None for c in self.children)

    def poll(self) -> ServerExited | None:
        """The error of the first child that has ended, or None while all run."""
        for c in self.children:
            if c.proc.poll() is not None:
                return c.exited()
        return None

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM each child's process group, wait up to ``timeout_s`` (s), then SIGKILL what is left."""
        for c in self.children:
            _signal_group(c.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for c in self.children:
            try:
                c.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0f s; killing it", c.name, timeout_s)
                _signal_group(c.proc.pid, signal.SIGKILL)
                c.proc.wait()
            _signal_group(c.proc.pid, signal.SIGKILL)     # stragglers of a group whose leader ended
        if self.logdir is not None:
            shutil.rmtree(self.logdir, ignore_errors=True)
            self.logdir = None

    def __enter__(self) -> "UIServers":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def start_ui(cfg: StudyConfig, study_dir: str | Path, port: int = MLFLOW_PORT, optuna: bool = False,
             optuna_port: int = OPTUNA_PORT, *, timeout_s: float = 180.0) -> UIServers:
    """Serve the MLflow runs (and, with ``optuna``, the Optuna storage) of study ``cfg`` in ``study_dir`` on 127.0.0.1.

    Default store (``<study>/mlflow.db``): artifact locations are repaired if the folder moved, then
    ``mlflow server`` starts on ``port`` and the "Best fit per subject" view is saved. Another SQL
    store: a server starts on it, nothing is written. An http(s) tracking URI: nothing starts, the
    URLs point at that server. ``timeout_s``: how long each server may take to answer (s). Raises
    TrackingError (port taken, server failed; ServerExited with its output) or StudyError.
    """
    study_dir = Path(study_dir).resolve()
    uri = mlflow_uri(cfg, study_dir)
    remote = uri.startswith(("http://", "https://"))
    if not remote and not re.match(r"^(sqlite|postgres|postgresql|mysql|mssql)(\+\w+)?:", uri):
        raise TrackingError(f"explorer ui serves SQL tracking stores and links http(s) servers, not "
                            f"{uri.split(':')[0]}: open that store in its own UI")
    if not remote:
        _check_port(port, "--port")
    if optuna:
        _check_port(optuna_port, "--optuna-port")
    servers = UIServers(logdir=Path(tempfile.mkdtemp(prefix="explorer-ui-")))
    try:
        mlflow_child = None
        artifacts = mlflow_artifacts(cfg, study_dir)       # None unless the embedded default store
        if remote:
            parts = urllib.parse.urlsplit(uri)           # no user:password@ in printed links
            base = urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2])).rstrip("/")
        else:
            if artifacts is not None:
                servers.relocations = repair_artifact_locations(study_dir)
            base = f"http://{HOST}:{port}"
            cmd, env = _mlflow_cmd(uri, Path(artifacts).as_uri() if artifacts else None, port)
            mlflow_child = _spawn("mlflow server", cmd, env, servers.logdir, port)
            servers.children.append(mlflow_child)
        if optuna:
            cmd = _optuna_cmd(optuna_storage_url(cfg, study_dir), optuna_port, servers.logdir)
            servers.children.append(_spawn("optuna-dashboard", cmd, {}, servers.logdir, optuna_port))
        if mlflow_child is not None:
            _wait_http(mlflow_child, f"{base}/health", timeout_s)
        exp_id = experiment_id(base, cfg.name)
        servers.urls["mlflow"] = base
        parents = subject_runs(base, exp_id)
        if mlflow_child is not None and artifacts is not None and parents:
            view = best_fit_view(parents, cfg.objectives, cfg.directions[0])
            servers.urls["subjects"] = save_view(base, exp_id, view)
        servers.urls["runs"] = runs_url(base, exp_id)
        servers.best = best_subject(parents, cfg.objectives[0], cfg.directions[0])
        if servers.best is not None:
            servers.urls["best"] = run_url(base, exp_id, servers.best.run_id)
        if optuna:
            url = f"http://{HOST}:{optuna_port}/dashboard"
            _wait_http(servers.children[-1], url, timeout_s)
            servers.urls["optuna"] = url
    except BaseException:
        servers.stop()
        raise
    return servers
