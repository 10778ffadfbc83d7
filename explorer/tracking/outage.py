"""An MLflow server that cannot be reached: telling it from other errors, and failing fast while it lasts.

:func:`unreachable` decides whether a failed tracker call should wait and be tried again (the
driver spools it, :class:`explorer.tracking.spool.TrackerThread`) rather than be recorded as failed.
:func:`fail_fast_http` shortens MLflow's own retries, which otherwise hold one call for minutes.
"""

from __future__ import annotations

import os

#: what the tracker's process uses where the user has not set them: one quick retry per request,
#: 20 s to connect or read; the spool then retries the whole call with its own backoff
FAIL_FAST_HTTP = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                  "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}


def fail_fast_http() -> dict[str, str]:
    """Set :data:`FAIL_FAST_HTTP` in ``os.environ`` where unset (MLflow's defaults retry 7 times with
    backoff factor 2 and wait 120 s per request); returns what it set. Called when a Tracker is made."""
    out = {k: v for k, v in FAIL_FAST_HTTP.items() if k not in os.environ}
    os.environ.update(out)
    return out


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it was raised from) says the tracking server could not be
    reached or could not answer: a refused, reset or timed-out connection (``requests``, ``urllib3``,
    ``OSError``), retries exhausted, or an HTTP 5xx answer (``requests.HTTPError``, an
    ``MlflowException`` made from a server response). Anything else (a bad value, a missing run)
    is a real failure."""
    import requests

    try:
        from urllib3.exceptions import HTTPError as Urllib3Error
    except ImportError:  # pragma: no cover - requests depends on urllib3
        Urllib3Error = ()
    for e in _chain(exc):
        if isinstance(e, (requests.ConnectionError, requests.Timeout, requests.exceptions.RetryError,
                          requests.exceptions.ChunkedEncodingError, Urllib3Error, ConnectionError, TimeoutError)):
            return True
        if isinstance(e, requests.HTTPError) and e.response is not None and e.response.status_code >= 500:
            return True
        if _server_error(e):
            return True
    return False


def _server_error(e: BaseException) -> bool:
    """An ``MlflowException`` made from an HTTP 5xx response of the server (not one raised locally)."""
    try:
        from mlflow.exceptions import MlflowException, RestException
    except ImportError:
        return False
    if isinstance(e, RestException):
        return e.get_http_status_code() >= 500
    # rest_utils.verify_rest_response: "API request to endpoint ... failed with error code 503 != 200"
    return isinstance(e, MlflowException) and " failed with error code 5" in str(e)
