"""The journal file after a killed writer, and a trial's user attributes in one append."""

from __future__ import annotations

import os

import optuna
import pytest

from explorer.search import open_storage, recover_journal, set_trial_user_attrs


def _journal(tmp_path):
    url = str(tmp_path / "optuna.log")
    storage = open_storage(url)
    study = optuna.create_study(storage=storage, study_name="s")
    return url, storage, study


def test_user_attrs_of_a_trial_go_in_one_journal_append(tmp_path):
    url, storage, study = _journal(tmp_path)
    trial = study.ask()
    before = len((tmp_path / "optuna.log").read_bytes().splitlines())
    appends = []
    backend = storage._backend
    original = backend.append_logs
    backend.append_logs = lambda logs: (appends.append(len(logs)), original(logs))[1]
    set_trial_user_attrs(study, trial, {"seed": 7, "reason": "diverged", "scores": {"fc_r": 0.5}})
    assert appends == [3]                       # one write holding the three records
    lines = (tmp_path / "optuna.log").read_bytes().splitlines()
    assert len(lines) == before + 3
    fresh = open_storage(url)                   # another process replays them as Optuna wrote them
    t = optuna.load_study(study_name="s", storage=fresh).trials[0]
    assert t.user_attrs == {"seed": 7, "reason": "diverged", "scores": {"fc_r": 0.5}}


def test_user_attrs_on_sqlite_go_in_one_transaction(tmp_path):
    import sqlalchemy

    storage = open_storage(f"sqlite:///{tmp_path / 'o.db'}")
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    trial.set_user_attr("node", "old")
    commits = []
    sqlalchemy.event.listen(storage.engine, "commit", lambda conn: commits.append(1))
    set_trial_user_attrs(study, trial, {"seed": 1, "node": "n", "scores": {"fc_r": 0.5}})
    assert len(commits) == 1                    # one commit for the three attributes (Optuna: one each)
    fresh = optuna.load_study(study_name="s", storage=open_storage(f"sqlite:///{tmp_path / 'o.db'}"))
    assert fresh.trials[0].user_attrs == {"seed": 1, "node": "n", "scores": {"fc_r": 0.5}}   # upserted
    study.tell(trial, 0.5)
    with pytest.raises(RuntimeError, match="finished"):   # a finished trial's attributes stay as they are
        set_trial_user_attrs(study, trial, {"seed": 2})


def test_recover_journal_removes_a_stale_lock_and_a_torn_record(tmp_path, caplog):
    url, storage, study = _journal(tmp_path)
    study.ask()
    path = tmp_path / "optuna.log"
    intact = path.read_bytes()
    os.symlink(path, str(path) + ".lock")                                 # killed while holding the lock
    (tmp_path / "optuna.log.lock1234.rename").write_text("")              # killed inside a release
    with open(path, "ab") as f:
        f.write(b'{"op_code":8,"worker_id":"x","trial_id":0,"user_at')    # killed inside the write
    with caplog.at_level("WARNING"):
        done = recover_journal(url, wait_s=0.1)
    assert len(done) == 3, done
    assert "left by a killed process" in caplog.text
    assert not os.path.lexists(str(path) + ".lock")
    assert not list(tmp_path.glob("*.rename"))
    assert path.read_bytes() == intact
    # and the journal takes new writes that read back
    study2 = optuna.load_study(study_name="s", storage=open_storage(url))
    study2.ask()
    assert len(optuna.load_study(study_name="s", storage=open_storage(url)).trials) == 2


def test_recover_journal_leaves_an_intact_journal_and_sql_urls_alone(tmp_path):
    url, storage, study = _journal(tmp_path)
    before = (tmp_path / "optuna.log").read_bytes()
    assert recover_journal(url, wait_s=0.1) == []
    assert (tmp_path / "optuna.log").read_bytes() == before
    assert recover_journal("sqlite:///nowhere.db") == []


def test_a_trial_killed_while_being_asked_is_reaped_but_not_re_enqueued(tmp_path):
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState

    from explorer.search import reap_interrupted

    url, storage, study = _journal(tmp_path)
    dists = {"G": FloatDistribution(0.0, 1.0), "a": FloatDistribution(-1.0, 0.0)}
    whole = study.ask(dists)                                  # asked in full, then the driver died
    part = study.ask()
    part.suggest_float("G", 0.0, 1.0)                          # killed between its two parameter writes
    assert reap_interrupted(study, names=dists) == [whole.number, part.number]
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials[:2]] == [TrialState.FAIL, TrialState.FAIL]
    waiting = [t for t in trials if t.state == TrialState.WAITING]
    assert [t.system_attrs["fixed_params"] for t in waiting] == [whole.params]   # only the whole set runs again
