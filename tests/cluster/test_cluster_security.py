"""Security on a shared cluster: the project's own start scripts give an MLflow server that refuses
anonymous calls and a PostgreSQL server that asks for a password, and a study run against both keeps
every secret out of its folder, its MLflow runs and the process list (docs/security.md).

Everything listens on 127.0.0.1. The secrets: the PostgreSQL password (in the Optuna URL of
$EXPLORER_OPTUNA_STORAGE, as a careless user would give it, and in the password file the MLflow server
reads), the MLflow admin's password (MLFLOW_TRACKING_PASSWORD) and the Ray cluster's token.
"""

from __future__ import annotations

import glob
import os
import shutil
import stat
import subprocess
import tempfile
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import sqlalchemy as sa

from cluster_helpers import (BIN, SUBJECTS, cluster_env, count_complete, explorer, free_port,
                             launch_explorer, stop_group, study_config, verify, verify_ok, write_config)
from services import wait_healthy

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
CONFIG = study_config("secure_study", trials=2)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _pg_pass(passfile: Path) -> str:
    return passfile.read_text().strip().split(":")[4]


@pytest.fixture(scope="module")
def secure_pg():
    """start_postgres.sh --listen 127.0.0.1 --allow 127.0.0.1/32: ``(optuna_url, mlflow_url, passfile)``,
    URLs without the password."""
    if not glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"):
        pytest.skip("PostgreSQL server not installed: run `make test` (it installs it) or cluster/install_postgres.sh")
    base = Path(tempfile.mkdtemp(prefix="explorer-pgsec-"))
    passfile = base / "pgpass"
    port = free_port()
    out = subprocess.run([str(ROOT / "cluster/start_postgres.sh"), "--listen", "127.0.0.1", "--allow", "127.0.0.1/32",
                          "--passfile", str(passfile), str(base / "data"), str(port), "explorer_optuna",
                          "explorer_mlflow"], check=True, capture_output=True, text=True).stdout.split()
    try:
        yield out[0], out[1], passfile
    finally:
        subprocess.run([str(ROOT / "cluster/stop_postgres.sh"), str(base / "data")], check=False)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def auth_mlflow(secure_pg):
    """cluster/start_mlflow.sh on the password-protected MLflow database: ``(uri, user, password, auth_dir)``."""
    _, mlflow_db, passfile = secure_pg
    base = Path(tempfile.mkdtemp(prefix="explorer-mlsec-"))
    port = free_port()
    env = {**os.environ, "PGPASSFILE": str(passfile), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    for key in ("MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_AUTH_ADMIN_USERNAME"):
        env.pop(key, None)
    log = open(base / "server.log", "w")
    proc = subprocess.Popen([str(ROOT / "cluster/start_mlflow.sh"), "--host", "127.0.0.1", "--auth-dir",
                             str(base / "auth"), mlflow_db, str(base / "artifacts"), str(port), "--workers", "1"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(uri, proc, base / "server.log", 180.0)
        creds = dict(line.split(" = ", 1) for line in (base / "auth" / "credentials").read_text().splitlines()
                     if " = " in line)
        yield uri, creds["mlflow_tracking_username"], creds["mlflow_tracking_password"], base / "auth"
    finally:
        stop_group(proc)
        log.close()
        shutil.rmtree(base, ignore_errors=True)


def _post(uri: str, path: str, body: bytes, auth: tuple[str, str] | None = None) -> int:
    req = urllib.request.Request(uri + path, data=body, headers={"Content-Type": "application/json"})
    if auth is not None:
        import base64
        req.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


# -- PostgreSQL ------------------------------------------------------------------------------------
def test_postgres_off_localhost_asks_for_the_password(secure_pg, monkeypatch):
    from explorer.errors import AccessError
    from explorer.search import open_storage

    optuna_url, _, passfile = secure_pg
    assert "@" in optuna_url and ":" not in optuna_url.split("//", 1)[1].split("@")[0]   # no password in the URL
    assert _mode(passfile) == 0o600
    password = _pg_pass(passfile)
    monkeypatch.setenv("PGPASSFILE", str(passfile.parent / "absent"))
    with pytest.raises(sa.exc.OperationalError, match="password"):
        sa.create_engine(optuna_url).connect()
    with pytest.raises(sa.exc.OperationalError, match="password authentication failed"):
        sa.create_engine(optuna_url.replace("explorer@", "explorer:not-it@")).connect()
    with pytest.raises(sa.exc.OperationalError, match="pg_hba"):        # the superuser has no TCP way in
        sa.create_engine(optuna_url.replace("explorer@", "postgres@")).connect()
    with pytest.raises(AccessError, match="PGPASSFILE"):
        open_storage(optuna_url)
    # with the password file, Optuna's storage (and SQLAlchemy, which MLflow uses) connect
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    with sa.create_engine(optuna_url).connect() as conn:
        assert conn.execute(sa.text("select current_user")).scalar() == "explorer"
    open_storage(optuna_url).get_all_studies()
    assert password not in optuna_url


# -- MLflow ----------------------------------------------------------------------------------------
def test_mlflow_refuses_anonymous_and_wrong_credentials(auth_mlflow):
    uri, user, password, auth_dir = auth_mlflow
    body = b'{"name": "sneaked-in"}'
    assert _post(uri, "/api/2.0/mlflow/experiments/create", body) == 401
    assert _post(uri, "/api/2.0/mlflow/experiments/create", body, (user, "not-it")) == 401
    assert _post(uri, "/api/2.0/mlflow/experiments/search", b'{"max_results": 1}', (user, password)) == 200
    assert _mode(auth_dir) == 0o700
    for name in ("credentials", "auth.ini", "auth.db", "flask_secret_key"):
        assert _mode(auth_dir / name) == 0o600, name
    assert password not in (auth_dir / "auth.ini").read_text()
    assert password not in _ps()


# -- a study -----------------------------------------------------------------------------------------
def _env(ray_cluster, secure_pg, auth_mlflow, password: str | None = "right") -> dict[str, str]:
    optuna_url, _, passfile = secure_pg
    uri, user, mlflow_password, _ = auth_mlflow
    # the Optuna URL with its password in it (never saved: the environment is read, not frozen)
    with_pw = optuna_url.replace("explorer@", f"explorer:{_pg_pass(passfile)}@")
    env = cluster_env(ray_cluster, with_pw, uri)
    env.pop("PGPASSFILE", None)
    env.update({"MLFLOW_TRACKING_USERNAME": user,
                "MLFLOW_TRACKING_PASSWORD": mlflow_password if password == "right" else "not-it"})
    env.pop("MLFLOW_TRACKING_TOKEN", None)
    return env


def test_wrong_mlflow_password_stops_before_any_trial(ray_cluster, secure_pg, auth_mlflow, tmp_path):
    cfg = study_config("secure_refused", subjects=SUBJECTS[:1], trials=2)
    env = _env(ray_cluster, secure_pg, auth_mlflow, password="wrong")
    out = explorer(["run", str(write_config(tmp_path, cfg)), "--no-progress"], env, tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "MLFLOW_TRACKING_PASSWORD" in out.stderr and "HTTP 401" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and "not-it" not in out.stdout + out.stderr
    optuna_url, _, passfile = secure_pg
    os.environ["PGPASSFILE"] = str(passfile)
    try:
        assert count_complete(optuna_url, cfg) == 0
    finally:
        os.environ.pop("PGPASSFILE")


def _ps() -> str:
    """Every process's full command line (other users' processes may hold any bytes)."""
    return subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True).stdout.decode(errors="replace")


def _watch_ps(stop: threading.Event, seen: set[str]) -> None:
    while not stop.is_set():
        seen.update(_ps().splitlines())
        stop.wait(0.5)


def test_authenticated_study_keeps_its_secrets(ray_cluster, secure_pg, auth_mlflow, tmp_path, monkeypatch):
    from mlflow import MlflowClient

    from explorer.errors import AccessError
    from explorer.study.frozen import load_frozen
    from explorer.tracking.ui import start_ui

    env = _env(ray_cluster, secure_pg, auth_mlflow)
    uri, user, mlflow_password, _ = auth_mlflow
    secrets = {"PostgreSQL password": _pg_pass(secure_pg[2]), "MLflow password": mlflow_password,
               "Ray token": env["RAY_AUTH_TOKEN"]}
    seen: set[str] = set()
    stop = threading.Event()
    watcher = threading.Thread(target=_watch_ps, args=(stop, seen), daemon=True)
    watcher.start()
    try:
        run = launch_explorer(["run", str(write_config(tmp_path, CONFIG)), "--no-progress"], env, tmp_path)
        code = run.wait(300)
        ver = verify(CONFIG["name"], env, tmp_path)
    finally:
        stop.set()
        watcher.join()
    assert code == 0, run.output
    verify_ok(ver, CONFIG["trials"] * len(SUBJECTS))

    # what the study wrote, and what MLflow holds of it
    study_dir = tmp_path / "studies" / CONFIG["name"]
    files = [p for p in study_dir.rglob("*") if p.is_file()]
    assert (study_dir / "study.yaml") in files and (study_dir / "runs.jsonl") in files
    assert any(p.name == "zarr.json" for p in files)                       # the signals' attributes
    texts = {str(p): p.read_bytes().decode("latin-1") for p in files}
    texts["explorer's output"] = run.output
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", mlflow_password)
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(CONFIG["name"])
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    assert len(runs) > len(SUBJECTS)
    for r in runs:
        texts[f"run {r.info.run_name}"] = repr((r.data.params, r.data.tags))
        for a in client.list_artifacts(r.info.run_id):
            if a.path.endswith((".yaml", ".json")):
                texts[f"run {r.info.run_name}: {a.path}"] = Path(
                    client.download_artifacts(r.info.run_id, a.path, str(tmp_path / "dl"))).read_text()
    texts["experiment tags"] = repr(exp.tags)
    texts["the process list during the run"] = "\n".join(seen)
    ran = [line for line in seen if f"{CONFIG['name']}.yaml" in line]
    assert ran, f"the watcher never saw `explorer run` ({len(seen)} command lines seen: {[x for x in seen if 'explorer' in x][:8]})"
    leaks = [(what, where) for what, secret in secrets.items() for where, text in texts.items() if secret in text]
    assert not leaks, leaks

    # `explorer ui` on a login node: nothing starts for an http server; its calls carry the credentials
    monkeypatch.setenv("EXPLORER_MLFLOW_URI", uri)
    with start_ui(load_frozen(study_dir), study_dir) as servers:
        assert not servers.children and servers.best is not None and servers.best.subject in SUBJECTS
        assert all(mlflow_password not in u and "@" not in u for u in servers.urls.values())
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "not-it")
    with pytest.raises(AccessError, match="MLFLOW_TRACKING_PASSWORD"):
        start_ui(load_frozen(study_dir), study_dir)
