"""`explorer run` in a subprocess: SIGKILL or Ctrl-C mid-study, then resume to exact counts.

A plain SIGKILL of the driver, resumed by another process, is tests/cluster/test_cluster_faults.py's
(on PostgreSQL, with the dead driver's leases taken over); here the kill lands inside a journal write.
"""

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

from explorer.layout import optuna_storage_url
from explorer.search import list_subject_studies, open_storage, open_subject_study
from explorer.study.frozen import load_frozen
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


HOOKS = Path(__file__).with_name("journal_hooks.py")


def _start_and_stop(tmp_path: Path, sig: int, after_complete: int,
                    hook: str | None = None) -> tuple[subprocess.Popen, Path, str]:
    """Start `explorer run`; once ``after_complete`` trials are COMPLETE, send ``sig``.

    With ``hook`` (a mode of journal_hooks.py) the signal is sent while the driver is inside a
    journal write, by design: the hook is armed, and the test waits until the write is under way.
    """
    config = _write_config(tmp_path)
    study_dir = tmp_path / "studies" / "resumable"
    arm, inside = tmp_path / "arm", tmp_path / "inside"
    args = ["run", str(config), "--no-progress"]
    cmd = _cli(*args) if hook is None else [sys.executable, str(HOOKS), hook, str(arm), str(inside), *args]
    log = open(tmp_path / "run.log", "w+")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path)
    deadline = time.monotonic() + 480
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
                if hook is not None:
                    arm.touch()
                    while not inside.exists() and proc.poll() is None and time.monotonic() < deadline:
                        time.sleep(0.02)
                    assert inside.exists(), "the journal hook never fired"
                os.kill(proc.pid, sig)
                break
        proc.wait(timeout=300)
    finally:
        if sig == signal.SIGKILL or proc.poll() is None:
            try:  # Ray processes of the killed driver (its own session) go with it
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    log.seek(0)
    return proc, study_dir, log.read()


def _resume_and_check(tmp_path: Path, study_dir: Path) -> str:
    out = subprocess.run(_cli("resume", "resumable", "--studies-dir", str(tmp_path / "studies"), "--no-progress"),
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)
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
    return out.stdout + out.stderr


def test_ctrl_c_inside_a_journal_write_marks_in_flight_trials_and_says_how_to_resume(tmp_path):
    # the SIGINT lands while the driver holds Optuna's journal lock (inside its release), where
    # it once raised KeyboardInterrupt half-way through the release
    proc, study_dir, log = _start_and_stop(tmp_path, signal.SIGINT, after_complete=3, hook="slow-release")
    assert proc.returncode == 130, log
    assert "explorer resume resumable" in log
    assert "Traceback" not in log, log
    journal = study_dir / "optuna.log"
    assert not os.path.lexists(str(journal) + ".lock"), "a journal lock was left behind"
    assert not list(study_dir.glob("optuna.log.lock*")), "a lock release was cut in half"
    assert journal.read_bytes().endswith(b"\n")
    for trials in _trials(study_dir).values():
        assert _count(trials, TrialState.RUNNING) == 0   # nothing left dangling by a clean stop
    _resume_and_check(tmp_path, study_dir)


def test_sigkill_inside_a_journal_append_is_recovered_by_resume_and_verify_passes(tmp_path):
    proc, study_dir, log = _start_and_stop(tmp_path, signal.SIGKILL, after_complete=3, hook="torn-append")
    assert proc.returncode == -signal.SIGKILL, log
    journal = study_dir / "optuna.log"
    # the fault is really there: a stale lock and a torn last record
    assert os.path.lexists(str(journal) + ".lock")
    assert not journal.read_bytes().endswith(b"\n")
    out = _resume_and_check(tmp_path, study_dir)
    assert "left by a killed process" in out and "torn last record" in out, out
    assert not os.path.lexists(str(journal) + ".lock")
    verify = subprocess.run(_cli("verify", str(study_dir), "--json"), capture_output=True, text=True, timeout=300)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert json.loads(verify.stdout)["ok"] is True
