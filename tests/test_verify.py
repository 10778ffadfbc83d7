"""`explorer verify`: the pure comparison, and the command on a small hand-made study."""

from __future__ import annotations

import json

import numpy as np
import pytest

from explorer.study.verify import compare


def _t(g: float, r: float, state: str = "COMPLETE") -> dict:
    return {"state": state, "params": {"G": g}, "scores": {"fc_r": r}}


def test_compare_clean_and_every_problem_kind():
    opt = {"S1": {0: _t(1.0, 0.5), 1: _t(2.0, 0.6), 2: _t(3.0, float("nan"), "FAIL")}}
    runs = {"S1": {0: {**_t(1.0, 0.5), "run_id": "a"}, 1: {**_t(2.0, 0.6), "run_id": "b"},
                   2: {"state": "FAIL", "params": {"G": 3.0}, "scores": {}, "run_id": "c"}}}
    zarr = {"S1": {0: {"params": {"G": 1.0}, "scores": {"fc_r": 0.5, "fcd_ks": float("nan")}},
                   1: {"params": {"G": 2.0}, "scores": {"fc_r": 0.6}}}}
    ok = compare(opt, runs, zarr)
    assert ok.ok and ok.checked == 2 and ok.subjects == 1
    assert compare(opt, runs, None).ok  # store: none
    bad_runs = {"S1": {0: {**_t(1.0, 0.51), "run_id": "a"}, 5: {**_t(9.0, 0.9), "run_id": "x"}}}
    bad_zarr = {"S1": {1: {"params": {"G": 2.5}, "scores": {"fc_r": 0.6}}, 7: {"params": {}, "scores": {}}},
                "S9": {0: {"params": {}, "scores": {}}}}
    rep = compare(opt, bad_runs, bad_zarr)
    kinds = {(p.subject, p.number, p.kind) for p in rep.problems}
    assert kinds == {("S1", 0, "mismatch_mlflow"), ("S1", 1, "missing_mlflow"), ("S1", 5, "orphan_mlflow"),
                     ("S1", 0, "missing_zarr"), ("S1", 1, "mismatch_zarr"), ("S1", 7, "orphan_zarr"),
                     ("S9", 0, "orphan_zarr")}
    detail = {p.kind: p.detail for p in rep.problems if p.subject == "S1"}
    assert "fc_r" in detail["mismatch_mlflow"] and "G" in detail["mismatch_zarr"]
    assert rep.to_dict()["counts"]["orphan_zarr"] == 2
    # store: best: only the expected trials must be in zarr
    only_best = compare(opt, runs, {"S1": {1: zarr["S1"][1]}}, zarr_expected={"S1": {1}})
    assert only_best.ok


def test_compare_follows_recorded_signals_locations():
    opt = {"S1": {0: {**_t(1.0, 0.5), "record": {"seed": 10}}, 1: _t(2.0, 0.6), 2: _t(3.0, 0.7),
                  3: _t(4.0, 0.8), 4: _t(5.0, 0.9)}}
    runs = {"S1": {n: {**t, "run_id": str(n)} for n, t in opt["S1"].items()}}
    zarr_all = {"S1": {n: {"params": t["params"], "scores": t["scores"]} for n, t in opt["S1"].items()}}
    zarr = {"S1": {n: z for n, z in zarr_all["S1"].items() if n != 4}}

    def res(n, **kw):
        return {"ok": True, "detail": "", "subject": "S1", "number": n, "params": opt["S1"][n]["params"],
                "scores": opt["S1"][n]["scores"], "seed": 10 if n == 0 else 7, **kw}

    good = {"S1": {n: res(n) for n in range(5)}}
    assert compare(opt, runs, zarr_all, resolved=good).ok
    bad = {"S1": {0: res(0, seed=11), 1: {"ok": False, "detail": "subject S1 has no trial 1"},
                  2: res(3, params={"G": 4.0}, scores={"fc_r": 0.8}), 3: res(3),
                  4: {"ok": False, "detail": "gone"}}}
    rep = compare(opt, runs, zarr, resolved=bad)
    kinds = {(p.number, p.kind): p.detail for p in rep.problems}
    # trial 4 has no zarr record at all: reported once, as missing_zarr
    assert set(kinds) == {(0, "mismatch_signals"), (1, "unresolved_signals"), (2, "mismatch_signals"),
                          (4, "missing_zarr")}
    assert "seed" in kinds[(0, "mismatch_signals")] and "no trial 1" in kinds[(1, "unresolved_signals")]
    assert "trial 3" in kinds[(2, "mismatch_signals")] and "G" in kinds[(2, "mismatch_signals")]
    # store: best: a pruned trial's location legitimately does not resolve
    pruned = compare(opt, runs, {"S1": {1: zarr["S1"][1]}}, zarr_expected={"S1": {1}},
                     resolved={"S1": {0: {"ok": False}, 1: res(1), 2: {"ok": False}}})
    assert pruned.ok


# ---- the command on a real (tiny, hand-made) study -------------------------------------------------
def _make_study(tmp, name: str, store_mode: str = "all", signals=None, tracking: dict | None = None):
    """A study folder with 2 subjects x 3 COMPLETE + 1 FAIL trials in Optuna, MLflow and zarr.

    Each trial goes where the runner sends it, through the real encoders: its signals to the
    store (``write_trial``, as the actor does), its record to Optuna (``tell_record`` on an asked
    trial, as the scheduler does) and then to MLflow (``log_trials``; with a ``tracking`` section,
    the subject's trials table too, as the finisher does).
    ``signals(sid, n, location, store)``: what the trial records as ``signals`` (default: the location)."""
    from explorer.config import parse_config
    from explorer.layout import optuna_storage_url, zarr_url
    from explorer.records import TrialRecord
    from explorer.runner.hooks import open_store, open_tracker
    from explorer.search import ask_params, open_storage, open_subject_study, tell_record
    from explorer.store import SignalStore
    from explorer.study.frozen import save_frozen

    cfg = parse_config({"name": name, "studies_dir": str(tmp / "studies"), "model": "hopf",
                        "cohort": {"source": "demo", "subjects": ["NAP_001", "NAP_002"]},
                        "params": {"free": {"G": {"low": 0.1, "high": 2.0}}}, "trials": 4,
                        "store": {"mode": store_mode, "best_k": 2}, **({"tracking": tracking} if tracking else {})})
    d = cfg.study_dir
    save_frozen(cfg, d)
    storage = open_storage(optuna_storage_url(cfg, d))
    tracker = open_tracker(cfg, d)
    store = open_store(cfg, d)[0] or SignalStore(zarr_url(cfg, d))
    rng = np.random.default_rng(0)
    for sid in ("NAP_001", "NAP_002"):
        st = open_subject_study(storage, cfg, sid)
        recs = []
        for n in range(4):
            g, r = 0.1 + 0.3 * n, 0.1 * n
            complete = n < 3
            rec = TrialRecord(subject=sid, number=n, params={"G": g}, seed=10 + n,
                              state="COMPLETE" if complete else "FAIL", wall_seconds=1.0,
                              scores={"fc_r": r, "fc_rmse": 0.2, "fcd_ks": 0.4} if complete else {},
                              reason="" if complete else "diverged")
            if complete:
                bold = rng.standard_normal((20, 6)).astype(np.float32)
                rec.signals = store.write_trial(rec, bold, np.corrcoef(bold.T), tr_s=2.0)
                if signals is not None:
                    rec.signals = signals(sid, n, rec.signals, store)
            st.enqueue_trial({"G": g})
            trial, _ = ask_params(st, cfg)
            assert trial.number == n
            tell_record(st, trial, rec, cfg.objectives)
            recs.append(rec)
        tracker.log_trials(sid, recs)
        if tracking:
            tracker.log_trial_table(sid, recs)
    return cfg, d, tracker, store


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return _make_study(tmp_path_factory.mktemp("verify"), "vstudy")


def _run(capsys, *argv) -> tuple[int, dict]:
    import argparse

    from explorer.study.commands import add_verify_arguments, verify_command

    parser = argparse.ArgumentParser()
    add_verify_arguments(parser)
    code = verify_command(parser.parse_args([*argv, "--json"]))
    return code, json.loads(capsys.readouterr().out)


def test_verify_command_clean_broken_and_repaired(study, capsys):
    cfg, d, tracker, store = study
    code, out = _run(capsys, cfg.name, "--studies-dir", cfg.studies_dir)
    assert code == 0 and out["ok"] and out["checked"] == 6
    # break MLflow (a deleted run, a fake orphan) and zarr (a deleted trial)
    tracker.delete_trial_runs("NAP_001", [1])
    from explorer.records import TrialRecord

    tracker.log_trials("NAP_002", [TrialRecord(subject="NAP_002", number=9, params={"G": 1.0}, seed=0,
                                               state="COMPLETE", scores={"fc_r": 0.9})])
    store.delete_trial("NAP_002", 2)
    code, out = _run(capsys, str(d))  # a study folder works as NAME too
    assert code == 1 and not out["ok"]
    kinds = {(p["subject"], p["number"], p["kind"]) for p in out["problems"]}
    assert kinds == {("NAP_001", 1, "missing_mlflow"), ("NAP_002", 9, "orphan_mlflow"),
                     ("NAP_002", 2, "missing_zarr")}
    code, out = _run(capsys, str(d), "--repair")
    assert code == 1  # the lost signals cannot be re-created
    assert [p["kind"] for p in out["problems"]] == ["missing_zarr"]
    assert len(out["repaired"]) == 2 and "simulated again" in out["unrepairable"][0]
    runs = tracker.trial_runs("NAP_001")
    assert runs[1]["params"] == {"G": pytest.approx(0.4)} and runs[1]["scores"]["fc_r"] == pytest.approx(0.1)
    assert 9 not in tracker.trial_runs("NAP_002")


def test_repair_is_refused_beside_a_driver_on_another_host(study):
    from explorer.errors import StudyError
    from explorer.layout import optuna_storage_url
    from explorer.search import open_storage
    from explorer.search.leases import SubjectLeases
    from explorer.study.verify import verify_study

    cfg, d, _, _ = study
    remote = SubjectLeases(open_storage(optuna_storage_url(cfg, d)), cfg.name)
    remote.host = "node7"             # the lock file cannot see it; its lease and heartbeat can
    assert remote.acquire(["NAP_001"]) == {}
    try:
        with pytest.raises(StudyError, match=r"being run by driver pid \d+ on node7.*\(NAP_001\)"):
            verify_study(d, repair=True)
        assert verify_study(d).checked == 6          # checking alone is fine
    finally:
        remote.close()


def _old_style(sid: str, n: int, loc: str, store) -> str:
    """The location older versions recorded: the attempt's staging group."""
    from pathlib import Path

    (group,) = [p.name for p in (Path(store.url) / "subjects" / sid / "staging").iterdir()
                if p.name.startswith(f"{n:06d}-")]
    return f"{store.url}/subjects/{sid}/staging/{group}"


def test_verify_follows_recorded_locations_after_pack_and_best(tmp_path, capsys):
    # a consistent study, half of its records old-style staging paths, every subject packed and pruned
    # to its best 2 (store: best): every recorded location of a kept trial resolves, pruned ones are fine
    cfg, d, _, store = _make_study(tmp_path, "vbest", "best",
                                   signals=lambda sid, n, loc, st: _old_style(sid, n, loc, st) if n == 1 else loc)
    for sid in ("NAP_001", "NAP_002"):
        store.pack(sid)
        assert store.keep_best(sid, 2, "fc_r", maximise=True) == [1, 2]
    assert not list((d / "signals.zarr/subjects/NAP_001").glob("staging"))  # the recorded groups are gone
    code, out = _run(capsys, str(d))
    assert code == 0 and out["ok"] and out["checked"] == 6, out
    from explorer.study.verify import _open_store, optuna_records, resolve_signals

    res = resolve_signals(_open_store(cfg, d), optuna_records(cfg, d))
    assert res["NAP_001"][1]["ok"] and res["NAP_001"][1]["resolved_by"] == "trial number"
    assert res["NAP_001"][2]["ok"] and res["NAP_001"][2]["resolved_by"] == "location"
    assert not res["NAP_001"][0]["ok"] and "no trial 0" in res["NAP_001"][0]["detail"]  # pruned on purpose


def test_verify_reports_recorded_locations_that_do_not_resolve(tmp_path, capsys):
    from explorer.store import trial_location

    def broken(sid: str, n: int, loc: str, store) -> str:
        if sid == "NAP_002" and n == 0:
            return trial_location(store.url, sid, 7)  # names a trial that was never stored
        if sid == "NAP_002" and n == 1:
            return trial_location(store.url, sid, 2)  # names another trial
        if sid == "NAP_001" and n == 2:
            return f"{store.url}/subjects/{sid}/staging/000009-0123456789abcdef"  # old-style, gone
        return loc

    cfg, d, _, store = _make_study(tmp_path, "vbroken", signals=broken)
    store.pack("NAP_001")
    code, out = _run(capsys, str(d))
    assert code == 1
    kinds = {(p["subject"], p["number"], p["kind"]): p["detail"] for p in out["problems"]}
    assert set(kinds) == {("NAP_002", 0, "unresolved_signals"), ("NAP_002", 1, "mismatch_signals"),
                          ("NAP_001", 2, "unresolved_signals")}
    assert "no trial 7" in kinds[("NAP_002", 0, "unresolved_signals")]
    assert "trial 2" in kinds[("NAP_002", 1, "mismatch_signals")]
    assert out["counts"] == {"unresolved_signals": 2, "mismatch_signals": 1}
    code, out = _run(capsys, str(d), "--repair")
    assert code == 1 and not out["repaired"] and len(out["unrepairable"]) == 3
    assert all("found by its number" in line for line in out["unrepairable"])
    # a trial whose signals are gone altogether is reported once (missing_zarr) and must be simulated again
    store.delete_trial("NAP_002", 0)
    code, out = _run(capsys, str(d), "--repair")
    kinds = {(p["subject"], p["number"], p["kind"]) for p in out["problems"]}
    assert ("NAP_002", 0, "missing_zarr") in kinds and ("NAP_002", 0, "unresolved_signals") not in kinds
    assert any("NAP_002 trial 0" in line and "simulated again" in line for line in out["unrepairable"])


# ---- tracking.children: best_k and none ---------------------------------------------------------
def test_compare_expected_child_runs_and_table_rows():
    opt = {"S1": {0: _t(1.0, 0.5), 1: _t(2.0, 0.6), 2: _t(3.0, float("nan"), "FAIL"), 3: _t(4.0, 0.1, "RUNNING")}}
    runs = {"S1": {1: {**_t(2.0, 0.6), "run_id": "b"}}}
    rows = {"S1": {0: _t(1.0, 0.5), 1: _t(2.0, 0.6), 2: {"state": "FAIL", "params": {"G": 3.0}, "scores": {}}}}
    assert compare(opt, runs, None, mlflow_expected={"S1": {1}}, tables=rows).ok   # trial 0 needs no run
    assert {p.kind for p in compare(opt, runs, None).problems} == {"missing_mlflow"}
    bad = {"S1": {0: _t(1.5, 0.5), 1: _t(2.0, 0.6)}}                  # trial 2 missing, trial 0 differs
    rep = compare(opt, {}, None, mlflow_expected={"S1": {1}}, tables=bad)
    assert {(p.number, p.kind) for p in rep.problems} == {(1, "missing_mlflow"), (2, "missing_table_row"),
                                                          (0, "mismatch_table_row")}
    assert "G" in next(p.detail for p in rep.problems if p.kind == "mismatch_table_row")


def test_verify_best_k_children_and_the_table(tmp_path, capsys):
    cfg, d, tracker, _ = _make_study(tmp_path, "vbestk", tracking={"children": "best_k", "best_k": 2})
    assert set(tracker.trial_runs("NAP_001")) == {1, 2}    # fc_r 0.1, 0.2: the best 2 of 0.0, 0.1, 0.2
    code, out = _run(capsys, str(d))
    assert code == 0 and out["ok"] and out["checked"] == 6, out
    # break it: an expected child gone, a table missing a row, a table that lies
    tracker.delete_trial_runs("NAP_001", [2])
    from explorer.layout import optuna_storage_url
    from explorer.records import TrialRecord
    from explorer.search import from_trial, open_storage, open_subject_study

    study = open_subject_study(open_storage(optuna_storage_url(cfg, d)), cfg, "NAP_002", create=False)
    recs = [from_trial(t, cfg.objectives, "NAP_002") for t in study.get_trials()]
    lie = TrialRecord(**{**recs[0].to_dict(), "params": {"G": 9.0}})
    tracker.log_trial_table("NAP_002", [lie] + recs[1:3])
    code, out = _run(capsys, str(d))
    assert code == 1
    assert {(p["subject"], p["number"], p["kind"]) for p in out["problems"]} == {
        ("NAP_001", 2, "missing_mlflow"), ("NAP_002", 3, "missing_table_row"), ("NAP_002", 0, "mismatch_table_row")}
    code, out = _run(capsys, str(d), "--repair")
    assert code == 0 and out["ok"] and len(out["repaired"]) == 2, out
    assert set(tracker.trial_runs("NAP_001")) == {1, 2}
    table = tracker.trial_table("NAP_002")
    assert sorted(table) == [0, 1, 2, 3] and table[0].params == {"G": pytest.approx(0.1)}
    assert table[3].state == "FAIL" and table[3].reason == "diverged"


def test_verify_none_checks_only_the_table(tmp_path, capsys):
    cfg, d, tracker, _ = _make_study(tmp_path, "vnone", tracking={"children": "none"})
    assert tracker.trial_runs("NAP_001") == {}
    code, out = _run(capsys, str(d))
    assert code == 0 and out["ok"], out
    from pathlib import Path
    from urllib.parse import urlparse

    run = tracker.client.get_run(tracker.parent_run("NAP_001"))
    (Path(urlparse(run.info.artifact_uri).path) / "trials.json").unlink()   # lost from the artifact store
    code, out = _run(capsys, str(d))
    assert code == 1 and {(p["number"], p["kind"]) for p in out["problems"]} == {
        (n, "missing_table_row") for n in range(4)}
    code, out = _run(capsys, str(d), "--repair")
    assert code == 0 and out["ok"] and out["repaired"] == ["NAP_001: MLflow trials table re-logged from Optuna "
                                                           "(4 trials)"]
    assert tracker.trial_runs("NAP_001") == {} and sorted(tracker.trial_table("NAP_001")) == [0, 1, 2, 3]
