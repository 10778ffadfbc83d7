"""MLflow credentials: the error for a refused login names the variables to set, and never the password;
a config whose storage URL holds a password is refused before study.yaml is written."""

import pytest

from explorer.config import parse_config
from explorer.errors import AccessError, ConfigError
from explorer.study.frozen import save_frozen
from explorer.tracking.auth import auth_headers, check_access, refused

PASSWORD = "s3cret-Pw-123"


@pytest.fixture
def no_creds(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))           # no ~/.mlflow/credentials
    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


def test_refused_login_names_the_variables(no_creds):
    err = refused("http://u:pw@h:5000", 401, "s")
    assert isinstance(err, AccessError)
    assert "no credentials were given" in str(err) and "MLFLOW_TRACKING_USERNAME" in str(err)
    assert "pw@" not in str(err)
    no_creds.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    assert "without MLFLOW_TRACKING_PASSWORD" in str(refused("http://h:5000", 401))
    no_creds.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
    msg = str(refused("http://h:5000", 401))
    assert "'alice'" in msg and "did not accept" in msg and PASSWORD not in msg
    assert "HTTP 403" in str(refused("http://h:5000", 403, "study")) and "'study'" in str(refused("http://h:5000", 403, "study"))


def test_headers_follow_mlflow_client(no_creds, tmp_path):
    assert auth_headers() == {}
    (tmp_path / ".mlflow").mkdir()
    (tmp_path / ".mlflow" / "credentials").write_text(
        "[mlflow]\nmlflow_tracking_username = bob\nmlflow_tracking_password = x\n")
    assert auth_headers() == {"Authorization": "Basic Ym9iOng="}                # bob:x, from MLflow's credentials file
    no_creds.setenv("MLFLOW_TRACKING_TOKEN", "tok")
    assert auth_headers() == {"Authorization": "Bearer tok"}
    check_access("sqlite:///nothing.db", "s")                                    # not http: nothing asked


def test_a_password_in_a_storage_url_is_never_frozen(tmp_path):
    cfg = parse_config({"name": "x", "cohort": {"source": "demo", "subjects": ["NAP_001"]}, "model": "hopf",
                        "params": {"free": {"G": {"low": 0.1, "high": 1.0}}},
                        "storage": {"optuna": f"postgresql://u:{PASSWORD}@h/db"}})
    with pytest.raises(ConfigError, match=r"storage\.optuna .*EXPLORER_OPTUNA_STORAGE") as info:
        save_frozen(cfg, tmp_path)
    assert PASSWORD not in str(info.value) and not (tmp_path / "study.yaml").exists()
