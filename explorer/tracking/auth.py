"""Credentials for an MLflow tracking server with authentication (``mlflow server --app-name basic-auth``,
as ``cluster/start_mlflow.sh`` starts it), and one check of them when a tracker opens.

explorer sends what MLflow's own client sends: :data:`TOKEN` as a bearer token, else :data:`USERNAME`
and :data:`PASSWORD` (environment first, then ``~/.mlflow/credentials``, MLflow's credentials file)
as HTTP basic auth. :func:`check_access` asks the server once, before any trial runs, whether it lets
them in: a 401 or 403 becomes an :class:`~explorer.errors.AccessError` naming the variables, instead
of MLflow's stack trace or a sweep that runs on and logs nothing.

Cheap to import (``explorer ui`` builds the CLI from a module that imports it): mlflow is imported
inside the functions.
"""

from __future__ import annotations

import base64
import os

from explorer.errors import AccessError
from explorer.secrets import redact_url

USERNAME, PASSWORD, TOKEN = "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"
CREDENTIALS_FILE = "~/.mlflow/credentials"
#: the REST call of the check: what a tracker's first call is (200, or 404 for a new study, when let in)
PROBE = "/api/2.0/mlflow/experiments/get-by-name"


def is_http(uri: str) -> bool:
    return str(uri).startswith(("http://", "https://"))


def credentials() -> tuple[str | None, str | None, str | None]:
    """(username, password, token) as MLflow's client reads them: the environment, else its credentials file."""
    from mlflow.utils.credentials import read_mlflow_creds

    creds = read_mlflow_creds()
    return creds.username, creds.password, os.environ.get(TOKEN) or None


def auth_headers() -> dict[str, str]:
    """The ``Authorization`` header MLflow's client would send (bearer token, else basic), or {}."""
    user, password, token = credentials()
    if token:
        return {"Authorization": f"Bearer {token}"}
    if user:
        pair = f"{user}:{password or ''}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
    return {}


def refused(uri: str, status: int, experiment: str | None = None) -> AccessError:
    """The error for a 401 (no or wrong credentials) or 403 (no permission) from the server at ``uri``."""
    user, password, token = credentials()
    where = f"MLflow at {redact_url(uri)}"
    if status == 403:
        on = f" on experiment {experiment!r}" if experiment else ""
        return AccessError(f"{where} refused user {user!r} (HTTP 403: no permission{on}): ask the server's "
                           f"admin to grant it (MLflow's permissions API), or set {USERNAME} and {PASSWORD} "
                           "to an account that has it")
    if token:
        given = f"{TOKEN} is set but was not accepted"
    elif user:
        given = (f"{USERNAME}={user!r} was given " + ("with a password it did not accept (or an unknown user)" if password else f"without {PASSWORD}"))
    else:
        given = f"no credentials were given (neither {USERNAME}/{PASSWORD} nor {TOKEN}, nor {CREDENTIALS_FILE})"
    return AccessError(f"{where} requires a login (HTTP 401): {given}. Set {USERNAME} and {PASSWORD} "
                       f"(or {TOKEN}) to an account on that server; cluster/start_mlflow.sh writes the admin's to "
                       f"its --auth-dir's credentials file, which can be copied to {CREDENTIALS_FILE}")


def check_access(uri: str, experiment: str, timeout_s: float = 20.0) -> None:
    """For an http(s) ``uri``: one request with the client's credentials; raise :func:`refused`'s error on
    401/403. Anything else (let in, unreachable, a server error) is left to the client's own calls."""
    if not is_http(uri):
        return
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    try:
        resp = http_request(get_default_host_creds(uri), PROBE, "GET", max_retries=0, timeout=timeout_s,
                            params={"experiment_name": experiment})
    except Exception:  # noqa: BLE001 - unreachable: the tracker's own calls report (or wait out) that
        return
    if resp.status_code in (401, 403):
        raise refused(uri, resp.status_code, experiment)
