"""Suite-wide fixtures: a throw-away PostgreSQL server for the `cluster` tests, a local Ray session."""

from __future__ import annotations

import glob
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_server():
    """Start PostgreSQL with cluster/start_postgres.sh; yield ``(optuna_url, mlflow_url)``.

    `make test` installs the server (cluster/install_postgres.sh); without it the test is skipped
    with the reason, never passed.
    """
    if not glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"):
        pytest.skip("PostgreSQL server not installed: run `make test` (it installs it) or cluster/install_postgres.sh")
    # not under pytest's basetemp: another pytest session starting meanwhile resets
    # /tmp/pytest-of-<user> to 0700, and the server (user 'postgres') then loses its data dir
    base = Path(tempfile.mkdtemp(prefix="explorer-pg-"))
    datadir = base / "data"
    port = _free_port()
    out = subprocess.run(
        [str(ROOT / "cluster/start_postgres.sh"), str(datadir), str(port), "explorer_optuna", "explorer_mlflow"],
        check=True, capture_output=True, text=True,
    ).stdout.split()
    try:
        yield out[0], out[1]
    finally:
        subprocess.run([str(ROOT / "cluster/stop_postgres.sh"), str(datadir)], check=False)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray session (2 CPUs) for the whole suite: started by the first test that asks for it
    (starting and stopping Ray costs seconds, per module it added up to most of a minute)."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()
