"""`explorer report` on real studies: re-simulations on the actors, caching, MLflow, the browser.

The numbers of report.json are checked against what is stored (zarr re-simulations, Optuna),
not only for their presence.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from optuna.trial import TrialState

from browser import load_in_browser, require_chromium, screenshot
from explorer.layout import optuna_storage_url, zarr_url
from explorer.report import stats
from explorer.report.build import plan
from explorer.report.commands import create_report
from explorer.runner.commands import extend_config
from explorer.runner.driver import run_study
from explorer.runner.inputs import load_study_cohort
from explorer.search import list_subject_studies, open_storage, open_subject_study
from explorer.store import SignalStore
from explorer.study.frozen import save_frozen
from explorer.tracking import Tracker

from study_configs import fast_config

pytestmark = pytest.mark.slow

SEEDS = 2
UNITS = [f"NAP_00{i}_ses-{s}" for i in (1, 2, 7) for s in (1, 2)]


def _trials(cfg, study_dir):
    storage = open_storage(optuna_storage_url(cfg, study_dir))
    return {sid: open_subject_study(storage, cfg, sid, create=False).get_trials(deepcopy=False)
            for sid in list_subject_studies(storage, cfg.name)}


def _keys(cfg, report):
    from explorer.runner.inputs import study_inputs

    subjects = load_study_cohort(cfg).subset(report["subjects"]).subjects
    best = {sid: report["fit"][sid]["best_params"] for sid in report["subjects"]}
    spaces, fc_mean = study_inputs(cfg, cfg.study_dir, subjects)
    return {r["key"] for r in plan(cfg, subjects, best, report["seeds"], spaces, fc_mean)[1]}


def test_report_of_a_split_study_is_cached_logged_and_refreshed_after_extend(tmp_path, ray_session):
    cfg = fast_config(tmp_path, name="twins", trials=3,
                      cohort={"source": "demo", "subjects": UNITS, "split": 2, "features": {"fcd_window": 10}})
    save_frozen(cfg)
    run_study(cfg)
    study_dir = cfg.study_dir
    before = {sid: len(ts) for sid, ts in _trials(cfg, study_dir).items()}

    report, out, run_id = create_report(study_dir, seeds=SEEDS)

    # files, and report.json is what was returned
    assert {"index.html", "report.json", "individuality.png", "fit_fc.png"} <= {p.name for p in out.iterdir()}
    assert json.loads((out / "report.json").read_text()) == report
    assert report["subjects"] == UNITS and report["seeds"] == SEEDS
    sims = report["simulations"]
    assert sims["run"] == sims["needed"] == len(UNITS) * SEEDS * 3 and sims["reused"] == 0
    # re-simulations are never Optuna trials and never count against the budget
    assert {sid: len(ts) for sid, ts in _trials(cfg, study_dir).items()} == before

    store = SignalStore(zarr_url(cfg, study_dir))
    search_seeds = {t.user_attrs["seed"] for ts in _trials(cfg, study_dir).values() for t in ts}
    cohort = load_study_cohort(cfg)
    best = {u: report["fit"][u]["best_params"] for u in UNITS}
    from explorer.runner.inputs import study_inputs

    units = cohort.subset(UNITS).subjects
    _, requests = plan(cfg, units, best, SEEDS, *study_inputs(cfg, study_dir, units))
    twin_fc = {}
    for sid in UNITS:
        fit = report["fit"][sid]
        trials = _trials(cfg, study_dir)[sid]
        best = max((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.value)
        assert fit["best_number"] == best.number and fit["best_params"] == pytest.approx(best.params)
        assert fit["convergence"]["best_so_far"][-1] == pytest.approx(best.value)
        resim = fit["resim"]
        assert len(resim["fc_r"]) == SEEDS and not set(resim["seeds"]) & search_seeds     # fresh seeds
        assert resim["fc_r_mean"] == pytest.approx(np.mean(resim["fc_r"]))
        assert resim["fc_r_sd"] == pytest.approx(np.std(resim["fc_r"], ddof=1))
        stored = [store.resim(r["connectome"], r["key"]) for r in requests
                  if r["kind"] == "twin" and r["subject"] == sid]
        assert [s["scores"]["fc_r"] for s in stored] == pytest.approx(resim["fc_r"])
        twin_fc[sid] = np.mean([s["fc"] for s in stored], axis=0)
    # the individuality matrix is the twins' mean re-simulated FC against every subject's empirical FC
    emp = [cohort[u].fc for u in UNITS]
    expected = stats.similarity_matrix([twin_fc[u] for u in UNITS], emp)
    ind = report["individuality"]
    assert np.asarray(ind["matrix"]) == pytest.approx(expected, abs=1e-6)
    assert ind["accuracy"] == stats.identification(expected)["accuracy"]
    assert ind["p_method"].startswith("exact") and 0 < ind["p_value"] <= 1
    assert set(ind["baselines"]) == {"empirical", "sc", "sc_only_twin", "params_only_twin", "sc_residual",
                                     "sc_only_twin_residual", "params_only_twin_residual"}
    assert all(len(b["matrix"]) == len(UNITS) for b in ind["baselines"].values())
    # two sessions per participant: test-retest
    tr = report["test_retest"]
    assert tr["sessions"] == ["1", "2"] and tr["participants"] == ["NAP_001", "NAP_002", "NAP_007"]
    assert set(tr["icc"]) == {"G", "a"}
    assert np.asarray(tr["cross_session"]["matrix"]).shape == (3, 3)
    assert report["recovery"] is None and report["phenotype"] is None   # no ground truth, no phenotype
    # Optuna and MLflow keep participant and session apart, so that sessions pair up
    storage = open_storage(optuna_storage_url(cfg, study_dir))
    attrs = open_subject_study(storage, cfg, "NAP_007_ses-2", create=False).user_attrs
    assert (attrs["participant"], attrs["session"]) == ("NAP_007", "2")

    # logged to MLflow as a run tagged "report", with the files as artifacts
    from explorer.layout import mlflow_uri

    tracker = Tracker(mlflow_uri(cfg, study_dir), experiment=cfg.name)
    assert tracker.report_runs() == [run_id]
    run = tracker.client.get_run(run_id)
    assert run.data.tags["report"] == "true"
    assert run.data.metrics["identification_accuracy"] == pytest.approx(ind["accuracy"])
    parent_tags = tracker.client.get_run(tracker.parent_run("NAP_007_ses-2")).data.tags
    assert (parent_tags["participant"], parent_tags["session"]) == ("NAP_007", "2")
    arts = {a.path for a in tracker.client.list_artifacts(run_id, "report")}
    assert {"report/index.html", "report/report.json", "report/individuality.png"} <= arts

    # a second report reuses every simulation
    again, _, _ = create_report(study_dir, seeds=SEEDS, mlflow=False)
    assert again["simulations"]["run"] == 0 and again["simulations"]["reused"] == sims["needed"]
    assert again["individuality"]["matrix"] == ind["matrix"]

    # extend, then report: only the simulations whose parameters changed are run
    old_keys = _keys(cfg, report)
    bigger = extend_config(cfg, trials=3)
    save_frozen(bigger)
    run_study(bigger)
    third, _, _ = create_report(study_dir, seeds=SEEDS, mlflow=False)
    new_keys = _keys(bigger, third)
    assert third["simulations"]["run"] == len(new_keys - old_keys)
    assert third["simulations"]["reused"] == len(new_keys & old_keys)

    # the page opens in a browser: every figure loads, the table shows the accuracy
    require_chromium()
    index = out / "index.html"
    images, broken, dom = load_in_browser(index, tmp_path)
    assert images >= 6 and broken == 0
    table = dom.split('id="individuality-table"', 1)[1].split("</table>", 1)[0]
    assert re.search(rf'<td class="accuracy">{ind["accuracy"]:.3f}</td>', table)
    screenshot(index, tmp_path / "report.png", tmp_path)


def test_synthetic_twins_are_recovered(tmp_path, ray_session):
    """5 demo connectomes, known G and a: recovered G within 10% (median relative error)."""
    from explorer.cohort import save_manifest, synthetic

    truth = [{"G": 0.6, "a": -0.03}, {"G": 0.9, "a": -0.015}, {"G": 1.2, "a": -0.04}, {"G": 1.5, "a": -0.02},
             {"G": 1.8, "a": -0.05}]
    # long series: the FC and FCD of one noisy realisation are then precise enough to fit both parameters
    sim = {"duration_s": 5600, "dt_ms": 100, "transient_s": 60, "noise_sigma": 0.02, "bold_tr_s": 2.0,
           "bold_monitor": "sample", "velocity": 20}
    twins = synthetic(model="hopf", truth=truth, seed=1, **sim)
    manifest = save_manifest(twins, tmp_path / "twins")
    cfg = fast_config(tmp_path, name="recovery", trials=80, simulation=sim,
                      cohort={"source": str(manifest), "subjects": None, "drop": [], "normalise": "none",
                              "zero_diagonal": False, "features": {"bandpass": None}},
                      params={"free": {"G": {"low": 0.2, "high": 2.5}, "a": {"low": -0.08, "high": -0.005}}},
                      objective="fc_r_minus_fcd_ks",
                      sampler={"name": "tpe", "seed": 0, "options": {"n_startup_trials": 10, "multivariate": True}},
                      store={"mode": "none"}, ray={"actors": 2, "batch_size": 8})
    save_frozen(cfg)
    run_study(cfg)
    report, _, _ = create_report(cfg.study_dir, seeds=1, mlflow=False)
    rec = report["recovery"]
    assert set(rec) == {"G", "a"}
    assert rec["G"]["true"] == [t["G"] for t in truth]
    fitted = [report["fit"][s]["best_params"]["G"] for s in rec["G"]["subjects"]]
    assert rec["G"]["recovered"] == pytest.approx(fitted)
    errors = [abs(r - t) / t for r, t in zip(rec["G"]["recovered"], rec["G"]["true"])]
    assert rec["G"]["rel_error_median"] == pytest.approx(float(np.median(errors)))
    assert rec["G"]["rel_error_median"] <= 0.10, rec["G"]
    assert all(math.isfinite(e) for e in rec["a"]["rel_error"])


def test_report_of_a_fic_groups_study_with_two_objectives(tmp_path, ray_session):
    """rww_ei with FIC and w_plus in 3 FC networks, objectives fc_r and fc_r_residual: the report reads
    each twin's full parameter set (groups and FIC's J_I) and says which Pareto trial is the twin."""
    from explorer.models import get_model
    from explorer.models.arrays import param_array
    from explorer.models.fic import excitatory_rate, fic_inhibition
    from explorer.search import cohort_reference

    subjects = ["NAP_001", "NAP_002", "NAP_007"]
    cfg = fast_config(tmp_path, name="ficgroups", model="rww_ei", trials=4,
                      cohort={"subjects": subjects, "features": {"fcd_window": 10}},
                      simulation={"duration_s": 40, "dt_ms": 1.0, "transient_s": 0, "noise_sigma": 0.005,
                                  "bold_tr_s": None},
                      params={"free": {"G": {"low": 0.1, "high": 0.6}, "w_plus[net1]": {}, "w_plus[net2]": {},
                                       "w_plus[net3]": {}},
                              "groups": {"w_plus": "fc_networks3"}, "fic": True},
                      objective=["fc_r", "fc_r_residual"])
    save_frozen(cfg)
    run_study(cfg)
    report, out, _ = create_report(cfg.study_dir, seeds=1, mlflow=False)
    cohort = load_study_cohort(cfg)
    fc_mean = cohort_reference(cfg.study_dir, cohort.subjects)
    np.testing.assert_allclose(fc_mean, np.mean([s.fc for s in cohort], axis=0))
    trials = _trials(cfg, cfg.study_dir)
    for s in cohort:
        f = report["fit"][s.id]
        front = f["pareto_front"]
        assert f["best_number"] in front and all(trials[s.id][n].state == TrialState.COMPLETE for n in front)
        reg = f["regional_params"]
        # w_plus takes the best trial's three group values, region by region
        assert set(np.round(reg["w_plus"], 6)) <= {round(f["best_params"][f"w_plus[net{i}]"], 6) for i in (1, 2, 3)}
        # J_I is FIC's for this subject's connectome: the rate sits at 3 Hz on the fixed point
        params = {"G": f["best_params"]["G"], "w_plus": reg["w_plus"], "J_I": reg["J_I"]}
        p = param_array(get_model("rww_ei"), [params], s.n_regions)
        res = fic_inhibition(p, s.weights, 3.0)
        np.testing.assert_allclose(reg["J_I"], res.J_I[:, 0], atol=1e-5)
        np.testing.assert_allclose(excitatory_rate(res.S_E, res.S_I, p, s.weights), 3.0, atol=1e-5)
        assert f["best_scores"]["fc_r_residual"] == pytest.approx(trials[s.id][f["best_number"]].values[1])
    html = (out / "index.html").read_text()
    assert 'id="regional-table"' in html and "Pareto compromise" in html and "J_I" in html
    # MLflow holds the group parameters (as w_plus/net1: MLflow allows no brackets) and agrees with Optuna
    from explorer.layout import mlflow_uri
    from explorer.study.verify import verify_study

    runs = Tracker(mlflow_uri(cfg, cfg.study_dir), experiment=cfg.name).trial_runs("NAP_001")
    n = report["fit"]["NAP_001"]["best_number"]
    assert runs[n]["params"]["w_plus[net2]"] == pytest.approx(trials["NAP_001"][n].params["w_plus[net2]"])
    checked = verify_study(cfg.study_dir)
    assert checked.ok and checked.checked == sum(
        t.state == TrialState.COMPLETE for ts in trials.values() for t in ts), checked.to_dict()
