"""What happens once a subject has its trials: signals pruned and packed, the MLflow parent summarised.

:class:`SubjectFinisher` runs once per subject per driver session (and again for a subject whose
earlier session died before finishing). Every store and tracker call goes through the driver's
:class:`~explorer.runner.hooks.Guard`: a failure is logged and recorded, never raised.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from explorer.config import StudyConfig
from explorer.runner.hooks import Guard
from explorer.runner.inputs import bold_tr
from explorer.scoring.features import fcd, preprocess
from explorer.scoring.options import FeatureOptions
from explorer.search import FINISHED_ATTR, best_summary, complete_trials, from_trial, subject_counts
from explorer.tracking import FitArrays, SubjectSummary, TrackerThread


def summary_arrays(store: Any, subject: Any, best_number: int, opts: FeatureOptions, tr_s: float) -> FitArrays:
    """Arrays for the parent run's figures: empirical vs the twin's simulated FC, and FCD values."""
    if store is None:
        return FitArrays(emp_fc=subject.fc)
    trial = store.read_trial(subject.id, best_number)
    bold = trial.get("bold")
    if subject.fcd is None or bold is None:
        return FitArrays(emp_fc=subject.fc, best_fc=trial.get("fc"))
    skip = int(round(opts.discard_s / tr_s)) if opts.discard_s > 0 else 0
    with np.errstate(invalid="ignore", divide="ignore"):
        sim = fcd(preprocess(np.asarray(bold, dtype=np.float64)[skip:], tr_s, opts), opts.fcd_window, opts.fcd_step)
    return FitArrays(emp_fc=subject.fc, best_fc=trial.get("fc"),
                     emp_fcd_values=subject.fcd[np.triu_indices(subject.fcd.shape[0], k=1)],
                     best_fcd_values=sim[np.triu_indices(sim.shape[0], k=1)])


def finished_records(study: Any, objectives: list[str], sid: str) -> list[Any]:
    """The :class:`~explorer.records.TrialRecord` of every finished (COMPLETE or FAIL) trial of ``sid``'s study."""
    return [from_trial(t, objectives, sid) for t in study.get_trials(deepcopy=False)
            if t.state.name in ("COMPLETE", "FAIL")]


class SubjectFinisher:
    """Finishes subjects of one study: ``store: best`` pruning, packing, MLflow parent summary and trials
    table, FINISHED_ATTR."""

    def __init__(self, cfg: StudyConfig, cohort: Any, store: Any, tracker: TrackerThread, guard: Guard,
                 frozen_text: str):
        self.cfg = cfg
        self.cohort = cohort
        self.store = store
        self.tracker = tracker
        self.guard = guard
        self.frozen_text = frozen_text
        self.features = cfg.cohort.features

    def finish(self, sid: str, study: Any) -> bool:
        """Finish subject ``sid`` (its Optuna ``study``); returns whether any of its trials completed.

        The MLflow summary is queued first (its figures are drawn on the tracker's thread) and the
        signals pruned and packed meanwhile: a subject's locations name trials, not the groups holding
        them, so the summary is the same either way, and at the end of a session the two overlap.
        """
        cfg, guard = self.cfg, self.guard
        best = best_summary(study, cfg.objectives)
        counts = subject_counts(study)
        maximise = cfg.directions[0] == "maximize"
        records = finished_records(study, list(cfg.objectives), sid)
        if not best:   # no summary to make: the trials table alone (every trial failed)
            self.tracker.log_trial_table(sid, records)
        else:
            subject = self.cohort[sid]
            arrays = guard(f"figure data of {sid}", summary_arrays, self.store, subject, best["number"],
                           self.features, bold_tr(cfg, subject)) or FitArrays()
            self.tracker.finish_subject(SubjectSummary(
                subject=sid, best_params=best["params"], best_scores=best["scores"], best_trial=best["number"],
                objectives=tuple(cfg.objectives), directions=tuple(cfg.directions), history=complete_trials(study),
                records=records, config_text=self.frozen_text, model=cfg.model, fixed_params=dict(cfg.params.fixed),
                arrays=arrays))
        if self.store is not None and cfg.store.mode == "best" and best:
            guard(f"packing the best {cfg.store.best_k} signals of {sid}", self.store.keep_best, sid,
                  cfg.store.best_k, cfg.objectives[0], maximise, (best["number"],), pack=True)
        elif self.store is not None:
            guard(f"packing the signals of {sid}", self.store.pack, sid)
        # marked finished only once its summary is logged and its signals packed: a driver killed before
        # that finishes it again
        self.tracker.then(f"marking {sid} finished", study.set_user_attr, FINISHED_ATTR, counts.done)
        return counts.complete > 0
