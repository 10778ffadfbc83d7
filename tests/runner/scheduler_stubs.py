"""A stub driver session over real in-memory Optuna studies, to drive the
:class:`~explorer.runner.scheduler.Scheduler` without Ray (tests/runner)."""

from __future__ import annotations

from types import SimpleNamespace

import optuna

from explorer.runner.driver import RunResult
from explorer.runner.hooks import Guard
from explorer.runner.scheduler import Scheduler
from explorer.search import open_subject_study, subject_counts

from study_configs import fast_config

SUBJECTS = ["NAP_001", "NAP_002", "NAP_007"]


class _Space:
    def __init__(self, refuse: str | None = None):
        self.refuse = refuse

    def refusal(self, free):
        return self.refuse


class _Tracker:
    def __init__(self):
        self.logged: list[tuple[str, int, str, str]] = []

    def log_trials(self, sid, records):
        self.logged += [(sid, r.number, r.state, r.reason) for r in records]


class _Finisher:
    def __init__(self):
        self.finished: list[str] = []

    def finish(self, sid, study):
        self.finished.append(sid)
        return subject_counts(study).complete > 0


class _Progress:
    def set_subject(self, sid, target, complete, failed, best):
        pass

    def trial(self, sid, state, score):
        pass

    def finished(self, sid):
        pass


class _OpenedStudy:
    def __init__(self, cfg, subjects, refuse: dict[str, str] | None = None):
        self.cfg = cfg
        storage = optuna.storages.InMemoryStorage()
        self.studies = {sid: open_subject_study(storage, cfg, sid) for sid in subjects}
        self.counts = {sid: subject_counts(s) for sid, s in self.studies.items()}
        self.spaces = {sid: _Space((refuse or {}).get(sid)) for sid in subjects}
        self.guard = Guard()
        self.tracker = _Tracker()
        self.finisher = _Finisher()
        self.forgotten: list[tuple[str, int]] = []
        self.active = set(subjects)
        self.more = 1

    def forget_signals(self, sid):
        return lambda trial: self.forgotten.append((sid, trial.number))

    # the subject admission of an OpenedStudy: every subject is in from the start, nothing more to take
    def room(self):
        return 0

    def ship(self, sid, pool):
        pass

    def lost(self, sid):
        return False

    # 1: as if more subjects were to come, so calls keep ray.batch_size (no end-of-session shrinking)
    def waiting(self):
        return self.more

    def let_go(self, sid):
        self.active.discard(sid)


class _Pool:
    def __init__(self):
        self.shut = 0
        self.slots = [object(), object()]   # two live actors

    def shutdown(self):
        self.shut += 1


def scheduler(tmp_path, subjects=SUBJECTS, refuse=None, **changes):
    """(Scheduler, stub session, RunResult) of a fast config's study over ``subjects``;
    ``changes``: config overrides."""
    cfg = fast_config(tmp_path, cohort={"subjects": list(subjects)}, **changes)
    session = _OpenedStudy(cfg, subjects, refuse)
    result = RunResult(name=cfg.name, study_dir=str(tmp_path))
    stop = SimpleNamespace(requested=False, forced=False)
    return Scheduler(session, _Pool(), list(subjects), _Progress(), stop, result), session, result
