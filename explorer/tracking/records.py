"""A :class:`~explorer.records.TrialRecord` as an MLflow child run, both ways (no mlflow import).

MLflow keeps every field of a record:

* params: the free values, each under :func:`param_key` (MLflow allows no brackets:
  ``w_plus[net3]`` is ``w_plus/net3``) as ``repr(float)``, so they come back exactly; besides them
  the run settings :data:`SETTINGS_PARAMS` (``dt_ms``, ``duration_s``), which are the study's, not
  the record's (:func:`run_settings` reads them);
* metrics: the finite scores (under :func:`metric_key`) and the times :data:`TRIAL_METRICS`;
* tags: ``subject``, ``trial`` (the number), ``seed``, ``state``, ``attempt``, and where set
  ``reason``, ``signals``, ``actor``, ``node`` (secrets redacted, cut to :data:`MAX_TAG_VALUE`
  characters) and the actor's window ``started_at``/``ended_at`` (``repr(float)``);
* the run's start and end: ``asked_at``/``told_at`` (the Optuna trial's own ask and tell), to the
  millisecond; a record never told (``asked_at``/``told_at`` 0) starts and ends at the actor's
  ``started_at``/``ended_at`` instead, which then decode as its ``asked_at``/``told_at``;
* the run's status: FINISHED for COMPLETE, FAILED otherwise.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from explorer.records import TrialRecord
from explorer.secrets import redact_text

MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000

ROLE = "explorer.role"          # "subject" (parent run), "trial" (child run) or "report"
PARENT = "mlflow.parentRunId"
TRIAL_METRICS = ("sim_seconds", "wall_seconds", "simulate_wall_seconds", "score_wall_seconds", "store_wall_seconds")
#: the study's run settings every child run records as params besides the record's own
SETTINGS_PARAMS = ("dt_ms", "duration_s")
_TEXT_TAGS = ("reason", "signals", "actor", "node")
_TIME_TAGS = ("started_at", "ended_at")


def param_key(name: str) -> str:
    """MLflow key of a free parameter: ``J_NMDA[net3]`` -> ``J_NMDA/net3`` (MLflow allows no brackets)."""
    return name.replace("[", "/").rstrip("]") if name.endswith("]") else name


def param_name(key: str) -> str:
    """Inverse of :func:`param_key`."""
    head, sep, tail = key.partition("/")
    return f"{head}[{tail}]" if sep else key


def metric_key(name: str) -> str:
    """MLflow key of a score or objective: ``fc_r + fc_r_residual - fcd_ks`` -> ``fc_r_plus_fc_r_residual_minus_fcd_ks``."""
    return (name.replace(" ", "").replace("+", "_plus_").replace("-", "_minus_").replace("*", "_x_")
            .strip("_"))


def fmt_param(value: Any) -> str:
    """An MLflow param value: ``repr(float)`` for numbers (exact both ways), else the text; redacted, cut."""
    s = repr(float(value)) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)
    return redact_text(s)[:MAX_PARAM_VALUE]


def _ms(epoch_s: float | None, default: int) -> int:
    return int(round(epoch_s * 1000)) if epoch_s else default


@dataclass
class RunFields:
    """What a child run holds of a record: its params, metrics, tags, start/end (epoch ms) and status."""

    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    start_time: int
    end_time: int
    status: str


def settings_params(settings: Any) -> dict[str, Any]:
    """The :data:`SETTINGS_PARAMS` of run settings (a study's ``simulation`` section, or a mapping) that are set."""
    if settings is None:
        return {}
    get = settings.get if isinstance(settings, Mapping) else lambda k: getattr(settings, k, None)
    return {k: get(k) for k in SETTINGS_PARAMS if get(k) is not None}


def to_run(rec: TrialRecord, settings: Any = None, now_ms: int | None = None) -> RunFields:
    """The child run of ``rec``; ``settings``: the study's run settings (only :data:`SETTINGS_PARAMS` are kept).

    ``now_ms`` stands in for an unknown end time (a record with neither ``told_at`` nor ``ended_at``).
    """
    now = int(time.time() * 1000) if now_ms is None else int(now_ms)
    # the Optuna trial's own ask/tell times when known (so both show one duration), else the actor's
    end = _ms(rec.told_at or rec.ended_at, now)
    start = _ms(rec.asked_at or rec.started_at, end - int(rec.wall_seconds * 1000))
    params = {param_key(k): fmt_param(v) for k, v in rec.params.items()}
    params.update({k: fmt_param(v) for k, v in settings_params(settings).items()})
    metrics = {metric_key(k): float(v) for k, v in rec.scores.items() if _finite(v)}
    metrics.update({k: float(getattr(rec, k)) for k in TRIAL_METRICS})
    tags = {ROLE: "trial", "subject": rec.subject, "trial": str(rec.number), "seed": str(rec.seed),
            "state": rec.state, "attempt": str(rec.attempt)}
    tags.update({k: redact_text(str(getattr(rec, k)))[:MAX_TAG_VALUE] for k in _TEXT_TAGS if getattr(rec, k)})
    tags.update({k: repr(float(getattr(rec, k))) for k in _TIME_TAGS if getattr(rec, k)})
    return RunFields(params, metrics, tags, start, end, "FINISHED" if rec.state == "COMPLETE" else "FAILED")


def from_run(run: Any) -> TrialRecord:
    """The record of an MLflow child run (an ``mlflow.entities.Run``); absent tags and metrics decode as defaults."""
    tags, metrics = run.data.tags, run.data.metrics
    params = {param_name(k): _number(v) for k, v in run.data.params.items() if k not in SETTINGS_PARAMS}
    return TrialRecord(
        subject=tags.get("subject", ""), number=int(tags.get("trial", -1)), params=params,
        seed=int(tags.get("seed", -1)), state=tags.get("state", ""),
        scores={k: float(v) for k, v in metrics.items() if k not in TRIAL_METRICS and _finite(v)},
        attempt=int(tags.get("attempt", 0)),
        **{k: tags.get(k, "") for k in _TEXT_TAGS},
        **{k: float(tags[k]) if k in tags else 0.0 for k in _TIME_TAGS},
        **{k: float(metrics.get(k, 0.0)) for k in TRIAL_METRICS},
        asked_at=run.info.start_time / 1000 if run.info.start_time else 0.0,
        told_at=run.info.end_time / 1000 if run.info.end_time else 0.0)


def run_settings(run: Any) -> dict[str, Any]:
    """The study's run settings a child run records (:data:`SETTINGS_PARAMS` it has)."""
    return {k: _number(run.data.params[k]) for k in SETTINGS_PARAMS if k in run.data.params}


def _finite(v: Any) -> bool:
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _number(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text
