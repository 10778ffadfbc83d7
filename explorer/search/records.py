"""A :class:`~explorer.records.TrialRecord` as Optuna keeps it, both ways.

Optuna keeps every field of a record:

* ``number``, ``params`` and ``state`` are the trial's own; ``subject`` is its study's (the study
  is named after the subject, so :func:`from_trial` is told it);
* the scores are the user attribute ``scores`` (finite scores only), completed by the objective
  values of the objectives that are named scores (a combined objective such as
  ``fc_r - fcd_ks`` is derived from the scores, not one of them);
* ``asked_at``/``told_at`` are the trial's ``datetime_start``/``datetime_complete``: Optuna sets
  them itself, so a record's own values are replaced by the tell (:func:`~explorer.search.tell_record`);
* every other field is the user attribute of the same name; ``reason`` only for a FAIL.

A trial written before an attribute existed decodes with that field's default (``seed`` -1).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence

from explorer.records import TrialRecord
from explorer.scoring.objectives import SCORES

if TYPE_CHECKING:  # pragma: no cover
    from optuna.trial import FrozenTrial

FAIL_REASON_ATTR = "reason"
SCORES_ATTR = "scores"
#: the fields kept as user attributes of the same name (besides ``scores`` and ``reason``)
ATTR_FIELDS = ("seed", "sim_seconds", "wall_seconds", "simulate_wall_seconds", "score_wall_seconds",
               "store_wall_seconds", "started_at", "ended_at", "actor", "node", "signals", "attempt")
#: type and default (a trial written before the attribute existed) of each of ATTR_FIELDS
_KINDS = {"seed": (int, -1), "attempt": (int, 0), "actor": (str, ""), "node": (str, ""), "signals": (str, "")}


def finite_scores(scores: Any) -> dict[str, float]:
    """The finite numeric scores of ``scores`` (anything else dropped)."""
    out = {}
    for k, v in dict(scores or {}).items():
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            out[str(k)] = f
    return out


def to_user_attrs(rec: TrialRecord) -> dict[str, Any]:
    """The Optuna user attributes of ``rec`` (finite scores only; ``reason`` for a FAIL)."""
    attrs: dict[str, Any] = {k: getattr(rec, k) for k in ATTR_FIELDS}
    attrs[SCORES_ATTR] = finite_scores(rec.scores)
    if rec.state == "FAIL":
        attrs[FAIL_REASON_ATTR] = rec.reason
    return attrs


def trial_times(trial: Any) -> tuple[float, float]:
    """(asked_at, told_at): epoch seconds of the trial's ``datetime_start``/``datetime_complete`` (0 when unset)."""
    start, end = getattr(trial, "datetime_start", None), getattr(trial, "datetime_complete", None)
    return (start.timestamp() if start else 0.0, end.timestamp() if end else 0.0)


def from_trial(trial: "FrozenTrial", objectives: Sequence[str] = (), subject: str = "") -> TrialRecord:
    """The record of an Optuna trial of ``subject``'s study (``objectives``: the study's, in order)."""
    ua = trial.user_attrs
    scores = finite_scores(ua.get(SCORES_ATTR))
    if trial.values:   # a combined objective is derived from the scores: only named scores are recorded
        scores.update(finite_scores({o: v for o, v in zip(objectives, trial.values) if o in SCORES}))
    typed = {}
    for k in ATTR_FIELDS:
        kind, default = _KINDS.get(k, (float, 0.0))
        typed[k] = kind(ua[k]) if ua.get(k) is not None else default
    asked, told = trial_times(trial)
    return TrialRecord(subject=subject, number=int(trial.number), params=dict(trial.params), state=trial.state.name,
                       scores=scores, reason=str(ua.get(FAIL_REASON_ATTR, "") or ""), asked_at=asked, told_at=told,
                       **typed)
