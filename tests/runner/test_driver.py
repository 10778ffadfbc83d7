"""The driver on a local Ray: trial counts, records, store, extend, grid, divergence, actor death, lock."""

from __future__ import annotations

import json
import math
import threading
import time

import pytest
from optuna.trial import TrialState

from explorer.errors import StudyError
from explorer.layout import optuna_storage_url
from explorer.runner.commands import extend_config
from explorer.runner.driver import run_study
from explorer.search import list_subject_studies, open_storage, open_subject_study
from explorer.study.frozen import save_frozen
from explorer.study.lock import StudyLock
from explorer.study.status import status_lines, study_status

from study_configs import fast_config


def _studies(cfg, study_dir):
    storage = open_storage(optuna_storage_url(cfg, study_dir))
    return {sid: open_subject_study(storage, cfg, sid, create=False)
            for sid in list_subject_studies(storage, cfg.name)}


def _states(study):
    out = {}
    for t in study.get_trials(deepcopy=False):
        out[t.state] = out.get(t.state, 0) + 1
    return out


def test_run_then_extend_by_trials_and_by_subjects(tmp_path, ray_session):
    cfg = fast_config(tmp_path)
    save_frozen(cfg)
    result = run_study(cfg)
    assert not result.interrupted and result.trials_run == 8 and result.actors == 2
    assert 0 < result.utilisation <= 1
    assert result.mode == "asynchronous"
    assert any(line.startswith("search: asynchronous") for line in status_lines(study_status(cfg.study_dir)))
    studies = _studies(cfg, cfg.study_dir)
    assert sorted(studies) == ["NAP_001", "NAP_002"]
    for sid, study in studies.items():
        trials = study.get_trials(deepcopy=False)
        assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
        # asynchronous (the default): each trial's place in its subject's tell sequence is recorded
        assert sorted(t.user_attrs["told_order"] for t in trials) == [0, 1, 2, 3]
        for t in trials:
            assert math.isfinite(t.value) and -1 <= t.value <= 1
            ua = t.user_attrs
            assert {"seed", "sim_seconds", "wall_seconds", "actor", "node", "signals", "scores"} <= set(ua)
            assert ua["sim_seconds"] == 40 and ua["wall_seconds"] > 0 and ua["actor"] and ua["node"]
            assert ua["signals"].startswith(str(cfg.study_dir.resolve() / "signals.zarr"))
            assert math.isfinite(ua["scores"]["fc_rmse"])
            # per-trial times: measured for the trial, its share of the batch's simulate call added
            assert ua["simulate_wall_seconds"] > 0 and ua["score_wall_seconds"] > 0 and ua["store_wall_seconds"] > 0
            assert ua["wall_seconds"] == pytest.approx(
                ua["simulate_wall_seconds"] + ua["score_wall_seconds"] + ua["store_wall_seconds"])
            assert 0 < ua["started_at"] <= ua["ended_at"] <= t.datetime_complete.timestamp()
            assert ua["ended_at"] - ua["started_at"] >= ua["wall_seconds"] - 0.05
        # optuna-dashboard shows the objectives' names; the finishing hooks' trial count has its name
        assert study.metric_names == cfg.objectives
        assert study.user_attrs["finished_trials"] == 4 and "finished_at" not in study.user_attrs
        # each trial's signals are in the store, with the same params and score
        from explorer.store import SignalStore

        stored = SignalStore(str(cfg.study_dir / "signals.zarr")).trials(sid)
        assert sorted(stored) == [t.number for t in trials]
        for t in trials:
            assert stored[t.number]["params"] == pytest.approx(t.params)
            assert stored[t.number]["scores"]["fc_r"] == pytest.approx(t.value)
    _check_mlflow(cfg, studies)
    # rerunning the finished study does nothing
    again = run_study(cfg)
    assert again.trials_run == 0

    # extend by trials: 3 more per subject, nothing repeated
    more = extend_config(cfg, trials=3)
    save_frozen(more)
    r2 = run_study(more)
    assert r2.trials_run == 6
    for study in _studies(cfg, cfg.study_dir).values():
        assert _states(study) == {TrialState.COMPLETE: 7}

    # extend by subjects: only the new subject runs
    wider = extend_config(more, subjects=["NAP_007"])
    assert wider.cohort.subjects == ["NAP_001", "NAP_002", "NAP_007"]
    save_frozen(wider)
    r3 = run_study(wider, only_subjects=["NAP_007"])
    assert r3.trials_run == 7
    studies = _studies(cfg, cfg.study_dir)
    assert {sid: _states(s) for sid, s in studies.items()} == {
        sid: {TrialState.COMPLETE: 7} for sid in ("NAP_001", "NAP_002", "NAP_007")}

    st = study_status(cfg.study_dir)
    assert st["totals"]["complete"] == 21 and st["runs"] == 3  # the no-op rerun records no run
    assert 0 < st["utilisation"] <= 1
    assert st["subjects"]["NAP_007"]["best"]["params"].keys() == {"G", "a"}


def _check_mlflow(cfg, studies):
    """Child runs start and end at the trial's recorded times; the parent names its best trial's run."""
    from explorer.layout import mlflow_artifacts, mlflow_uri
    from explorer.tracking import Tracker

    tracker = Tracker(mlflow_uri(cfg, cfg.study_dir), cfg.name, mlflow_artifacts(cfg, cfg.study_dir))
    for sid, study in studies.items():
        runs = tracker.trial_runs(sid)
        for t in study.get_trials(deepcopy=False):
            run = runs[t.number]
            # one duration in optuna-dashboard and MLflow: the run spans the Optuna trial (ask -> tell)
            assert run["start_time"] == int(round(t.datetime_start.timestamp() * 1000))
            assert run["end_time"] == int(round(t.datetime_complete.timestamp() * 1000))
            assert float(run["tags"]["started_at"]) == t.user_attrs["started_at"]   # the actor's window
            assert float(run["tags"]["ended_at"]) == t.user_attrs["ended_at"]
            assert run["metrics"]["wall_seconds"] == pytest.approx(t.user_attrs["wall_seconds"])
        parent = tracker.client.get_run(tracker.parent_run(sid))
        tags, best = parent.data.tags, study.best_trial
        assert tags["best_trial"] == str(best.number) and tags["best_run_id"] == runs[best.number]["run_id"]
        assert json.loads(tags["best_params"]) == pytest.approx(best.params)
        assert json.loads(tags["objectives"]) == cfg.objectives and json.loads(tags["directions"]) == cfg.directions
        assert tags["model"] == cfg.model and json.loads(tags["fixed_params"]) == dict(cfg.params.fixed)
        assert parent.data.metrics[cfg.objectives[0]] == pytest.approx(best.value)
        assert {k: float(v) for k, v in parent.data.params.items()} == pytest.approx(best.params)
        hist = sorted(tracker.client.get_metric_history(parent.info.run_id, f"best_so_far_{cfg.objectives[0]}"),
                      key=lambda m: m.step)
        assert [m.step for m in hist] == sorted(t.number for t in study.get_trials(deepcopy=False))
        assert hist[-1].value == pytest.approx(best.value)


def test_grid_visits_exactly_the_grid_and_diverging_params_fail(tmp_path, ray_session):
    grid = {"G": [0.5, 1000.0], "a": [-0.05, 0.0]}
    cfg = fast_config(tmp_path, name="grid", cohort={"subjects": ["NAP_001"]},
                      params={"free": {"G": {"low": 0.1, "high": 1000.0}, "a": {"low": -0.1, "high": 0.05}}},
                      sampler={"name": "grid", "grid": grid}, trials=None)
    result = run_study(cfg)
    assert result.trials_run == 4 and result.failed_subjects == []
    study = _studies(cfg, cfg.study_dir)["NAP_001"]
    trials = study.get_trials(deepcopy=False)
    assert sorted((t.params["G"], t.params["a"]) for t in trials) == sorted(
        (g, a) for g in grid["G"] for a in grid["a"])
    for t in trials:
        if t.params["G"] == 1000.0:
            assert t.state == TrialState.FAIL and t.user_attrs["reason"] == "diverged"
        else:
            assert t.state == TrialState.COMPLETE and math.isfinite(t.value)
    st = study_status(cfg.study_dir)["subjects"]["NAP_001"]
    assert st["complete"] == 2 and st["failed"] == 2 and st["reasons"] == {"diverged": 2}


def test_subject_whose_trials_all_fail_is_reported(tmp_path, ray_session):
    cfg = fast_config(tmp_path, name="alldiverge", cohort={"subjects": ["NAP_001"]}, trials=2,
                      params={"free": {"G": {"low": 900.0, "high": 1000.0}}})
    result = run_study(cfg)
    assert result.failed_subjects == ["NAP_001"]
    assert result.subjects["NAP_001"]["reasons"] == {"diverged": 2}


def test_actor_killed_mid_batch_is_replaced_and_its_trials_retried(tmp_path, ray_session):
    ray = ray_session
    cfg = fast_config(tmp_path, name="kill", cohort={"subjects": ["NAP_001"]}, trials=8,
                      ray={"actors": 2, "batch_size": 2})
    killed: list[str] = []

    def killer():
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not killed:
            time.sleep(0.2)
            try:   # kill once the first results are in, while both actors hold queued batches
                storage = open_storage(optuna_storage_url(cfg, cfg.study_dir))
                study = open_subject_study(storage, cfg, "NAP_001", create=False)
            except Exception:  # noqa: BLE001 - not created yet
                continue
            if _states(study).get(TrialState.COMPLETE, 0) >= 1:
                names = sorted(a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                               if a["name"].startswith("explorer-sim-kill-"))
                ray.kill(ray.get_actor(names[0], namespace=_namespace(ray, names[0])), no_restart=True)
                killed.append(names[0])

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    result = run_study(cfg)
    t.join(5)
    assert killed, "the test did not manage to kill an actor"
    assert result.actors_replaced >= 1
    study = _studies(cfg, cfg.study_dir)["NAP_001"]
    trials = study.get_trials(deepcopy=False)
    assert _states(study) == {TrialState.COMPLETE: 8}
    assert any(tr.user_attrs["attempt"] >= 1 for tr in trials)


def _namespace(ray, name):
    for a in ray.util.list_named_actors(all_namespaces=True):
        if a["name"] == name:
            return a["namespace"]
    return None


def test_too_short_simulation_is_refused_before_any_actor_starts(tmp_path):
    cfg = fast_config(tmp_path, name="short", simulation={"duration_s": 10})
    with pytest.raises(StudyError, match="simulation.duration_s"):
        run_study(cfg)


def test_a_driver_is_refused_while_a_repair_holds_the_study_alone(tmp_path):
    cfg = fast_config(tmp_path, name="locked")
    with StudyLock(cfg.study_dir, cfg.name, role="verify --repair"):
        with pytest.raises(StudyError, match=r"held by another process \(verify --repair pid"):
            run_study(cfg)


def _hold(cfg, subjects):
    """Leases on ``subjects`` held by this process, as a live driver of this host would hold them."""
    from explorer.search.leases import SubjectLeases

    leases = SubjectLeases(open_storage(optuna_storage_url(cfg, cfg.study_dir)), cfg.name)
    assert leases.acquire(subjects) == {}
    return leases


def test_second_driver_on_the_same_subjects_is_refused_naming_the_holder(tmp_path):
    import os
    import platform

    cfg = fast_config(tmp_path, name="leased")
    leases = _hold(cfg, ["NAP_001", "NAP_002"])
    try:
        with pytest.raises(StudyError, match=f"already being run by another driver .*NAP_001: driver pid "
                                             f"{os.getpid()} on {platform.node()}"):
            run_study(cfg)
    finally:
        leases.close()
    # the refused driver left nothing held: the subjects are free again
    assert _hold(cfg, ["NAP_001", "NAP_002"]).close() is None


_HOLD = """
import sys, time
from explorer.search import open_storage
from explorer.search.leases import SubjectLeases
SubjectLeases(open_storage(sys.argv[1]), sys.argv[2]).acquire(sys.argv[3:])
print("held", flush=True)
time.sleep(600)
"""


def _hold_then_die(cfg, subjects) -> int:
    """Leases on ``subjects`` left by a driver process of this host that was then SIGKILLed; returns its pid."""
    import subprocess
    import sys

    url = optuna_storage_url(cfg, cfg.study_dir)
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, url, cfg.name, *subjects], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    proc.kill()
    proc.wait()
    return proc.pid


def test_a_second_driver_runs_the_subjects_nobody_holds(tmp_path, ray_session):
    """One subject at a time (leases.window 1): NAP_001 is held by a live driver, NAP_002 is free, NAP_007
    is held by a dead one. The driver runs NAP_002, then takes NAP_007 over when its window frees."""
    cfg = fast_config(tmp_path, name="split", cohort={"subjects": ["NAP_001", "NAP_002", "NAP_007"]},
                      leases={"window": 1})
    save_frozen(cfg)
    dead = _hold_then_die(cfg, ["NAP_007"])
    leases = _hold(cfg, ["NAP_001"])
    try:
        result = run_study(cfg)
        st = study_status(cfg.study_dir)      # `explorer status` names the driver still running NAP_001
    finally:
        leases.close()
    assert [d["subjects"] for d in st["drivers"]] == [["NAP_001"]] and not st["drivers"][0]["stale"]
    assert any(line.startswith("running: NAP_001 by driver pid") for line in status_lines(st, 80))
    assert sorted(result.subjects) == ["NAP_002", "NAP_007"] and list(result.held_elsewhere) == ["NAP_001"]
    assert len(result.takeovers) == 1 and result.takeovers[0].startswith("subject NAP_007: took over the lease")
    assert f"its process (pid {dead}) is gone" in result.takeovers[0]
    assert result.hook_failures == [] and result.trials_run == 8
    studies = _studies(cfg, cfg.study_dir)
    assert sorted(studies) == ["NAP_002", "NAP_007"] and all(len(s.get_trials()) == 4 for s in studies.values())
    run = json.loads((cfg.study_dir / "runs.jsonl").read_text().splitlines()[-1])
    assert run["held_elsewhere"] == ["NAP_001"] and run["subjects"] == ["NAP_002", "NAP_007"]
    # the held subject's turn: a rerun takes it, and leaves the finished ones as they were
    again = run_study(cfg)
    assert sorted(again.subjects) == ["NAP_001", "NAP_002", "NAP_007"] and again.held_elsewhere == {}
    assert again.trials_run == 4 and again.hook_failures == [] and again.takeovers == []


def test_fic_and_map_study_refuses_and_fails_with_reasons_and_reports_full_params(tmp_path, ray_session):
    """rww_ei with FIC and an SC-strength map of J_NMDA, on a grid: a candidate leaving J_NMDA's hard
    limits is refused (never simulated), one past FIC's stable range fails 'fic did not converge',
    the others complete; the simulated TR is the cohort's (bold_tr_s null)."""
    from explorer.search import subject_spaces

    grid = {"G": [0.3, 4.0], "J_NMDA.base": [0.05], "J_NMDA.scale": [-0.1, 0.05]}
    cfg = fast_config(tmp_path, name="fic", model="rww_ei", cohort={"subjects": ["NAP_001"]},
                      simulation={"duration_s": 40, "dt_ms": 1.0, "transient_s": 0, "noise_sigma": 0.01,
                                  "bold_tr_s": None},
                      params={"free": {"G": {"low": 0.1, "high": 4.0}, "J_NMDA.base": {"low": 0.01, "high": 0.3},
                                       "J_NMDA.scale": {"low": -0.2, "high": 0.2}},
                              "maps": {"J_NMDA": "sc_strength"}, "fic": True},
                      sampler={"name": "grid", "grid": grid}, trials=None)
    result = run_study(cfg)
    assert result.trials_run == 4
    study = _studies(cfg, cfg.study_dir)["NAP_001"]
    by = {(t.params["G"], t.params["J_NMDA.scale"]): t for t in study.get_trials(deepcopy=False)}
    for g in grid["G"]:
        t = by[(g, -0.1)]
        assert t.state == TrialState.FAIL and t.user_attrs["reason"].startswith("refused: J_NMDA")
        assert t.user_attrs["simulate_wall_seconds"] == 0.0
    assert by[(0.3, 0.05)].state == TrialState.COMPLETE and math.isfinite(by[(0.3, 0.05)].value)
    bad = by[(4.0, 0.05)]
    assert bad.state == TrialState.FAIL and bad.user_attrs["reason"].startswith("fic did not converge")
    assert bad.user_attrs["sim_seconds"] == 0.0 and by[(0.3, 0.05)].user_attrs["sim_seconds"] == 40.0
    # the report's parameter set of the best trial: the map and FIC's J_I for this subject's connectome
    from explorer.runner.inputs import load_study_cohort

    s = load_study_cohort(cfg).subjects[0]
    full = subject_spaces(cfg, [s])[s.id].full(by[(0.3, 0.05)].params, s.weights)
    assert len(full["J_NMDA"]) == len(full["J_I"]) == s.n_regions
    assert min(full["J_NMDA"]) == pytest.approx(0.05) and max(full["J_NMDA"]) == pytest.approx(0.1)
    st = study_status(cfg.study_dir)["subjects"]["NAP_001"]
    assert st["complete"] == 1 and st["failed"] == 3


def test_combined_objective_with_store_best_keeps_the_twins_signals(tmp_path, ray_session):
    """objective 'fc_r - fcd_ks' (no stored score has that name): pruning to the best signals ranks by
    the combination, so the best trial keeps its signals and `explorer verify` agrees."""
    from explorer.layout import zarr_url
    from explorer.scoring.objectives import objective_value
    from explorer.store import SignalStore
    from explorer.study.verify import verify_study

    cfg = fast_config(tmp_path, name="combo", cohort={"subjects": ["NAP_001"]}, trials=6,
                      objective="fc_r - fcd_ks", store={"mode": "best", "best_k": 2})
    result = run_study(cfg)
    study = _studies(cfg, cfg.study_dir)["NAP_001"]
    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    for t in done:
        assert t.value == pytest.approx(objective_value(t.user_attrs["scores"], "fc_r - fcd_ks"))
    ranked = sorted(done, key=lambda t: -t.value)
    kept = sorted(SignalStore(zarr_url(cfg, cfg.study_dir)).trials("NAP_001"))
    assert kept == sorted(t.number for t in ranked[:2])
    assert result.subjects["NAP_001"]["best"]["number"] == ranked[0].number
    assert verify_study(cfg.study_dir).ok
