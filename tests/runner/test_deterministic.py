"""Deterministic mode on a local Ray: the same config gives the same trials on 1 and 2 actors, and after
an interruption and a resume (``sampler.deterministic``)."""

from __future__ import annotations

import signal

from optuna.trial import TrialState

from explorer.runner.driver import run_study
from explorer.runner.progress import NullProgress
from explorer.search import (INTERRUPTED, TOLD_ORDER_ATTR, list_subject_studies, open_storage, open_subject_study,
                             subject_counts)
from explorer.study.frozen import save_frozen
from explorer.layout import optuna_storage_url
from explorer.study.status import status_lines, study_status

from study_configs import fast_config

TRIALS = 7
#: rounds of 3: 3 + 3 + 1 trials per subject; TPE past its 2 random start-up trials from the second round on
DETERMINISTIC = {"sampler": {"name": "tpe", "seed": 3, "deterministic": True, "batch": 3,
                             "options": {"n_startup_trials": 2}}}


class _StopAfter(NullProgress):
    """Raises SIGINT (deferred by the driver: a flag) once ``n`` trials have been told."""

    def __init__(self, n: int):
        self.n, self.told = n, 0

    def trial(self, subject, state, score):
        self.told += 1
        if self.told == self.n:
            signal.raise_signal(signal.SIGINT)


def _run(tmp_path, name: str, actors: int, progress=None, trials: int = TRIALS):
    cfg = fast_config(tmp_path / name, trials=trials, **DETERMINISTIC)
    save_frozen(cfg)
    return cfg, run_study(cfg, actors=actors, progress=progress)


def _studies(cfg):
    storage = open_storage(optuna_storage_url(cfg, cfg.study_dir))
    return {sid: open_subject_study(storage, cfg, sid, create=False) for sid in list_subject_studies(storage, cfg.name)}


def _counted(cfg) -> dict[str, list[tuple]]:
    """Each subject's counted trials in trial order: (params, seed, state, scores, value), exactly."""
    out = {}
    for sid, study in _studies(cfg).items():
        rows = []
        for t in study.get_trials(deepcopy=False):
            if t.state == TrialState.FAIL and t.user_attrs.get("reason") == INTERRUPTED:
                continue
            rows.append((dict(t.params), t.user_attrs["seed"], t.state.name, dict(t.user_attrs.get("scores", {})),
                         t.values))
        out[sid] = rows
    return out


def test_deterministic_trials_are_the_same_on_1_and_2_actors_and_after_a_resume(tmp_path, ray_session):
    cfg1, r1 = _run(tmp_path, "one", actors=1)
    cfg2, r2 = _run(tmp_path, "two", actors=2)
    assert (r1.mode, r2.mode) == ("deterministic", "deterministic")
    assert r1.actors == 1 and r2.actors == 2 and r1.trials_run == r2.trials_run == 2 * TRIALS
    one = _counted(cfg1)
    assert sorted(one) == ["NAP_001", "NAP_002"]
    for sid, rows in one.items():
        assert len(rows) == TRIALS and all(state == "COMPLETE" for _, _, state, _, _ in rows)
        assert len({tuple(sorted(p.items())) for p, *_ in rows}) == TRIALS     # real draws, not one point
    assert one["NAP_001"] != one["NAP_002"]      # each subject has its own draws and seeds
    assert _counted(cfg2) == one
    assert any(line.startswith("search: deterministic") for line in status_lines(study_status(cfg2.study_dir)))
    for study in _studies(cfg1).values():        # told in trial order, round after round
        trials = study.get_trials(deepcopy=False)
        assert [t.user_attrs[TOLD_ORDER_ATTR] for t in trials] == list(range(TRIALS))

    # interrupted once the first round of one subject is told: the other's round, in flight on the one
    # actor, is reaped and re-enqueued; the resume (on 2 actors) reaches the uninterrupted run's trials
    cfg3, r3 = _run(tmp_path, "resumed", actors=1, progress=_StopAfter(3))
    assert r3.interrupted and r3.requeued == 3
    assert sum(subject_counts(s).interrupted for s in _studies(cfg3).values()) == 3
    r4 = run_study(cfg3, actors=2)
    assert not r4.interrupted and r4.trials_run == 2 * TRIALS - 3
    assert _counted(cfg3) == one
