"""One TrialRecord through each real backend and back: what each keeps comes back equal, the rest is its default.

* Optuna (a journal file, a real ask and tell): every field; ``asked_at``/``told_at`` are the
  trial's own ask and tell times, which the tell writes into the record.
* MLflow (a local sqlite store): every field; ``asked_at``/``told_at`` as the run's start and end,
  to the millisecond; the free parameter ``w_plus[net3]`` is the param ``w_plus/net3``; the run
  also records the study's ``dt_ms`` and ``duration_s``, which are no free parameters.
* the MLflow trials table (``trials.json`` on the subject's parent run, one row per trial): every
  field, exactly (free values as ``params.<name>`` columns, scores as ``scores.<name>``).
* zarr (a local store): subject, number, params, seed, state, scores, attempt, actor, node,
  sim_seconds, and ``signals`` (the location the store gives the trial); the times are not kept
  (0); a FAIL has no signals and is refused.

Every backend drops non-finite scores.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import pytest

from explorer.errors import StoreError
from explorer.records import TrialRecord

T0 = 1_700_000_000.25
FIELDS = [f.name for f in dataclasses.fields(TrialRecord)]
TIMES = ("started_at", "ended_at", "asked_at", "told_at")
#: the fields each backend keeps (the others must come back as their defaults)
KEPT = {"optuna": set(FIELDS), "mlflow": set(FIELDS), "table": set(FIELDS),
        "zarr": {"subject", "number", "params", "seed", "state", "scores", "attempt", "actor", "node",
                 "sim_seconds", "signals"}}
DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrialRecord) if f.default is not dataclasses.MISSING}
PARAMS = {"G": 0.7310000000000001, "w_plus[net3]": 1.25, "w_plus[visual-a]": 0.3, "noise_sigma": 0.004}
SETTINGS = {"dt_ms": 0.1, "duration_s": 120.0}


def _records() -> list[TrialRecord]:
    """A COMPLETE and a FAIL record with every field set (non-finite scores included)."""
    common = dict(subject="S1", params=dict(PARAMS), sim_seconds=240.0, wall_seconds=3.5, actor="a1b2c3",
                  node="node-9", attempt=1, simulate_wall_seconds=2.0, score_wall_seconds=1.0,
                  store_wall_seconds=0.5, started_at=T0, ended_at=T0 + 3.625, asked_at=T0 - 1.5, told_at=T0 + 4.75)
    return [TrialRecord(number=0, seed=12345, state="COMPLETE", signals="file:///s.zarr#subject=S1&trial=0",
                        scores={"fc_r": 0.61, "fc_rmse": 0.2, "fcd_ks": 0.33, "fc_r_minus_fcd_ks": 0.28,
                                "fc_r_residual": math.nan}, **common),
            TrialRecord(number=1, seed=12346, state="FAIL", signals="",
                        reason="non-finite score: fcd_ks (constant or flat BOLD)",
                        scores={"fc_r": 0.2, "fcd_ks": math.inf}, **common)]


def _optuna(tmp_path, recs):
    import optuna

    from explorer.search import from_trial, open_storage, tell_record

    url = str(tmp_path / "optuna.log")
    study = optuna.create_study(storage=open_storage(url), study_name="S1", directions=["maximize"])
    dists = {k: optuna.distributions.FloatDistribution(0.0, 2.0) for k in PARAMS}
    out = []
    for rec in recs:
        study.enqueue_trial(rec.params)
        trial = study.ask(dists)
        assert trial.number == rec.number
        before = time.time()
        tell_record(study, trial, rec, ["fc_r"])       # sets rec.asked_at/told_at: Optuna's own
        assert rec.asked_at <= before + 1e-3 and before - 1e-3 <= rec.told_at <= time.time() + 1e-3
    fresh = optuna.load_study(study_name="S1", storage=open_storage(url))   # read back as another process would
    for rec in recs:
        out.append(from_trial(fresh.trials[rec.number], ["fc_r"], "S1"))
    return out


def _mlflow(tmp_path, recs):
    from explorer.tracking import Tracker

    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "codec", str(tmp_path / "art"), settings=SETTINGS)
    assert tracker.log_trials("S1", recs) == len(recs)
    runs = tracker.trial_runs("S1")
    for rec in recs:
        raw = tracker.client.get_run(runs[rec.number]["run_id"]).data.params
        assert raw["w_plus/net3"] == "1.25" and "w_plus[net3]" not in raw          # MLflow allows no brackets
        assert {k: float(raw[k]) for k in SETTINGS} == SETTINGS                   # the study's run settings
        assert runs[rec.number]["settings"] == SETTINGS
    return [runs[rec.number]["record"] for rec in recs]


def _table(tmp_path, recs):
    from explorer.tracking import Tracker

    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "codec", str(tmp_path / "art"), children="none")
    tracker.log_trial_table("S1", recs)
    rows = Tracker(tracker.tracking_uri, "codec").trial_table("S1")   # read back as another process would
    assert sorted(rows) == [r.number for r in recs]
    return [rows[rec.number] for rec in recs]


def _zarr(tmp_path, recs):
    from explorer.store import SignalStore

    store = SignalStore(str(tmp_path / "signals.zarr"))
    rng = np.random.default_rng(1)
    bold = rng.standard_normal((30, 5)).astype(np.float32)
    out = []
    for rec in recs:
        if rec.state != "COMPLETE":
            with pytest.raises(StoreError, match="only COMPLETE"):      # a FAIL has no signals to store
                store.write_trial(rec, bold, np.corrcoef(bold.T), tr_s=2.0)
            assert rec.number not in store.trials("S1")
            out.append(None)
            continue
        loc = store.write_trial(rec, bold, np.corrcoef(bold.T), tr_s=2.0)
        assert loc == store.location("S1", rec.number)
        rec.signals = loc                       # the store names the trial's signals itself
        got = SignalStore(store.url, read_only=True).trials("S1")[rec.number]["record"]
        assert store.resolve(loc, data=False)["record"] == got
        out.append(got)
    return out


@pytest.mark.parametrize("backend", ["optuna", "mlflow", "table", "zarr"])
def test_a_record_comes_back_from_each_backend(tmp_path, backend):
    recs = _records()
    decoded = {"optuna": _optuna, "mlflow": _mlflow, "table": _table, "zarr": _zarr}[backend](tmp_path, recs)
    for rec, got in zip(recs, decoded):
        if got is None:
            continue
        assert isinstance(got, TrialRecord)
        for name in FIELDS:
            value = getattr(got, name)
            if name not in KEPT[backend]:
                assert value == DEFAULTS[name], f"{backend} does not keep {name}, yet it decodes as {value!r}"
            elif name == "scores":
                assert value == {k: v for k, v in rec.scores.items() if math.isfinite(v)}, backend
            elif name in TIMES and backend == "mlflow":
                assert value == pytest.approx(getattr(rec, name), abs=1e-3), name   # run times: milliseconds
            else:
                assert value == getattr(rec, name), f"{backend}: {name}"
        assert got.params == PARAMS and "w_plus[net3]" in got.params


def test_trials_written_before_the_attributes_existed_decode_with_defaults():
    """An Optuna trial with no user attributes, an MLflow run with only its trial tag, an old zarr marker."""
    from types import SimpleNamespace

    import optuna

    from explorer.search import from_trial
    from explorer.store import from_attrs
    from explorer.tracking.records import from_run

    t = optuna.trial.create_trial(params={"G": 1.0}, distributions={"G": optuna.distributions.FloatDistribution(0, 2)},
                                  values=[0.4], state=optuna.trial.TrialState.COMPLETE)
    rec = from_trial(t, ["fc_r"], "S1")
    assert (rec.seed, rec.reason, rec.attempt, rec.signals, rec.scores) == (-1, "", 0, "", {"fc_r": 0.4})
    assert rec.wall_seconds == 0.0 and rec.state == "COMPLETE"
    assert from_trial(t, ["fc_r - fcd_ks"], "S1").scores == {}     # a combined objective is no score
    run = SimpleNamespace(data=SimpleNamespace(tags={"trial": "3", "subject": "S1"}, params={"G": "1.0"},
                                               metrics={"fc_r": 0.5}),
                          info=SimpleNamespace(start_time=None, end_time=None))
    rec = from_run(run)
    assert (rec.number, rec.seed, rec.state, rec.params, rec.scores, rec.asked_at) == (3, -1, "", {"G": 1.0},
                                                                                      {"fc_r": 0.5}, 0.0)
    old = {"subject": "S1", "number": 2, "params": {"G": 1.0}, "seed": 9, "scores": {"fc_r": 0.1, "fcd_ks": None},
           "location": "x#subject=S1&trial=2", "attempt": 0}
    rec = from_attrs(old)
    assert (rec.state, rec.scores, rec.actor, rec.sim_seconds, rec.signals) == ("COMPLETE", {"fc_r": 0.1}, "", 0.0,
                                                                                old["location"])
