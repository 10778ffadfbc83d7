"""MLflow tracking: run structure read back through MlflowClient, stale runs, secrets, separate databases."""

from __future__ import annotations

import json

import numpy as np
import pytest

from explorer.errors import TrackingError
from explorer.records import TrialRecord
from explorer.tracking import FitArrays, SubjectSummary, Tracker, check_separate_databases, redact_text, redact_url

PASSWORD = "hunter2-Sup3rS3cret"
T0 = 1_700_000_000.0   # epoch seconds of the first trial's start


@pytest.fixture(scope="module")
def mlflow_db(tmp_path_factory):
    """One SQLite tracking store for the module (creating its tables takes seconds)."""
    d = tmp_path_factory.mktemp("mlflow")
    return f"sqlite:///{d / 'mlflow.db'}", str(d / "mlartifacts")


def _records(subject: str, n: int = 3) -> list[TrialRecord]:
    recs = [TrialRecord(subject=subject, number=i, params={"G": 0.5 + i, "J_NMDA": 0.15}, seed=100 + i,
                        state="COMPLETE", scores={"fc_r": 0.1 * i, "fc_rmse": 0.3, "fcd_ks": 0.5 - 0.1 * i},
                        sim_seconds=60.0, wall_seconds=1.5, actor="a0", node="n0",
                        signals=f"/s/signals.zarr/subjects/{subject}/staging/{i:06d}-x",
                        simulate_wall_seconds=1.0, score_wall_seconds=0.3, store_wall_seconds=0.2,
                        started_at=T0 + 10 * i, ended_at=T0 + 10 * i + 1.5 + 0.25 * i)
            for i in range(n)]
    recs.append(TrialRecord(subject=subject, number=n, params={"G": 9.0, "J_NMDA": 0.15}, seed=100 + n,
                            state="FAIL", reason="diverged", wall_seconds=0.2))
    return recs


def test_run_structure_read_back(mlflow_db):
    from mlflow import MlflowClient

    uri, art = mlflow_db
    tr = Tracker(uri, "structure", artifact_location=art)
    assert tr.log_trials("S1", _records("S1")) == 4
    assert tr.log_trials("S1", _records("S1")) == 0  # already logged: no duplicates
    assert tr.logging_ms_per_trial() > 0
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("structure")
    assert exp is not None and exp.artifact_location.startswith("file://")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("explorer.role") == "subject"]
    children = [r for r in runs if r.data.tags.get("explorer.role") == "trial"]
    assert len(parents) == 1 and len(children) == 4
    pid = parents[0].info.run_id
    by_number = {int(r.data.tags["trial"]): r for r in children}
    for n, r in by_number.items():
        assert r.data.tags["mlflow.parentRunId"] == pid
        assert r.data.tags["subject"] == "S1" and r.data.tags["seed"] == str(100 + n)
        assert float(r.data.params["G"]) == (0.5 + n if n < 3 else 9.0)
    ok = by_number[2]
    assert ok.info.status == "FINISHED" and ok.data.tags["state"] == "COMPLETE"
    assert ok.data.metrics["fc_r"] == pytest.approx(0.2) and ok.data.metrics["fcd_ks"] == pytest.approx(0.3)
    assert ok.data.metrics["fc_rmse"] == pytest.approx(0.3)
    assert ok.data.metrics["sim_seconds"] == 60.0 and ok.data.metrics["wall_seconds"] == 1.5
    assert ok.data.metrics["simulate_wall_seconds"] == 1.0 and ok.data.metrics["store_wall_seconds"] == 0.2
    # the run's start and end are the actor's times of the trial, to the millisecond
    assert ok.info.start_time == int(round((T0 + 20) * 1000))
    assert ok.info.end_time == int(round((T0 + 20 + 2.0) * 1000))
    assert ok.data.tags["signals"].endswith("000002-x")
    failed = by_number[3]
    assert failed.info.status == "FAILED" and failed.data.tags["reason"] == "diverged"
    assert "fc_r" not in failed.data.metrics
    # trial_runs: what verify compares
    got = tr.trial_runs("S1")
    assert set(got) == {0, 1, 2, 3} and got[1]["params"] == {"G": 1.5, "J_NMDA": 0.15}
    assert got[1]["scores"] == pytest.approx({"fc_r": 0.1, "fc_rmse": 0.3, "fcd_ks": 0.4})
    # the parent summary
    rng = np.random.default_rng(0)
    emp = np.corrcoef(rng.standard_normal((10, 50)))
    tr.finish_subject(SubjectSummary(
        "S1", {"G": 2.5, "J_NMDA": 0.15}, {"fc_r": 0.2, "fc_rmse": 0.3, "fcd_ks": 0.3}, best_trial=2,
        objectives=("fc_r", "fcd_ks"), directions=("maximize", "minimize"),
        config_text="name: structure\nmodel: rww\n", model="rww", fixed_params={"w_p": 1.4, "f": "bold_peak"},
        arrays=FitArrays(emp_fc=emp, best_fc=emp * 0.9, emp_fcd_values=rng.uniform(-1, 1, 300),
                         best_fcd_values=rng.uniform(-1, 1, 300))))
    parent = client.get_run(pid)
    assert parent.info.status == "FINISHED"
    # one column serves both: the parent's params and score metrics have the children's names
    assert set(parent.data.params) == set(ok.data.params) == {"G", "J_NMDA"}
    assert parent.data.params["G"] == ok.data.params["G"] == "2.5"
    assert set(ok.data.metrics) - {"sim_seconds", "wall_seconds", "simulate_wall_seconds", "score_wall_seconds",
                                   "store_wall_seconds"} <= set(parent.data.metrics)
    for k in ("fc_r", "fc_rmse", "fcd_ks"):
        assert parent.data.metrics[k] == pytest.approx(ok.data.metrics[k])
    assert not any(k.startswith("best.") for k in parent.data.params)
    assert not any(k.startswith("best_") and not k.startswith("best_so_far_") for k in parent.data.metrics)
    # what the question "which parameters fit S1 best?" needs, on the parent
    t = parent.data.tags
    assert t["best_trial"] == "2" and t["params_trial"] == "2" and t["model"] == "rww"
    assert t["best_run_id"] == ok.info.run_id == by_number[int(t["best_trial"])].info.run_id
    assert json.loads(t["best_params"]) == {"G": 2.5, "J_NMDA": 0.15}
    assert json.loads(t["fixed_params"]) == {"w_p": 1.4, "f": "bold_peak"}
    assert json.loads(t["objectives"]) == ["fc_r", "fcd_ks"]
    assert json.loads(t["directions"]) == ["maximize", "minimize"]
    # best so far: one point per COMPLETE trial, step = trial number, monotone in its direction
    hist = sorted(client.get_metric_history(pid, "best_so_far_fc_r"), key=lambda m: m.step)
    assert [m.step for m in hist] == [0, 1, 2]
    assert [m.value for m in hist] == pytest.approx([0.0, 0.1, 0.2])
    assert [m.timestamp for m in hist] == [by_number[n].info.end_time for n in (0, 1, 2)]
    ks = sorted(client.get_metric_history(pid, "best_so_far_fcd_ks"), key=lambda m: m.step)
    assert [m.step for m in ks] == [0, 1, 2] and all(b.value <= a.value for a, b in zip(ks, ks[1:]))
    arts = {a.path for a in client.list_artifacts(pid)}
    assert {"study.yaml", "fc_empirical_vs_best.png", "fcd_distributions.png", "convergence.png"} <= arts
    local = client.download_artifacts(pid, "convergence.png")
    assert open(local, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    # `explorer extend`: a better trial 4 moves the best; the params (immutable) stay those of trial 2
    better = TrialRecord(subject="S1", number=4, params={"G": 3.0, "J_NMDA": 0.15}, seed=104, state="COMPLETE",
                         scores={"fc_r": 0.6, "fc_rmse": 0.2, "fcd_ks": 0.35}, started_at=T0 + 100, ended_at=T0 + 102)
    assert tr.log_trials("S1", [better]) == 1
    tr.finish_subject(SubjectSummary("S1", {"G": 3.0, "J_NMDA": 0.15}, better.scores, best_trial=4, model="rww",
                                     objectives=("fc_r", "fcd_ks"), directions=("maximize", "minimize")))
    parent = client.get_run(pid)
    t = parent.data.tags
    assert t["best_trial"] == "4" and t["params_trial"] == "2" and parent.data.params["G"] == "2.5"
    assert json.loads(t["best_params"]) == {"G": 3.0, "J_NMDA": 0.15}
    assert t["best_run_id"] == tr.trial_runs("S1")[4]["run_id"]
    assert parent.data.metrics["fc_r"] == pytest.approx(0.6) and parent.data.metrics["fcd_ks"] == pytest.approx(0.35)
    hist = sorted(client.get_metric_history(pid, "best_so_far_fc_r"), key=lambda m: m.step)
    assert [m.step for m in hist] == [0, 1, 2, 4]   # only the new trial appended
    assert [m.value for m in hist] == pytest.approx([0.0, 0.1, 0.2, 0.6])
    ks = sorted(client.get_metric_history(pid, "best_so_far_fcd_ks"), key=lambda m: m.step)
    assert [m.value for m in ks] == pytest.approx([0.5, 0.4, 0.3, 0.3])
    # finishing again with the same best logs nothing new
    tr.finish_subject(SubjectSummary("S1", {"G": 3.0, "J_NMDA": 0.15}, better.scores, best_trial=4,
                                     objectives=("fc_r", "fcd_ks"), directions=("maximize", "minimize")))
    assert len(client.get_metric_history(pid, "best_so_far_fc_r")) == 4
    assert len(client.get_metric_history(pid, "fc_r")) == 2
    # a second subject gets its own parent; deletion by number
    tr.log_trials("S2", _records("S2", 1))
    assert tr.delete_trial_runs("S2", [0]) == 1 and set(tr.trial_runs("S2")) == {1}
    assert tr.subjects() == ["S1", "S2"]


def test_batches_respect_mlflow_limits(mlflow_db):
    uri, art = mlflow_db
    tr = Tracker(uri, "wide", artifact_location=art)
    params = {f"w{i:03d}": float(i) for i in range(250)}  # > 100 params: several log_batch calls
    tr.log_trials("S1", [TrialRecord(subject="S1", number=0, params=params, seed=1, state="COMPLETE",
                                     scores={"fc_r": 0.5})])
    assert tr.trial_runs("S1")[0]["params"] == params


def test_end_stale_runs_on_resume(mlflow_db):
    from mlflow import MlflowClient

    uri, art = mlflow_db
    tr = Tracker(uri, "stale", artifact_location=art)
    pid = tr.parent_run("S1")  # RUNNING, then the driver "dies"
    client = MlflowClient(uri)
    child = client.create_run(tr.experiment_id, tags={"mlflow.parentRunId": pid})  # killed mid-log
    resumed = Tracker(uri, "stale", artifact_location=art)
    assert resumed.end_stale_runs() == 2
    assert client.get_run(child.info.run_id).info.status == "KILLED"
    assert client.get_run(pid).info.status == "KILLED"
    assert resumed.parent_run("S1") == pid  # the subject's parent is reused ...
    assert client.get_run(pid).info.status == "RUNNING"  # ... and reopened
    assert resumed.end_stale_runs() == 1


def test_password_never_reaches_mlflow(mlflow_db, tmp_path):
    from mlflow import MlflowClient

    uri, art = mlflow_db
    tr = Tracker(uri, "secrets", artifact_location=art)
    optuna_url = f"postgresql://explorer:{PASSWORD}@db.example:5432/optuna"
    rec = TrialRecord(subject="S1", number=0, params={"G": 1.0}, seed=3, state="FAIL",
                      reason=f"error: could not connect to {optuna_url}",
                      signals=f"s3://key:{PASSWORD}@bucket/signals.zarr/subjects/S1")
    tr.log_trials("S1", [rec])
    config = (f"name: secrets\nstorage:\n  optuna: {optuna_url}\n  zarr: s3://bucket/x.zarr\n"
              f"  storage_options: {{key: AKIA, secret: {PASSWORD}}}\npassword: {PASSWORD}\n"
              "features: {bandpass: [0.01, 0.1]}\n")
    tr.finish_subject(SubjectSummary("S1", {"G": 1.0}, {"fc_r": 0.1}, config_text=config))
    client = MlflowClient(uri)
    seen = []
    for run in client.search_runs([tr.experiment_id]):
        seen += list(run.data.params.values()) + list(run.data.tags.values()) + list(run.data.params)
        for a in client.list_artifacts(run.info.run_id):
            if a.path.endswith(".yaml"):
                seen.append(open(client.download_artifacts(run.info.run_id, a.path, str(tmp_path))).read())
    text = "\n".join(seen)
    assert "study.yaml" not in text and "bandpass: [0.01, 0.1]" in text  # the config is there ...
    assert PASSWORD not in text  # ... without the password
    assert "postgresql://explorer:***@db.example:5432/optuna" in text


def test_redaction():
    assert redact_url(f"postgresql+psycopg2://u:{PASSWORD}@h:5432/db") == "postgresql+psycopg2://u:***@h:5432/db"
    assert redact_url(f"http://h:5000/x?password={PASSWORD}&a=1") == "http://h:5000/x?password=***&a=1"
    assert redact_url("sqlite:////tmp/a/mlflow.db") == "sqlite:////tmp/a/mlflow.db"
    assert redact_url("http://host:5000") == "http://host:5000"
    text = redact_text(f"password: {PASSWORD}\nAWS_SECRET_ACCESS_KEY={PASSWORD}\nbandpass: [0.01, 0.1]\ntoken: null\n")
    assert PASSWORD not in text and "bandpass: [0.01, 0.1]" in text and "token: null" in text


def test_optuna_and_mlflow_never_share_a_database(tmp_path):
    db = tmp_path / "one.db"
    with pytest.raises(TrackingError, match="alembic_version"):
        check_separate_databases(f"sqlite:///{db}", f"sqlite:///{tmp_path}/./one.db")
    with pytest.raises(TrackingError) as err:
        check_separate_databases(f"postgresql://a:{PASSWORD}@db:5432/explorer",
                                 "postgresql+psycopg2://b:other@DB/explorer")
    assert PASSWORD not in str(err.value)
    check_separate_databases("postgresql://a:p@db:5432/explorer_optuna", "postgresql://a:p@db:5432/explorer_mlflow")
    check_separate_databases(str(tmp_path / "optuna.log"), f"sqlite:///{tmp_path}/mlflow.db")
    check_separate_databases(f"sqlite:///{tmp_path}/optuna.db", "http://mlflow.example:5000")


def test_mlflow_keys_of_regional_parameters_and_combined_objectives():
    from mlflow.utils.validation import _validate_metric_name, _validate_param_name

    from explorer.tracking.tracker import metric_key, param_key, param_name

    for name in ("G", "w_plus.base", "w_plus.scale", "J_NMDA[net3]", "w_plus[visual-a]", "noise_sigma"):
        _validate_param_name(param_key(name))          # MLflow accepts it (it refuses brackets)
        assert param_name(param_key(name)) == name
    assert param_key("J_NMDA[net3]") == "J_NMDA/net3"
    assert metric_key("fc_r + 0.5*fc_r_residual - fcd_ks") == "fc_r_plus_0.5_x_fc_r_residual_minus_fcd_ks"
    assert metric_key("fc_r") == "fc_r"
    _validate_metric_name(metric_key("fc_r + 0.5*fc_r_residual - fcd_ks"))


def test_the_embedded_sqlite_store_commits_to_a_write_ahead_log(tmp_path):
    """WAL with synchronous=NORMAL on every connection of the embedded store (not MLflow's per-commit sync);
    what one tracker logged is read back by another, from another connection."""
    import sqlite3

    from explorer.tracking.tracker import fast_sqlite

    db = tmp_path / "mlflow.db"
    tr = Tracker(f"sqlite:///{db}", experiment="wal")
    engine = tr.client._tracking_client.store.engine
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar().lower() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1          # NORMAL
    assert fast_sqlite(tr.client)                                                # idempotent
    tr.log_trials("S1", [TrialRecord(subject="S1", number=0, state="COMPLETE", params={"G": 0.5},
                                     scores={"fc_r": 0.4}, seed=1)])
    with sqlite3.connect(db) as raw:                                             # a reader of its own
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        names = {r[0] for r in raw.execute("SELECT name FROM runs")}
    assert len(names) == 2                                                       # the subject's parent and trial 0
