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


# ---- the parent run's trials table: one row per trial ---------------------------------------------
TABLE = "trials.json"
#: the table's columns besides ``params.<name>`` (after ``seed``) and ``scores.<name>`` (after them)
_HEAD = ("number", "state", "reason", "seed")
_TAIL = ("asked_at", "told_at", "wall_seconds", "signals", "sim_seconds", "simulate_wall_seconds",
         "score_wall_seconds", "store_wall_seconds", "started_at", "ended_at", "attempt", "actor", "node", "subject")
_STR = {"state", "reason", "signals", "actor", "node", "subject"}
_INT = {"number", "seed", "attempt"}


def to_row(rec: TrialRecord) -> dict[str, Any]:
    """One row of the trials table: every field of ``rec``, its free values as ``params.<name>`` (exact)
    and its finite scores as ``scores.<name>``; ``reason`` and ``signals`` redacted. Times in epoch s."""
    row: dict[str, Any] = {k: getattr(rec, k) for k in _HEAD}
    row["reason"] = redact_text(rec.reason)
    row.update({f"params.{k}": float(v) if isinstance(v, (int, float)) else str(v) for k, v in rec.params.items()})
    row.update({f"scores.{k}": float(v) for k, v in rec.scores.items() if _finite(v)})
    row.update({k: getattr(rec, k) for k in _TAIL})
    row["signals"] = redact_text(rec.signals)
    return row


def to_table(records: list[TrialRecord]) -> dict[str, list]:
    """The trials table of ``records`` in MLflow's table format (pandas ``orient="split"``: ``columns`` and
    ``data``, one row per record in trial order; a cell a record lacks is None)."""
    rows = [to_row(r) for r in sorted(records, key=lambda r: r.number)]
    names = {k for row in rows for k in row}
    params = sorted(k for k in names if k.startswith("params."))
    scores = sorted(k for k in names if k.startswith("scores."))
    columns = list(_HEAD) + params + scores + list(_TAIL)
    return {"columns": columns, "data": [[_cell(row.get(c)) for c in columns] for row in rows]}


def _cell(v: Any) -> Any:
    """A JSON cell: a non-finite float is None (JSON has no NaN)."""
    return None if isinstance(v, float) and not math.isfinite(v) else v


def from_table(table: Mapping[str, Any]) -> dict[int, TrialRecord]:
    """number -> the record of each row of a table written by :func:`to_table` (unknown columns ignored)."""
    columns = list(table.get("columns", []))
    out = {}
    for values in table.get("data", []):
        row = {c: v for c, v in zip(columns, values) if v is not None}
        fields: dict[str, Any] = {"params": {}, "scores": {}}
        for c, v in row.items():
            head, _, name = c.partition(".")
            if head in ("params", "scores") and name:
                if head == "params" or _finite(v):
                    fields[head][name] = v if head == "params" and isinstance(v, str) else float(v)
            elif c in _STR:
                fields[c] = str(v)
            elif c in _INT:
                fields[c] = int(v)
            elif c in _TAIL:
                fields[c] = float(v)
        if "number" in fields:
            fields.setdefault("subject", "")
            fields.setdefault("seed", -1)
            fields.setdefault("state", "")
            out[fields["number"]] = TrialRecord(**fields)
    return out
