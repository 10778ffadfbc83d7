"""Fail fast without budget loss: a config that errors in every trial stops the study after its first batches.

The unit tests drive the :class:`~explorer.runner.scheduler.Scheduler`'s verdict logic without Ray
(a stub session over real in-memory Optuna studies); the end-to-end test runs a real tiny study
whose every trial errors inside the actors, then reruns it with the config corrected.
"""

from __future__ import annotations

import time

import optuna
import pytest
from optuna.trial import TrialState

from explorer.errors import StudyError
from explorer.layout import optuna_storage_url
from explorer.records import TrialRecord
from explorer.runner import scheduler as scheduler_mod
from explorer.runner.driver import run_study
from explorer.runner.scheduler import BrokenStudy
from explorer.search import list_subject_studies, open_storage, open_subject_study, subject_counts

from scheduler_stubs import SUBJECTS, scheduler as _scheduler
from study_configs import fast_config

# the same error in every subject, with per-subject details (what numpy says for an absurd delay buffer)
OOM = "error: MemoryError: Unable to allocate {} TiB for an array with shape ({},) and data type uint8"


def _fail(sid, tasks, reason):
    now = time.time()
    return [TrialRecord.of(sid, t, "FAIL", reason=reason, started_at=now, ended_at=now) for t in tasks]


def _complete(sid, tasks, score=0.3):
    now = time.time()
    return [TrialRecord.of(sid, t, "COMPLETE", scores={"fc_r": score, "fc_rmse": 0.2}, started_at=now, ended_at=now)
            for t in tasks]


def _states(study):
    return [t.state for t in study.get_trials(deepcopy=False)]


# ---- the verdict, without Ray ---------------------------------------------------------------------
@pytest.mark.parametrize("details", [False, True], ids=["identical", "per-subject-details"])
def test_same_error_in_every_first_batch_aborts_without_counting(tmp_path, details):
    sched, session, result = _scheduler(tmp_path)
    batches = {sid: sched._ask(sid) for sid in SUBJECTS}
    assert all(len(b) == 2 for b in batches.values())      # batch_size 2
    sizes = {"NAP_001": ("400.", 440320000001344), "NAP_002": ("284.", 312204964618304),
             "NAP_007": ("391.", 430000000000123)}
    reason = {sid: OOM.format(*(sizes[sid] if details else sizes["NAP_001"])) for sid in SUBJECTS}
    sched._results("NAP_001", _fail("NAP_001", batches["NAP_001"], reason["NAP_001"]))
    sched._results("NAP_002", _fail("NAP_002", batches["NAP_002"], reason["NAP_002"]))
    # held until every probed subject has answered: nothing told yet, nothing logged
    assert all(_states(session.studies[sid]) == [TrialState.RUNNING] * 2 for sid in SUBJECTS)
    assert session.tracker.logged == [] and sched.verdict is None
    with pytest.raises(BrokenStudy) as err:
        sched._results("NAP_007", _fail("NAP_007", batches["NAP_007"], reason["NAP_007"]))
    assert isinstance(err.value, StudyError)
    msg = str(err.value)
    assert "MemoryError: Unable to allocate" in msg and "Fix the config" in msg and "do not count against the budget" in msg
    for sid, study in session.studies.items():
        trials = study.get_trials(deepcopy=False)
        assert [t.state for t in trials] == [TrialState.FAIL] * 2
        assert all(t.user_attrs["reason"] == f"aborted: {reason[sid]}" for t in trials)
        c = subject_counts(study)
        assert (c.done, c.aborted, c.failed, c.complete) == (0, 2, 0, 0)
        assert c.reasons == {}                 # an aborted trial is no fail reason of the search
    assert result.trials_run == 0 and sched.done == {sid: 0 for sid in SUBJECTS}
    assert sched.inflight_n == {sid: 0 for sid in SUBJECTS} and sched.trials == {}
    assert sched.verdict == "broken"
    # MLflow still sees the trials (as FAIL "aborted"), and no subject was finished
    assert sorted(session.tracker.logged) == sorted(
        (sid, t.number, "FAIL", f"aborted: {reason[sid]}") for sid in SUBJECTS for t in batches[sid])
    assert session.finisher.finished == []


@pytest.mark.parametrize("other", ["complete", "diverged", "other error"])
def test_any_other_first_outcome_releases_every_record_as_it_was(tmp_path, other):
    sched, session, result = _scheduler(tmp_path)
    batches = {sid: sched._ask(sid) for sid in SUBJECTS}
    boom = "error: ValueError: boom"
    sched._results("NAP_001", _fail("NAP_001", batches["NAP_001"], boom))
    assert sched.verdict is None
    recs = {"complete": lambda: _complete("NAP_002", batches["NAP_002"]),
            "diverged": lambda: _fail("NAP_002", batches["NAP_002"], "diverged"),
            "other error": lambda: _fail("NAP_002", batches["NAP_002"], "error: KeyError: 'x'")}[other]()
    sched._results("NAP_002", recs)                # no raise: the study can run (or fails in more ways)
    assert sched.verdict == "ok"
    # the held error batch was told as it was: FAIL, counted, with its own reason
    c1 = subject_counts(session.studies["NAP_001"])
    assert (c1.done, c1.failed, c1.aborted) == (2, 2, 0) and c1.reasons == {"error: ValueError: boom": 2}
    c2 = subject_counts(session.studies["NAP_002"])
    assert c2.done == 2 and c2.aborted == 0 and c2.complete == (2 if other == "complete" else 0)
    # later results are told at once, however they fail
    sched._results("NAP_007", _fail("NAP_007", batches["NAP_007"], boom))
    c3 = subject_counts(session.studies["NAP_007"])
    assert (c3.done, c3.failed, c3.aborted) == (2, 2, 0)
    assert result.trials_run == 6 and sched.done == {sid: 2 for sid in SUBJECTS}
    assert len(session.tracker.logged) == 6
    assert not any(r.startswith("aborted") for *_, r in session.tracker.logged)
    for study in session.studies.values():
        assert TrialState.RUNNING not in _states(study)


def test_a_subject_whose_trials_are_all_refused_does_not_hold_the_others(tmp_path):
    """Refused trials (outside the hard limits, never simulated) are an outcome: the probe must not wait
    for a batch of that subject that will never come back from an actor."""
    sched, session, result = _scheduler(tmp_path, subjects=["NAP_001", "NAP_002"],
                                        refuse={"NAP_002": "G[0] = 9 above its hard limit 5"})
    tasks = sched._ask("NAP_001")
    assert sched._ask("NAP_002") == []            # refused at once, told FAIL with its reason
    sched._results("NAP_001", _fail("NAP_001", tasks, "error: ValueError: boom"))
    assert sched.verdict == "ok" and sched.held == []
    c1, c2 = (subject_counts(session.studies[s]) for s in ("NAP_001", "NAP_002"))
    assert (c1.done, c1.failed, c1.running) == (2, 2, 0)
    assert (c2.done, c2.failed, c2.running) == (2, 2, 0)


def test_only_the_first_probe_subjects_decide(tmp_path, monkeypatch):
    monkeypatch.setattr(scheduler_mod, "PROBE_SUBJECTS", 2)
    sched, session, result = _scheduler(tmp_path)
    batches = {sid: sched._ask(sid) for sid in SUBJECTS}
    sched._results("NAP_001", _fail("NAP_001", batches["NAP_001"], "error: ValueError: boom"))
    with pytest.raises(BrokenStudy):
        sched._results("NAP_002", _fail("NAP_002", batches["NAP_002"], "error: ValueError: boom"))
    # the third subject's batch was still in flight: not told by the verdict (the driver reaps it)
    assert _states(session.studies["NAP_007"]) == [TrialState.RUNNING] * 2
    assert all(subject_counts(session.studies[s]).aborted == 2 for s in ("NAP_001", "NAP_002"))


def test_trials_in_flight_at_the_verdict_are_aborted_not_requeued(tmp_path):
    """The driver's clean-up after BrokenStudy: the batches still in flight (or queued for a retry) are aborted
    too, so the corrected config does not first replay the broken config's parameters."""
    from explorer.runner.scheduler import Batch

    sched, session, result = _scheduler(tmp_path, subjects=["NAP_001", "NAP_002"])
    first = {sid: sched._ask(sid) for sid in ("NAP_001", "NAP_002")}
    queued = sched._ask("NAP_001")                  # NAP_001's second batch, on an actor
    sched.inflight["ref"] = Batch(slot=None, subject="NAP_001", tasks=queued, submitted=time.time())
    retry = sched._ask("NAP_002")                   # NAP_002's second batch, waiting for a retry
    sched.retry.append(("NAP_002", retry))
    sched._results("NAP_001", _fail("NAP_001", first["NAP_001"], "error: ValueError: boom"))
    with pytest.raises(BrokenStudy):
        sched._results("NAP_002", _fail("NAP_002", first["NAP_002"], "error: ValueError: boom"))
    assert sched.abort_inflight() == 4
    assert sched.pool.shut == 1 and sched.inflight == {} and not sched.retry and sched.trials == {}
    for sid, study in session.studies.items():
        trials = study.get_trials(deepcopy=False)
        c = subject_counts(trials)
        assert (c.done, c.aborted, c.interrupted, c.running, c.waiting) == (0, 4, 0, 0, 0)
        later = [t for t in trials if t.number in {t.number for t in (queued if sid == "NAP_001" else retry)}]
        assert [t.user_attrs["reason"] for t in later] == ["aborted: in flight when the config was found broken"] * 2
    assert sorted(session.forgotten) == sorted([("NAP_001", t.number) for t in queued]
                                               + [("NAP_002", t.number) for t in retry])
    assert result.trials_run == 0 and sched.interrupt() == (0, [])   # nothing left to reap and re-enqueue


# ---- end to end: a real tiny study whose every trial errors in the actors ------------------------
def _studies(cfg, study_dir):
    storage = open_storage(optuna_storage_url(cfg, study_dir))
    return {sid: open_subject_study(storage, cfg, sid, create=False)
            for sid in list_subject_studies(storage, cfg.name)}


def test_broken_config_stops_the_study_and_a_corrected_rerun_takes_over(tmp_path, ray_session):
    from explorer.study.frozen import prepare
    from explorer.study.status import status_lines, study_status

    # valid to the config check and the driver's preflight, but no actor can allocate the delay buffer
    # (~300 TiB): MemoryError in every trial, with sizes that differ per subject
    broken = fast_config(tmp_path, name="broken", simulation={"velocity": 1e-9}, trials=4,
                         ray={"actors": 1, "batch_size": 2})
    study_dir = broken.study_dir
    assert prepare(broken, study_dir) is False
    t0 = time.monotonic()
    with pytest.raises(BrokenStudy) as err:
        run_study(broken, study_dir)
    elapsed = time.monotonic() - t0
    msg = str(err.value)
    assert isinstance(err.value, StudyError)
    assert "MemoryError" in msg and "Fix the config" in msg and "explorer run" in msg
    studies = _studies(broken, study_dir)
    assert sorted(studies) == ["NAP_001", "NAP_002"]
    for sid, study in studies.items():
        c = subject_counts(study)
        # the first batch (2 trials), and a second one if it was asked before the verdict: all aborted,
        # none re-enqueued (no interrupted, no waiting trial carries the broken config's parameters)
        assert (c.done, c.complete, c.failed, c.interrupted, c.running, c.waiting) == (0, 0, 0, 0, 0, 0)
        assert c.aborted in (2, 4) and c.aborted == len(study.get_trials(deepcopy=False))
        reasons = [t.user_attrs["reason"] for t in study.get_trials(deepcopy=False)]
        assert sum(r.startswith("aborted: error: MemoryError: Unable to allocate") for r in reasons) >= 2
        assert all(r.startswith("aborted: error: MemoryError") or r == "aborted: in flight when the config was "
                   "found broken" for r in reasons), reasons
    st = study_status(study_dir)
    for sid, s in st["subjects"].items():
        assert s["done"] == 0 and s["failed"] == 0 and s["aborted"] >= 2 and s["reasons"] == {}
    assert st["totals"]["failed"] == 0 and st["totals"]["aborted"] >= 4 and st["runs"] == 1
    aborted = {sid: s["aborted"] for sid, s in st["subjects"].items()}
    lines = status_lines(st, 80)
    # at most 80 columns, but for an unbreakable value (this test's long temporary path) on a line of its own
    assert all(len(line) <= 80 or " " not in line.strip() for line in lines), lines
    head = next(line for line in lines if line.startswith("subject"))
    assert "aborted" in head.split()                      # the human view says so too

    # the corrected config: same name, different simulation (an identity field) -> taken, since nothing counted
    fixed = fast_config(tmp_path, name="broken", trials=2, ray={"actors": 1, "batch_size": 2})
    assert prepare(fixed, study_dir) is True
    result = run_study(fixed, study_dir)
    assert result.trials_run == 4 and result.failed_subjects == []
    for sid, study in _studies(fixed, study_dir).items():
        c = subject_counts(study)
        assert (c.done, c.complete, c.aborted, c.interrupted) == (2, 2, aborted[sid], 0)
    assert elapsed < 120, f"the broken study took {elapsed:.0f} s to stop"
