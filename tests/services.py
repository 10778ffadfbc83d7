"""Throw-away servers for the tests and the benchmarks: PostgreSQL (cluster/start_postgres.sh and
cluster/stop_postgres.sh), an ``mlflow server`` on one of its databases, Optuna's gRPC storage proxy in
front of another, and free local ports.

Why tests/services.py: these start and stop servers on this machine for a test or a measurement; no
study needs them, so they stay out of the installed ``explorer`` package, and cluster/ keeps only the
deployment scripts they wrap (a ``cluster`` module would also clash with tests/cluster on the test
path). pytest puts tests/ on ``sys.path`` (tests/conftest.py, rootdir-relative imports), so tests import
it as ``services``, like ``study_configs``; a benchmark puts tests/ on ``sys.path`` itself
(benchmarks/bench_scale.py).

Each server runs in its own process session, so stopping it stops exactly it and its children, never
a kill by name. A server that does not come up raises :class:`ServiceError` with its log's tail.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent                  # the virtual environment's scripts (mlflow, ray, explorer)
PG_CTL_GLOB = "/usr/lib/postgresql/*/bin/pg_ctl"


class ServiceError(RuntimeError):
    """A throw-away server did not start, or exited; the message carries its log's tail."""


# -- processes and ports -------------------------------------------------------------------
def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the OS's pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, timeout_s: float = 1.0) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port``."""
    with socket.socket() as s:
        s.settimeout(timeout_s)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_port(port: int, proc: subprocess.Popen, what: str, timeout_s: float = 60.0) -> None:
    """Wait until ``proc`` (named ``what``) listens on ``port``; :class:`ServiceError` if it exits first
    or does not listen within ``timeout_s`` seconds."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceError(f"{what} exited with {proc.returncode} before listening on port {port}")
        if port_open(port):
            return
        time.sleep(0.2)
    raise ServiceError(f"{what} did not listen on port {port} within {timeout_s} s")


def stop_group(proc: subprocess.Popen, grace_s: float = 5.0, sig: int = signal.SIGTERM) -> None:
    """``sig`` (then SIGKILL after ``grace_s`` seconds) to the process group of ``proc`` (started with
    ``start_new_session=True``); children that outlive the leader are killed with it."""
    for s, wait_s in ((sig, grace_s), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, s)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
        if s == signal.SIGKILL:
            return
    try:  # children that outlive the leader are still in the group
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# -- PostgreSQL ----------------------------------------------------------------------------
def postgres_missing() -> str | None:
    """Why no throw-away PostgreSQL can start here (the server is not installed), or None."""
    if glob.glob(PG_CTL_GLOB):
        return None
    return (f"PostgreSQL server not installed (no {PG_CTL_GLOB}): run cluster/install_postgres.sh as root "
            "(`make test` does)")


def postgres_version() -> str:
    """The installed server's major version (the newest, as start_postgres.sh picks), e.g. ``"15"``."""
    versions = [Path(p).parents[1].name for p in glob.glob(PG_CTL_GLOB)]
    return max(versions, key=lambda v: [int(x) for x in v.split(".") if x.isdigit()]) if versions else "unknown"


class Postgres:
    """A server started by cluster/start_postgres.sh on a free port, data in ``datadir`` (fsync off),
    one database per name of ``dbs``; :attr:`urls` in that order. Stop it with :meth:`stop`."""

    def __init__(self, datadir: Path, dbs: Sequence[str]) -> None:
        if not dbs:
            raise ValueError("Postgres needs at least one database name")
        self.datadir = Path(datadir)
        self.port = free_port()
        out = subprocess.run([str(ROOT / "cluster/start_postgres.sh"), str(self.datadir), str(self.port), *dbs],
                             capture_output=True, text=True)
        if out.returncode != 0:
            log = self.datadir / "server.log"
            tail = log.read_text()[-2000:] if log.is_file() else ""
            raise ServiceError(f"cluster/start_postgres.sh {self.datadir} exited with {out.returncode}:\n"
                               f"{out.stderr.strip()}\n{tail}")
        self.urls: list[str] = out.stdout.split()

    @property
    def optuna_url(self) -> str:
        """The first database's URL (the Optuna storage, by the callers' convention)."""
        return self.urls[0]

    @property
    def mlflow_url(self) -> str:
        """The second database's URL (MLflow's backend store: never the Optuna one)."""
        return self.urls[1]

    def stop(self) -> None:
        """cluster/stop_postgres.sh (fast shutdown); a failure is printed by the script, not raised."""
        subprocess.run([str(ROOT / "cluster/stop_postgres.sh"), str(self.datadir)], check=False)

    @staticmethod
    def db_bytes(url: str) -> int:
        """The on-disk size of the database of ``url`` (``pg_database_size``), in bytes."""
        import sqlalchemy as sa

        eng = sa.create_engine(url)
        try:
            with eng.connect() as c:
                return int(c.execute(sa.text("SELECT pg_database_size(current_database())")).scalar())
        finally:
            eng.dispose()


@contextlib.contextmanager
def throwaway_postgres(dbs: Sequence[str] = ("explorer_optuna", "explorer_mlflow")) -> Iterator[Postgres]:
    """A :class:`Postgres` in a fresh temporary folder, stopped and deleted on exit.

    The folder is not under pytest's basetemp: another pytest session starting meanwhile resets
    /tmp/pytest-of-<user> to 0700, and the server (user 'postgres' when run as root) then loses its data.
    """
    base = Path(tempfile.mkdtemp(prefix="explorer-pg-"))
    try:
        pg = Postgres(base / "data", dbs)
        try:
            yield pg
        finally:
            pg.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)


# -- MLflow --------------------------------------------------------------------------------
def wait_healthy(uri: str, proc: subprocess.Popen | None, log_path: Path, timeout_s: float = 120.0) -> None:
    """Wait until an MLflow server at ``uri`` answers ``GET /health`` with 200; :class:`ServiceError` (with
    the end of ``log_path``) if its process ``proc`` exits first or it does not answer within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc is None or proc.poll() is not None:
            code = proc.returncode if proc is not None else "never started"
            raise ServiceError(f"mlflow server exited with {code}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise ServiceError(f"mlflow server did not answer {uri}/health within {timeout_s} s:\n"
                               f"{log_path.read_text()[-3000:]}")
        time.sleep(0.5)


class MlflowServer:
    """``mlflow server`` (one worker) on ``backend_uri``, serving artifacts from a temporary folder;
    :meth:`stop` and :meth:`start` it again on the same port, backend store and artifacts folder."""

    def __init__(self, backend_uri: str) -> None:
        self.backend_uri = backend_uri
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.base = Path(tempfile.mkdtemp(prefix="explorer-mlflow-"))
        self.artifacts = self.base / "artifacts"
        self.artifacts.mkdir()
        self.log_path = self.base / "mlflow_server.log"
        self.proc: subprocess.Popen | None = None
        self._log: IO[str] | None = None

    def start(self) -> MlflowServer:
        """Start the server (not waited for: see :meth:`wait_healthy`)."""
        if self.running:
            raise ServiceError(f"mlflow server on {self.uri} is already running")
        self._log = open(self.log_path, "a")
        self.proc = subprocess.Popen([str(BIN / "mlflow"), "server", "--backend-store-uri", self.backend_uri,
                                      "--artifacts-destination", str(self.artifacts), "--serve-artifacts",
                                      "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def stop(self) -> None:
        """SIGTERM (then SIGKILL) the server's process group; wait up to 30 s until its port is closed."""
        if self.proc is not None:
            stop_group(self.proc)
        if self._log is not None:
            self._log.close()
            self._log = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and port_open(self.port, timeout_s=0.5):
            time.sleep(0.2)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_healthy(self, timeout_s: float = 120.0) -> None:
        """Wait until the server answers ``GET /health`` with 200; :class:`ServiceError` if it exits first
        or does not answer within ``timeout_s`` seconds."""
        wait_healthy(self.uri, self.proc, self.log_path, timeout_s)

    def close(self) -> None:
        """Stop the server and delete its artifacts and log."""
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


@contextlib.contextmanager
def running_mlflow(backend_uri: str, timeout_s: float = 180.0) -> Iterator[str]:
    """An :class:`MlflowServer` on ``backend_uri``, healthy; yields its tracking URI; closed on exit."""
    server = MlflowServer(backend_uri)
    try:
        server.start().wait_healthy(timeout_s)
        yield server.uri
    finally:
        server.close()


# -- Optuna's gRPC storage proxy -----------------------------------------------------------
@contextlib.contextmanager
def grpc_proxy(rdb_url: str, log_dir: Path, timeout_s: float = 60.0) -> Iterator[tuple[str, int]]:
    """Optuna's gRPC storage proxy (``run_grpc_proxy_server``) in its own process in front of the SQL
    storage ``rdb_url``; yields its ``(host, port)``; its output goes to ``log_dir/grpc_proxy.log``."""
    port = free_port()
    code = ("import optuna; optuna.logging.set_verbosity(optuna.logging.WARNING)\n"
            "from optuna.storages import RDBStorage, run_grpc_proxy_server\n"
            f"run_grpc_proxy_server(RDBStorage({rdb_url!r}, engine_kwargs={{'pool_pre_ping': True}}, "
            f"heartbeat_interval=None), host='127.0.0.1', port={port})\n")
    log_path = Path(log_dir) / "grpc_proxy.log"
    with open(log_path, "w") as logf:
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            try:
                wait_port(port, proc, "Optuna gRPC proxy", timeout_s)
            except ServiceError as e:
                raise ServiceError(f"{e}:\n{log_path.read_text()[-2000:]}") from None
            yield "127.0.0.1", port
        finally:
            stop_group(proc, grace_s=15.0)
