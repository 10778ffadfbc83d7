"""MLflow unreachable: the tracker's calls wait, in order, and are tried again; closing stays bounded."""

from __future__ import annotations

import socket

import pytest
import requests

from explorer.runner.hooks import Guard
from explorer.tracking import SubjectSummary, TrackerThread, unreachable


class _Flaky:
    """A tracker whose calls fail with ConnectionError ``down`` times in all (None: for ever), then succeed."""

    def __init__(self, down: int | None):
        self.down = down
        self.made: list[tuple] = []
        self.refused = 0

    def _try(self, *call) -> None:
        if self.down is None or self.down > 0:
            self.refused += 1
            if self.down is not None:
                self.down -= 1
            raise requests.ConnectionError("HTTPConnectionPool(host='mlflow', port=5000): connection refused")
        self.made.append(call)

    def log_trials(self, sid, records):
        self._try("log_trials", sid, [r for r in records])

    def finish_subject(self, summary):
        self._try("finish_subject", summary.subject)

    def tag_subject(self, sid, tags):
        if tags.get("bad"):
            raise ValueError("a real failure, not an outage")
        self._try("tag_subject", sid)


def _thread(tracker, drain_s: float = 30.0) -> TrackerThread:
    return TrackerThread(tracker, Guard(), drain_s, retry_first_s=0.001, retry_max_s=0.004)


def test_calls_wait_for_mlflow_in_order_and_none_is_lost():
    tracker = _Flaky(down=5)
    t = _thread(tracker)
    marked = []
    t.log_trials("S1", [0, 1])
    t.log_trials("S2", [0])
    t.tag_subject("S1", {"bad": True})     # not an outage: recorded at once, the rest goes on
    t.log_trials("S1", [2])
    t.finish_subject(SubjectSummary("S1", {"G": 1.0}, {"fc_r": 0.5}))
    t.then("marking S1 finished", marked.append, "S1")
    assert t.close(30.0)
    assert tracker.made == [("log_trials", "S1", [0, 1]), ("log_trials", "S2", [0]), ("log_trials", "S1", [2]),
                            ("finish_subject", "S1")]
    assert marked == ["S1"] and tracker.refused == 5 and t.retries == 5 and t.pending() == 0
    assert len(t.guard.failures) == 1 and "MLflow tags of S1 failed: ValueError" in t.guard.failures[0]
    assert t.close() is True   # closing again: the same answer


def test_an_mlflow_that_never_comes_back_leaves_hook_failures():
    tracker = _Flaky(down=None)
    t = _thread(tracker, drain_s=0.2)
    t.log_trials("S1", [0])
    t.log_trials("S2", [0])
    t.finish_subject(SubjectSummary("S1", {}, {}))
    assert t.close() is False                          # None: waits tracking.drain_s, not for ever
    t.thread.join(10)
    assert not t.thread.is_alive() and tracker.made == [] and tracker.refused >= 1
    assert len(t.guard.failures) == 3
    assert [f.split(" not done")[0] for f in t.guard.failures] == ["MLflow logging of S1", "MLflow logging of S2",
                                                                 "MLflow summary of S1"]
    assert all("MLflow unreachable" in f and "explorer verify NAME --repair" in f for f in t.guard.failures)
    assert t.close(5.0) is False and len(t.guard.failures) == 3   # recorded once


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_what_counts_as_mlflow_unreachable(monkeypatch):
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException, RestException

    # a real MLflow client at a port nobody listens on (fail fast: one quick retry)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    with pytest.raises(Exception) as down:
        MlflowClient(f"http://127.0.0.1:{_free_port()}").get_experiment_by_name("x")
    assert unreachable(down.value)
    assert unreachable(RestException({"error_code": "TEMPORARILY_UNAVAILABLE", "message": "busy"}))
    assert unreachable(MlflowException("API request to endpoint /api/2.0/mlflow/runs/create failed with error "
                                       "code 503 != 200. Response body: 'Service Unavailable'"))
    response = requests.Response()
    response.status_code = 502
    assert unreachable(requests.HTTPError("bad gateway", response=response))
    # real failures
    assert not unreachable(RestException({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no run"}))
    assert not unreachable(MlflowException("Invalid value for param", error_code="INVALID_PARAMETER_VALUE"))
    assert not unreachable(ValueError("bad"))
    response.status_code = 404
    assert not unreachable(requests.HTTPError("not found", response=response))


def test_a_tracker_shortens_mlflow_http_retries_unless_set(monkeypatch, tmp_path):
    import os

    from explorer.tracking import Tracker
    from explorer.tracking.outage import FAIL_FAST_HTTP

    for k in FAIL_FAST_HTTP:   # unset for this test, and as they were afterwards
        monkeypatch.setenv(k, "")
        monkeypatch.delenv(k)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "300")   # the user's own choice stays
    Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "envs", str(tmp_path / "art"))
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "300"
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == FAIL_FAST_HTTP["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]


def test_a_tracker_opened_on_the_thread_makes_the_calls_queued_while_it_opened():
    """The driver queues calls (stale runs, tags) while MLflow opens on the tracker's thread: they run after
    it, in order."""
    import threading

    gate = threading.Event()
    tracker = _Flaky(down=0)

    def opener():
        gate.wait(10.0)
        return tracker

    t = TrackerThread(None, Guard(), 30.0, opener=opener)
    t.log_trials("S1", [0])
    t.finish_subject(SubjectSummary("S1", {}, {}))
    assert tracker.made == []              # still opening
    gate.set()
    assert t.ready() is tracker
    assert t.close(30.0)
    assert tracker.made == [("log_trials", "S1", [0]), ("finish_subject", "S1")]


def test_a_tracker_that_fails_to_open_raises_in_ready_and_makes_no_call():
    from explorer.errors import TrackingError

    def opener():
        raise TrackingError("cannot reach MLflow at http://mlflow:5000")

    t = TrackerThread(None, Guard(), 30.0, opener=opener)
    t.log_trials("S1", [0])
    with pytest.raises(TrackingError, match="cannot reach MLflow"):
        t.ready()
    assert t.close(1.0) and t.guard.failures == []
