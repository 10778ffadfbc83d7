"""The simulator worker without Ray: data-derived parameters reach every trial of their subject."""

from __future__ import annotations

import numpy as np
import pytest

from explorer import simulate
from explorer.records import Task
from explorer.runner.actor import SimWorker, WorkerSpec
from explorer.runner.inputs import subject_payload, worker_spec
from explorer.scoring.options import FeatureOptions
from explorer.scoring.scores import fit_scores
from explorer.search import subject_params, subject_spaces
from study_configs import fast_config


def test_subject_frequencies_from_bold_peak_are_used_by_the_worker(tmp_path):
    cfg = fast_config(tmp_path, params={"free": {"G": {"low": 0.1, "high": 2.0}}, "fixed": {"f": "bold_peak"}})
    from explorer.cohort import demo

    subject = demo().subjects[0]
    params = subject_params(cfg, subject)
    payload = subject_payload(cfg, subject, subject_spaces(cfg, [subject])[subject.id], None)
    assert payload["space"].expand({"G": 0.8})["f"] == params["f"]
    assert len(params["f"]) == subject.n_regions
    worker = SimWorker(worker_spec(cfg, 2.0, None, repeats=1))
    worker.add_subject(subject.id, payload)
    task = Task(number=0, free={"G": 0.8}, seed=7)
    out = worker.run_batch(subject.id, [task])
    (rec,) = out["records"]
    assert rec.state == "COMPLETE", rec

    # the same trial simulated directly with the subject's frequencies gives the same score
    ds = simulate("hopf", subject.weights, subject.lengths, [{"G": 0.8, "f": np.array(params["f"])}], seed=7,
                  **cfg.simulation.simulate_kwargs(subject.tr_s))
    opts = cfg.cohort.features
    expected = fit_scores(ds.bold.values[0], cfg.simulation.bold_tr_s, subject.fc, subject.fcd, opts)["fc_r"]
    assert rec.scores["fc_r"] == pytest.approx(expected, rel=1e-12, abs=1e-12)   # batched scoring: same to rounding


def test_each_trial_of_a_batch_has_its_share_of_the_call(tmp_path):
    """One simulate call, one scoring pass and one store write per batch: each trial gets an even share of each."""
    import time

    cfg = fast_config(tmp_path)
    from explorer.cohort import demo

    subject = demo().subjects[0]
    worker = SimWorker(worker_spec(cfg, 2.0, str(tmp_path / "signals.zarr"), repeats=1))
    worker.add_subject(subject.id, subject_payload(cfg, subject, subject_spaces(cfg, [subject])[subject.id], None))
    tasks = [Task(number=n, free={"G": g, "a": -0.02}, seed=7 + n) for n, g in enumerate((0.5, 0.9, 1.3))]
    before = time.time()
    out = worker.run_batch(subject.id, tasks)
    after = time.time()
    recs = out["records"]
    assert [r.state for r in recs] == ["COMPLETE"] * 3
    share = out["simulate_s"] / 3
    for r in recs:
        assert r.simulate_wall_seconds == share
        assert r.score_wall_seconds > 0 and r.store_wall_seconds > 0
        assert r.wall_seconds == share + r.score_wall_seconds + r.store_wall_seconds
        assert before <= r.started_at < r.ended_at <= after
        assert r.signals                                    # stored, in the call's one write
    assert len({(r.started_at, r.ended_at, r.score_wall_seconds, r.store_wall_seconds) for r in recs}) == 1
    assert sum(r.wall_seconds for r in recs) <= out["call_s"] + 1e-6


def test_stored_signals_describe_themselves(tmp_path):
    """A trial the worker stores records what simulated it, and the FC it was scored with; so does the root."""
    from explorer.cohort import demo
    from explorer.runner.hooks import open_store
    from explorer.store import SignalStore, open_signals
    from explorer.study.frozen import git_revision

    cfg = fast_config(tmp_path)
    store, url = open_store(cfg, cfg.study_dir)          # the driver describes the store once
    expected = {"model": "hopf", "dt_ms": 1.0, "duration_s": 40.0, "transient_s": 0.0, "noise_sigma": 0.02,
                "bold_tr_s": 2.0, "dtype": cfg.simulation.dtype, "integrator": cfg.simulation.integrator,
                "bold_monitor": cfg.simulation.bold_monitor, "velocity": float(cfg.simulation.velocity),
                "repeats": cfg.simulation.repeats}
    assert store.description() == {"simulation": expected, "git_revision": git_revision()}
    assert not store.describe({"model": "other"}, "x")   # written once
    subject = demo().subjects[0]
    worker = SimWorker(worker_spec(cfg, 2.0, url, repeats=2))
    worker.add_subject(subject.id, subject_payload(cfg, subject, subject_spaces(cfg, [subject])[subject.id], None))
    (rec,) = worker.run_batch(subject.id, [Task(number=3, free={"G": 0.9, "a": -0.02}, seed=5, attempt=1)])["records"]
    assert rec.state == "COMPLETE", rec
    stored = SignalStore(url, read_only=True).read_trial(subject.id, 3)
    assert stored["simulation"] == {**expected, "repeats": 2} and stored["git_revision"] == git_revision()
    assert stored["record"].params == {"G": 0.9, "a": -0.02} and stored["record"].attempt == 1
    assert stored["record"].actor == rec.actor and stored["location"] == rec.signals
    # the stored FC is the one the scores were computed from (of the first repeat's BOLD)
    opts = cfg.cohort.features
    scores, sim_fc = fit_scores(stored["bold"], 2.0, subject.fc, subject.fcd, opts, return_fc=True)
    np.testing.assert_allclose(stored["fc"], sim_fc, atol=1e-4)
    ds = open_signals(url)
    assert ds.attrs["model"] == "hopf" and ds.attrs["dt_ms"] == 1.0 and ds.attrs["duration_s"] == 40.0


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_store_best_writes_only_what_can_enter_the_best_k(tmp_path, direction):
    """store: best with k = 2: of a batch of 5, only its 2 best trials are written (the others are behind two
    better ones of their own batch), and none worse than ``keep_from``; all 5 are COMPLETE with their scores."""
    from explorer.cohort import demo

    objective = {"maximize": "fc_r", "minimize": "fc_rmse"}[direction]
    cfg = fast_config(tmp_path, store={"mode": "best", "best_k": 2}, objective=objective)
    assert cfg.directions == [direction]
    subject = demo().subjects[0]
    spec = worker_spec(cfg, 2.0, str(tmp_path / "signals.zarr"), repeats=1)
    assert spec.best_k == 2
    worker = SimWorker(spec)
    worker.add_subject(subject.id, subject_payload(cfg, subject, subject_spaces(cfg, [subject])[subject.id], None))
    tasks = [Task(number=n, free={"G": g, "a": -0.02}, seed=7 + n) for n, g in enumerate((0.3, 0.6, 0.9, 1.2, 1.5))]
    recs = worker.run_batch(subject.id, tasks)["records"]
    assert [r.state for r in recs] == ["COMPLETE"] * 5
    values = [r.scores[objective] for r in recs]
    order = sorted(range(5), key=lambda i: values[i], reverse=direction == "maximize")
    assert {i for i, r in enumerate(recs) if r.signals} == set(order[:2])
    # a threshold between the best and the second best: only the best is written
    middle = (values[order[0]] + values[order[1]]) / 2
    again = [Task(number=10 + t.number, free=t.free, seed=t.seed) for t in tasks]
    recs = worker.run_batch(subject.id, again, keep_from=middle)["records"]
    assert [r.number for r in recs if r.signals] == [10 + order[0]]
