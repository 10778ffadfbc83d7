"""The tracker contract (:class:`~explorer.tracking.TrackerProtocol`), over every implementation: the MLflow
Tracker, its queue on a thread (TrackerThread) and NullTracker."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest

from explorer.records import TrialRecord
from explorer.runner.hooks import Guard
from explorer.tracking import (EcSummary, FitArrays, NullTracker, SubjectSummary, Tracker, TrackerProtocol,
                               TrackerThread)

KINDS = ["tracker", "null", "thread"]
METHODS = {"end_stale_runs", "tag_subject", "log_trials", "log_trial_table", "finish_subject", "log_ec", "close"}
T0 = 1_700_000_000.0


@pytest.fixture(scope="module")
def mlflow_db(tmp_path_factory):
    """One SQLite tracking store for the module (creating its tables takes seconds); one experiment per test."""
    d = tmp_path_factory.mktemp("mlflow_protocol")
    return f"sqlite:///{d / 'mlflow.db'}", str(d / "mlartifacts")


def _make(kind: str, uri: str, art: str, experiment: str) -> TrackerProtocol:
    if kind == "tracker":
        return Tracker(uri, experiment, artifact_location=art)
    if kind == "thread":   # as the driver makes it: opened on its own thread
        return TrackerThread(None, Guard(), 30.0, opener=lambda: Tracker(uri, experiment, artifact_location=art))
    return NullTracker()


def _records(sid: str) -> list[TrialRecord]:
    recs = [TrialRecord(subject=sid, number=n, params={"G": 0.5 + n, "w_plus[net3]": 1.25}, seed=10 + n,
                        state="COMPLETE", scores={"fc_r": 0.1 * n, "fcd_ks": 0.5 - 0.1 * n}, wall_seconds=1.5,
                        asked_at=T0 + 10 * n, told_at=T0 + 10 * n + 2) for n in range(3)]
    recs.append(TrialRecord(subject=sid, number=3, params={"G": 9.0, "w_plus[net3]": 1.25}, seed=13, state="FAIL",
                            reason="diverged", wall_seconds=0.2))
    return recs


def _summary(sid: str, recs: list[TrialRecord]) -> SubjectSummary:
    rng = np.random.default_rng(0)
    fc = np.corrcoef(rng.standard_normal((6, 40)))
    return SubjectSummary(sid, recs[2].params, recs[2].scores, best_trial=2, objectives=("fc_r", "fcd_ks"),
                          directions=("maximize", "minimize"), records=recs, config_text="name: contract\n",
                          model="rww", fixed_params={"w_p": 1.4},
                          arrays=FitArrays(emp_fc=fc, best_fc=0.9 * fc, emp_fcd_values=rng.uniform(-1, 1, 50),
                                           best_fcd_values=rng.uniform(-1, 1, 50)))


def _ec(sid: str) -> EcSummary:
    rng = np.random.default_rng(1)
    sc = rng.random((6, 6))
    trace = np.column_stack([np.geomspace(1.0, 0.1, 5), np.linspace(0.4, 0.8, 5), np.linspace(0.3, 0.7, 5)])
    return EcSummary(sid, "k0", {"status": "ok", "reason": "", "fc_r": 0.8, "fc_r_start": 0.4, "iterations": 4,
                                 "best_iteration": 4, "max_euler_dt_ms": None}, 1.1 * sc, sc, trace)


def _session(tracker: TrackerProtocol) -> list:
    """A driver session's calls, in the driver's order; what each returned."""
    recs = _records("S1")
    return [tracker.end_stale_runs(subjects=["S1", "S2"]),
            tracker.tag_subject("S1", {"participant": "P1", "session": "1"}),
            tracker.log_trials("S1", recs[:2]),
            tracker.log_trials("S1", recs[2:]),
            tracker.finish_subject(_summary("S1", recs)),
            tracker.log_ec(_ec("S1")),
            tracker.log_trial_table("S2", [TrialRecord(subject="S2", number=0, params={"G": 1.0}, seed=1,
                                                       state="FAIL", reason="diverged")]),
            tracker.close(30.0)]


def _runs(uri: str, experiment: str) -> dict[str, dict]:
    """run name -> what the store holds of it (run ids replaced by run names)."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id])
    names = {r.info.run_id: r.info.run_name for r in runs}
    out = {}
    for r in runs:
        tags = {k: names.get(v, v) for k, v in r.data.tags.items() if k != "mlflow.user"}
        out[r.info.run_name] = {"status": r.info.status, "params": dict(r.data.params),
                                "metrics": {k: round(v, 9) for k, v in r.data.metrics.items()}, "tags": tags,
                                "artifacts": sorted(a.path for a in client.list_artifacts(r.info.run_id))}
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_implements_every_method_of_the_protocol(kind, mlflow_db):
    declared = {n for n, v in vars(TrackerProtocol).items() if inspect.isfunction(v) and not n.startswith("_")}
    assert declared == METHODS
    tracker = _make(kind, *mlflow_db, f"methods-{kind}")
    try:
        assert isinstance(tracker, TrackerProtocol)
        for name in sorted(METHODS):
            want = inspect.signature(getattr(TrackerProtocol, name)).parameters.values()
            pos = [object() for p in want if p.name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD]
            kw = {p.name: object() for p in want if p.kind is p.KEYWORD_ONLY}
            inspect.signature(getattr(tracker, name)).bind(*pos, **kw)   # raises TypeError where it differs
    finally:
        tracker.close(5.0)


@pytest.mark.parametrize("kind", KINDS)
def test_a_session_of_calls_succeeds_in_order(kind, mlflow_db):
    uri, art = mlflow_db
    tracker = _make(kind, uri, art, f"session-{kind}")
    returned = _session(tracker)
    assert returned[-1] is True   # closed with every call made
    if kind == "thread":
        assert tracker.pending() == 0 and tracker.guard.failures == []
        assert returned[:-1] == [None] * 7   # queued, not made, when they returned
    if kind == "null":
        assert vars(tracker) == {}    # records nothing
        return
    runs = _runs(uri, f"session-{kind}")
    assert sorted(runs) == ["S1", "S1-t00000", "S1-t00001", "S1-t00002", "S1-t00003", "S2"]
    parent = runs["S1"]
    assert parent["status"] == "FINISHED" and parent["tags"]["best_run_id"] == "S1-t00002"
    assert parent["tags"]["participant"] == "P1" and parent["tags"]["model"] == "rww"
    assert parent["params"] == runs["S1-t00002"]["params"] == {"G": "2.5", "w_plus/net3": "1.25"}
    assert parent["metrics"]["fc_r"] == pytest.approx(0.2) and parent["metrics"]["best_so_far_fcd_ks"] == pytest.approx(0.3)
    assert parent["artifacts"] == ["convergence.png", "ec_trace.png", "ec_vs_sc.png", "fc_empirical_vs_best.png",
                                   "fcd_distributions.png", "study.yaml", "trials.json"]
    assert parent["metrics"]["ec_fc_r"] == pytest.approx(0.8) and parent["metrics"]["ec_iterations"] == 4
    assert parent["tags"]["ec_status"] == "ok" and parent["tags"]["ec_key"] == "k0"
    assert runs["S1-t00003"]["status"] == "FAILED" and runs["S1-t00001"]["tags"]["mlflow.parentRunId"] == "S1"
    assert runs["S2"]["status"] == "RUNNING" and runs["S2"]["artifacts"] == ["trials.json"]
    if kind == "tracker":
        assert returned[:-1] == [0, None, 2, 2, None, None, None]


def test_the_thread_logs_what_the_tracker_logs(mlflow_db):
    uri, art = mlflow_db
    for kind in ("tracker", "thread"):
        _session(_make(kind, uri, art, f"same-{kind}"))
    made, queued = _runs(uri, "same-tracker"), _runs(uri, "same-thread")
    assert made and json.dumps(made, sort_keys=True) == json.dumps(queued, sort_keys=True)


def test_the_null_tracker_never_fails():
    null = NullTracker()
    assert null.end_stale_runs() == 0 and null.end_stale_runs(subjects=[]) == 0
    assert null.log_trials("nobody", []) == 0 and null.log_trials("S1", _records("S2")) == 0
    null.log_trial_table("S1", _records("S2"))
    null.tag_subject("S1", {})
    null.finish_subject(SubjectSummary("S1", {}, {}, history=[{"number": 0, "values": [float("nan")]}]))
    assert null.close() is True and null.close(0.0) is True and vars(null) == {}
