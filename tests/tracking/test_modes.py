"""tracking.children: the mode's resolution, best_k and none child runs, the parent's trials table, stale runs."""

from __future__ import annotations

import json

import pytest

from explorer.errors import ConfigError, TrackingError
from explorer.records import TrialRecord
from explorer.tracking import SubjectSummary, Tracker
from explorer.tracking.modes import AUTO_ALL_MAX_TRIALS, best_children, resolve_children


@pytest.fixture(scope="module")
def mlflow_db(tmp_path_factory):
    """One SQLite tracking store for the module (creating its tables takes seconds)."""
    d = tmp_path_factory.mktemp("mlflow_modes")
    return f"sqlite:///{d / 'mlflow.db'}", str(d / "mlartifacts")


def _rec(sid: str, n: int, r: float | None, ks: float = 0.5) -> TrialRecord:
    """Trial ``n``: COMPLETE with fc_r ``r`` (and fcd_ks ``ks``), or FAIL when ``r`` is None."""
    if r is None:
        return TrialRecord(subject=sid, number=n, params={"G": 0.1 * n, "w_plus[net3]": 1.25}, seed=10 + n,
                           state="FAIL", reason="diverged", wall_seconds=0.5)
    return TrialRecord(subject=sid, number=n, params={"G": 0.1 * n, "w_plus[net3]": 1.25}, seed=10 + n,
                       state="COMPLETE", scores={"fc_r": r, "fcd_ks": ks}, wall_seconds=1.5,
                       signals=f"file:///s.zarr#subject={sid}&trial={n}", asked_at=1e9 + n, told_at=1e9 + n + 2)


def _children(tr: Tracker, sid: str) -> set[int]:
    return set(tr.trial_runs(sid))


def test_auto_resolves_from_the_study_size():
    assert resolve_children("auto", 4, AUTO_ALL_MAX_TRIALS // 4) == "all"
    assert resolve_children("auto", 4, AUTO_ALL_MAX_TRIALS // 4 + 1) == "best_k"
    assert resolve_children("auto", 1000, 500) == "best_k"
    assert resolve_children("auto", 0, 500) == "all"
    for mode in ("all", "best_k", "none"):
        assert resolve_children(mode, 1000, 500) == mode == resolve_children(mode, 1, 1)
    with pytest.raises(ValueError, match="tracking.children"):
        resolve_children("some", 1, 1)


def test_tracking_config_section_and_resume_compatibility(tmp_path):
    from explorer.config import parse_config
    from explorer.study.frozen import incompatible_fields

    base = {"name": "t", "studies_dir": str(tmp_path), "model": "hopf", "cohort": {"source": "demo"},
            "params": {"free": {"G": {"low": 0.1, "high": 2.0}}}}
    cfg = parse_config(base)
    assert (cfg.tracking.children, cfg.tracking.best_k, cfg.tracking.drain_s) == ("auto", 10, 60.0)
    other = parse_config({**base, "tracking": {"children": "none", "best_k": 3, "drain_s": 5}})
    assert incompatible_fields(cfg, other) == []   # changing how MLflow logs is allowed on resume
    with pytest.raises(ConfigError, match="tracking.best_k"):
        parse_config({**base, "tracking": {"best_k": 0}})
    with pytest.raises(ConfigError, match="tracking.children"):
        parse_config({**base, "tracking": {"children": "some"}})


def test_best_children_ranks_like_store_best():
    trials = {0: {"scores": {"fc_r": 0.3}}, 1: {"scores": {"fc_r": float("nan")}}, 2: {"scores": {"fc_r": 0.5}},
              3: {"scores": {"fc_r": 0.3}}, 4: {"scores": {"fc_r": 0.1, "fcd_ks": 0.0}}}
    assert best_children(trials, 2, "fc_r", True) == {2, 0}          # ties: the lower number
    assert best_children(trials, 2, "fc_r", False) == {4, 0}
    assert best_children(trials, 2, "fc_r", True, always=[4, 9]) == {2, 0, 4}   # the twin, where it is a trial
    assert best_children(trials, 1, "fc_r - fcd_ks", True) == {4}     # a combined objective: 0.1 - 0


def test_best_k_keeps_only_the_current_best_children(mlflow_db, tmp_path):
    from mlflow import MlflowClient

    uri, art = mlflow_db
    tr = Tracker(uri, "bestk", artifact_location=art, children="best_k", best_k=2, objective="fc_r", maximise=True)
    assert tr.log_trials("S1", [_rec("S1", 0, 0.1), _rec("S1", 1, 0.3), _rec("S1", 2, None)]) == 2
    assert _children(tr, "S1") == {0, 1}            # a FAIL never gets a child run in best_k
    first = tr.trial_runs("S1")[0]["run_id"]
    assert tr.log_trials("S1", [_rec("S1", 3, 0.2)]) == 1
    assert _children(tr, "S1") == {1, 3}            # trial 0 was pushed out: its run is deleted
    client = MlflowClient(uri)
    assert client.get_run(first).info.lifecycle_stage == "deleted"
    assert tr.log_trials("S1", [_rec("S1", 4, 0.05)]) == 0 and _children(tr, "S1") == {1, 3}
    parent = client.get_run(tr.parent_run("S1"))
    assert parent.data.tags["explorer.children"] == "best_k" and parent.data.tags["explorer.best_k"] == "2"

    # a new session (resume) ranks against the runs already there
    again = Tracker(uri, "bestk", artifact_location=art, children="best_k", best_k=2, objective="fc_r")
    assert again.log_trials("S1", [_rec("S1", 5, 0.25)]) == 1 and _children(again, "S1") == {1, 5}

    # finishing: every trial in the table, best_so_far from the records, and the twin keeps its run
    recs = [_rec("S1", 0, 0.1), _rec("S1", 1, 0.3), _rec("S1", 2, None), _rec("S1", 3, 0.2),
            _rec("S1", 4, 0.05, ks=0.01), _rec("S1", 5, 0.25)]
    again.finish_subject(SubjectSummary("S1", recs[4].params, recs[4].scores, best_trial=4,
                                        objectives=("fc_r", "fcd_ks"), directions=("maximize", "minimize"),
                                        records=recs))
    assert _children(again, "S1") == {1, 4, 5}     # the (multi-objective) twin 4 besides the best 2
    parent = client.get_run(again.parent_run("S1"))
    assert parent.data.tags["best_run_id"] == again.trial_runs("S1")[4]["run_id"]
    hist = sorted(client.get_metric_history(parent.info.run_id, "best_so_far_fc_r"), key=lambda m: m.step)
    assert [m.step for m in hist] == [0, 1, 3, 4, 5] and [m.value for m in hist] == pytest.approx([0.1, 0.3, 0.3,
                                                                                                    0.3, 0.3])
    table = again.trial_table("S1")
    assert sorted(table) == [0, 1, 2, 3, 4, 5] and table[2].state == "FAIL" and table[2].reason == "diverged"
    assert table[4].scores == {"fc_r": 0.05, "fcd_ks": 0.01} and table[4].params == recs[4].params
    assert table[3].signals == recs[3].signals and table[3].told_at == recs[3].told_at
    # MLflow's table format (what load_table reads: pandas "split"), listed where log_table lists tables
    import pandas as pd

    df = pd.read_json(client.download_artifacts(parent.info.run_id, "trials.json", str(tmp_path)), orient="split")
    assert sorted(df["number"]) == [0, 1, 2, 3, 4, 5] and "params.w_plus[net3]" in df.columns
    assert {"path": "trials.json", "type": "table"} in json.loads(parent.data.tags["mlflow.loggedArtifacts"])
    # finishing again rewrites the table: one row per trial, never appended twice
    again.finish_subject(SubjectSummary("S1", recs[4].params, recs[4].scores, best_trial=4,
                                        objectives=("fc_r", "fcd_ks"), directions=("maximize", "minimize"),
                                        records=recs + [_rec("S1", 6, None)]))
    assert sorted(again.trial_table("S1")) == [0, 1, 2, 3, 4, 5, 6]


def test_none_logs_no_child_runs_but_the_table(mlflow_db):
    from mlflow import MlflowClient

    uri, art = mlflow_db
    tr = Tracker(uri, "nochildren", artifact_location=art, children="none")
    recs = [_rec("S1", 0, 0.1), _rec("S1", 1, None), _rec("S1", 2, 0.4)]
    assert tr.log_trials("S1", recs) == 0 and _children(tr, "S1") == set()
    with pytest.raises(TrackingError, match="needs its records"):   # no child runs to read the history from
        tr.finish_subject(SubjectSummary("S1", recs[2].params, recs[2].scores, best_trial=2))
    tr.finish_subject(SubjectSummary("S1", recs[2].params, recs[2].scores, best_trial=2, records=recs))
    parent = MlflowClient(uri).get_run(tr.parent_run("S1"))
    assert parent.data.tags["explorer.children"] == "none" and "best_run_id" not in parent.data.tags
    assert parent.data.metrics["best_so_far_fc_r"] == pytest.approx(0.4)
    assert sorted(tr.trial_table("S1")) == [0, 1, 2] and tr.trial_table("S2") == {}
    with pytest.raises(TrackingError, match="children"):
        Tracker(uri, "nochildren", artifact_location=art, children="auto")   # resolve it first


def test_end_stale_runs_of_given_subjects_only(mlflow_db):
    from mlflow import MlflowClient

    uri, art = mlflow_db
    tr = Tracker(uri, "stale_subjects", artifact_location=art)
    p1, p2 = tr.parent_run("S1"), tr.parent_run("S2")
    client = MlflowClient(uri)
    c1 = client.create_run(tr.experiment_id, tags={"mlflow.parentRunId": p1})   # killed before its tags
    c2 = client.create_run(tr.experiment_id, tags={"mlflow.parentRunId": p2})
    resumed = Tracker(uri, "stale_subjects", artifact_location=art)
    assert resumed.end_stale_runs(subjects=["S1"]) == 2
    status = {rid: client.get_run(rid).info.status for rid in (p1, c1.info.run_id, p2, c2.info.run_id)}
    assert status == {p1: "KILLED", c1.info.run_id: "KILLED", p2: "RUNNING", c2.info.run_id: "RUNNING"}
    assert resumed.end_stale_runs(subjects=[]) == 0
    assert resumed.end_stale_runs() == 2   # None: every RUNNING run, as before
