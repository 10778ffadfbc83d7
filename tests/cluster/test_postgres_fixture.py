"""The PostgreSQL server the cluster tests rely on really starts and serves two separate databases."""

import pytest
import sqlalchemy as sa

pytestmark = pytest.mark.cluster


def test_postgres_serves_separate_databases(postgres_server):
    optuna_url, mlflow_url = postgres_server
    assert optuna_url != mlflow_url
    for url in (optuna_url, mlflow_url):
        with sa.create_engine(url).connect() as conn:
            name = conn.execute(sa.text("select current_database()")).scalar()
        assert name == url.rsplit("/", 1)[1]
