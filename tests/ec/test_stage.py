"""The EC stage as a stage of a study: run, status, verify, resume (not refitted), extend (refitted or
added), bad input, and the report's EC twins and cross-session headline."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.errors import ConfigError
from explorer.layout import zarr_url
from explorer.runner.commands import extend_config
from explorer.runner.driver import run_study
from explorer.store import SignalStore
from explorer.study.status import status_lines, study_status
from explorer.study.verify import verify_study
from study_configs import fast_config

pytestmark = pytest.mark.slow

SESSIONS = ["NAP_001_ses-1", "NAP_001_ses-2", "NAP_002_ses-1", "NAP_002_ses-2"]


def _config(tmp_path, **changes):
    base = dict(name="ec_stage",
                cohort={"subjects": SESSIONS[:2], "split": 2, "features": {"fcd_window": 10, "bandpass": [0.008, 0.08]}},
                params={"free": {"G": {"low": 0.1, "high": 2.0}, "a": {"low": -0.1, "high": -0.01}},
                        "fixed": {"f": "bold_peak"}},
                simulation={"duration_s": 200, "dt_ms": 20, "transient_s": 20}, ec={"max_iter": 60})
    return fast_config(tmp_path, **{**base, **changes})


def _fits(cfg):
    store = SignalStore(zarr_url(cfg, cfg.study_dir), read_only=True)
    return {sid: [store.ec(sid, k, data=False) for k in store.ec_keys(sid)] for sid in store.subjects()}


def test_ec_stage_runs_resumes_extends_and_verifies(tmp_path, ray_session):
    cfg = _config(tmp_path)
    result = run_study(cfg)
    assert sorted(result.ec) == SESSIONS[:2]
    fits = _fits(cfg)
    for sid in SESSIONS[:2]:
        (only,) = fits[sid]
        s = only["summary"]
        assert s["status"] == "ok", s
        assert s["fc_r"] > s["fc_r_start"]                     # the EC fits better than the global twin
        assert only["best_trial"] == result.subjects[sid]["best"]["number"]
    store = SignalStore(zarr_url(cfg, cfg.study_dir), read_only=True)
    ec = store.ec(SESSIONS[0])
    assert ec["weights"].shape == (80, 80) and np.all(ec["weights"] >= 0)
    assert np.all(ec["weights"][ec["sc"] == 0] == 0)          # only SC > 0 connections are fitted
    assert ec["trace"].shape == (ec["summary"]["iterations"] + 1, 3)
    text = "\n".join(status_lines(study_status(cfg.study_dir)))
    assert text.count("EC: FC r") == 2
    report = verify_study(cfg.study_dir)
    assert report.ok and report.ec_checked == 2

    # rerun: every subject done, every EC stored with the same key: nothing is fitted again
    again = run_study(cfg)
    assert again.already_done and again.ec == {}
    assert _fits(cfg) == fits

    # extend by a subject: it gets its search and its EC; the others keep theirs
    wider = extend_config(cfg, subjects=SESSIONS[2:3])
    r3 = run_study(wider)
    assert sorted(r3.ec) == [SESSIONS[2]]
    after = _fits(cfg)
    assert {k: v for k, v in after.items() if k != SESSIONS[2]} == fits and len(after[SESSIONS[2]]) == 1

    # a missing EC is found by verify, which says how to get it
    import zarr

    w = SignalStore(zarr_url(cfg, cfg.study_dir))
    key = w.ec_keys(SESSIONS[0])[0]
    zarr.open_group(w.zstore, path=f"ec/{SESSIONS[0]}/{key}", mode="a").update_attributes({"committed": False})
    bad = verify_study(wider.study_dir, repair=True)
    assert not bad.ok and [p.kind for p in bad.problems] == ["missing_ec"]
    assert "explorer resume" in bad.unrepairable[0]
    # and resume fits it again
    r4 = run_study(wider)
    assert sorted(r4.ec) == [SESSIONS[0]] and verify_study(wider.study_dir).ok


def test_ec_is_refused_for_a_model_it_cannot_linearise(tmp_path):
    with pytest.raises(ConfigError, match="field 'ec'.*hopf"):
        fast_config(tmp_path, model="rww", params={"free": {"G": {"low": 0.1, "high": 1.0}}}, ec={})
    with pytest.raises(ConfigError, match="ec.mask"):
        _config(tmp_path, ec={"mask": "everything"})


def test_ec_needs_bold_long_enough_for_its_lag(tmp_path):
    from explorer.errors import StudyError
    from explorer.runner.inputs import ec_preflight, load_study_cohort

    cfg = _config(tmp_path, ec={"tau_s": 40.0})          # 20 TRs of lag: 177-TR sessions are too short
    with pytest.raises(StudyError, match=r"section 'ec'.*NAP_001_ses-1: 177 TRs is too short for a lag of 20 TRs"):
        ec_preflight(cfg, load_study_cohort(cfg))
    ec_preflight(_config(tmp_path), load_study_cohort(_config(tmp_path)))   # the default lag fits
