"""Suite-wide fixtures: a throw-away PostgreSQL server for the `cluster` tests, a local Ray session.

The servers themselves are started by tests/services.py, which the benchmarks use too.
"""

from __future__ import annotations

import pytest

from services import postgres_missing, throwaway_postgres


@pytest.fixture(scope="session")
def postgres_server():
    """Start PostgreSQL with cluster/start_postgres.sh; yield ``(optuna_url, mlflow_url)``.

    `make test` installs the server (cluster/install_postgres.sh); without it the test is skipped
    with the reason, never passed.
    """
    missing = postgres_missing()
    if missing:
        pytest.skip(missing)
    with throwaway_postgres(("explorer_optuna", "explorer_mlflow")) as pg:
        yield pg.optuna_url, pg.mlflow_url


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray session (2 CPUs) for the whole suite: started by the first test that asks for it
    (starting and stopping Ray costs seconds, per module it added up to most of a minute)."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()
