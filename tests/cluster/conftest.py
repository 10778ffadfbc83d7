"""One Ray cluster and one MLflow server for every test of tests/cluster (starting them costs ~30 s).

They start on the first test that asks for them and stop as soon as the last test of this folder has
run (not at the end of the whole suite: they would hold two raylets, a dashboard and an MLflow server
through the other tests on a 2-core machine). Before each test, a lost worker node is started again
and a stopped MLflow server restarted, so every test starts with two Ray nodes and a healthy server.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cluster_helpers import RayCluster
from services import MlflowServer

HERE = Path(__file__).resolve().parent
_shared: dict[str, object] = {}


def _close_shared() -> None:
    for key in ("ray", "mlflow"):
        obj = _shared.pop(key, None)
        if obj is not None:
            obj.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    try:
        return (yield)
    finally:
        if nextitem is None or HERE not in Path(nextitem.path).resolve().parents:
            _close_shared()


def pytest_sessionfinish(session, exitstatus):
    _close_shared()


@pytest.fixture
def ray_cluster():
    """The shared :class:`~cluster_helpers.RayCluster`, with two live nodes."""
    cluster = _shared.get("ray")
    if cluster is None:
        cluster = RayCluster()
        _shared["ray"] = cluster   # registered first: a failed start is still cleaned up
        cluster.start()
    else:
        cluster.ensure_two_nodes()
    return cluster


@pytest.fixture
def mlflow_server(postgres_server):
    """The shared :class:`~services.MlflowServer` on the PostgreSQL MLflow database, running.

    Started, not waited for: a test calls ``wait_healthy()`` once the Ray cluster is up, so that both
    start at the same time.
    """
    server = _shared.get("mlflow")
    if server is None:
        server = MlflowServer(postgres_server[1])
        _shared["mlflow"] = server
    if not server.running:
        server.start()
    return server
