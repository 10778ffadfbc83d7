"""`explorer run` in a subprocess: SIGKILL or Ctrl-C mid-study, then resume to exact counts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from optuna.trial import TrialState

from explorer.config import load_frozen, optuna_storage_url
from explorer.search import list_subject_studies, open_storage, open_subject_study
from study_configs import FAST

pytestmark = pytest.mark.slow

TRIALS = 8
CONFIG = dict(FAST, name="resumable", trials=TRIALS)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "explorer.cli", *args]


def _write_config(tmp_path: Path) -> Path:
    cfg = dict(CONFIG, studies_dir=str(tmp_path / "studies"))
    path = tmp_path / "resumable.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _trials(study_dir: Path) -> dict[str, list]:
    cfg = load_frozen(study_dir)
    storage = open_storage(optuna_storage_url(cfg, study_dir))
    return {sid: open_subject_study(storage, cfg, sid, create=False).get_trials(deepcopy=False)
            for sid in list_subject_studies(storage, cfg.name)}


def _count(trials, state) -> int:
    return sum(t.state == state for t in trials)


def _start_and_stop(tmp_path: Path, sig: int, after_complete: int) -> tuple[subprocess.Popen, Path, str]:
    config = _write_config(tmp_path)
    study_dir = tmp_path / "studies" / "resumable"
    log = open(tmp_path / "run.log", "w+")
    proc = subprocess.Popen(_cli("run", str(config), "--no-progress"), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=tmp_path)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.3)
            if not (study_dir / "study.yaml").is_file() or not (study_dir / "optuna.log").is_file():
                continue
            try:
                done = sum(_count(ts, TrialState.COMPLETE) for ts in _trials(study_dir).values())
            except Exception:  # noqa: BLE001 - studies not created yet
                continue
            if done >= after_complete:
                os.kill(proc.pid, sig)
                break
        proc.wait(timeout=120)
    finally:
        if sig == signal.SIGKILL or proc.poll() is None:
            try:  # Ray processes of the killed driver (its own session) go with it
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    log.seek(0)
    return proc, study_dir, log.read()


def _resume_and_check(tmp_path: Path, study_dir: Path) -> None:
    out = subprocess.run(_cli("resume", "resumable", "--studies-dir", str(tmp_path / "studies"), "--no-progress"),
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    for sid, trials in _trials(study_dir).items():
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        assert len(complete) == TRIALS, (sid, [(t.number, t.state) for t in trials])
        assert _count(trials, TrialState.RUNNING) == 0
        for t in trials:
            if t.state == TrialState.FAIL:
                assert t.user_attrs["reason"] == "interrupted"
        params = [tuple(sorted(t.params.items())) for t in complete]
        assert len(set(params)) == len(params), "a parameter set was evaluated twice"
        assert len({t.number for t in complete}) == TRIALS
    status = subprocess.run(_cli("status", str(study_dir), "--json"), capture_output=True, text=True, timeout=120)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["totals"]["complete"] == 2 * TRIALS


def test_resume_after_sigkill_of_the_driver(tmp_path):
    proc, study_dir, log = _start_and_stop(tmp_path, signal.SIGKILL, after_complete=3)
    assert proc.returncode == -signal.SIGKILL, log
    before = _trials(study_dir)
    assert sum(_count(ts, TrialState.COMPLETE) for ts in before.values()) < 2 * TRIALS, "killed too late"
    _resume_and_check(tmp_path, study_dir)


def test_ctrl_c_marks_in_flight_trials_and_says_how_to_resume(tmp_path):
    proc, study_dir, log = _start_and_stop(tmp_path, signal.SIGINT, after_complete=3)
    assert proc.returncode == 130, log
    assert "explorer resume resumable" in log
    for trials in _trials(study_dir).values():
        assert _count(trials, TrialState.RUNNING) == 0   # nothing left dangling by a clean stop
    _resume_and_check(tmp_path, study_dir)
