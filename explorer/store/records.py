"""A :class:`~explorer.records.TrialRecord` as the signals store keeps it, both ways, and what the
store records of the simulations behind its signals.

A trial group's commit marker (its zarr attributes) keeps of a record: ``subject``, ``number``,
``params``, ``seed``, ``state``, the finite ``scores``, ``attempt``, ``actor``, ``node`` and
``sim_seconds``; ``signals`` is the trial's stable location, which the store assigns
(:func:`~explorer.store.trial_location`) whatever the record said. Only COMPLETE trials have signals:
the store refuses any other (so ``reason`` is always ""). The times (``*wall_seconds``,
``started_at``, ``ended_at``, ``asked_at``, ``told_at``) are not known when the signals are
committed and are not kept: they decode as 0 (Optuna and MLflow keep them).

Besides the record, the root group and every trial group carry ``simulation`` (:func:`simulation_attrs`:
the model and the run settings) and ``git_revision``: the signals describe themselves.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from explorer.errors import StoreError
from explorer.records import TrialRecord

#: the record's fields a trial group keeps (besides ``signals``, its location)
KEPT = ("subject", "number", "params", "seed", "state", "scores", "attempt", "actor", "node", "sim_seconds")
#: what ``simulation`` holds: the model, the run settings of ``simulate()`` and the noise repeats per trial
SIMULATION_KEYS = ("model", "dt_ms", "duration_s", "transient_s", "noise_sigma", "bold_tr_s", "dtype",
                   "integrator", "bold_monitor", "velocity", "repeats")


def _floats(d: Mapping[str, Any] | None, finite: bool = False) -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in (d or {}).items():
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise StoreError(f"value {k}={v!r} is not a number; params and scores must be scalars") from None
        if not finite or math.isfinite(f):
            out[str(k)] = f
    return out


def to_attrs(rec: TrialRecord) -> dict[str, Any]:
    """The commit-marker attributes of ``rec`` (a COMPLETE record; StoreError otherwise)."""
    if rec.state != "COMPLETE":
        raise StoreError(f"subject {rec.subject} trial {rec.number}: only COMPLETE trials have signals to store, "
                         f"not a {rec.state} one")
    return {"subject": str(rec.subject), "number": int(rec.number), "params": _floats(rec.params),
            "seed": int(rec.seed), "state": rec.state, "scores": _floats(rec.scores, finite=True),
            "attempt": int(rec.attempt), "actor": str(rec.actor), "node": str(rec.node),
            "sim_seconds": float(rec.sim_seconds)}


def from_attrs(attrs: Mapping[str, Any]) -> TrialRecord:
    """The record of a trial group's marker; markers written before a field was kept give its default."""
    seed = attrs.get("seed")
    return TrialRecord(subject=str(attrs.get("subject", "")), number=int(attrs.get("number", -1)),
                       params={k: (math.nan if v is None else float(v)) for k, v in (attrs.get("params") or {}).items()},
                       seed=-1 if seed is None else int(seed), state=str(attrs.get("state", "COMPLETE")),
                       scores={k: float(v) for k, v in (attrs.get("scores") or {}).items()
                               if v is not None and math.isfinite(float(v))},
                       attempt=int(attrs.get("attempt", 0) or 0), actor=str(attrs.get("actor", "")),
                       node=str(attrs.get("node", "")), sim_seconds=float(attrs.get("sim_seconds", 0.0) or 0.0),
                       signals=str(attrs.get("location", "")))


def simulation_attrs(model: str, settings: Any, repeats: int | None = None) -> dict[str, Any]:
    """``simulation``: the model, the run settings (``simulate()``'s keyword arguments, or a study's
    ``simulation`` section; a missing one is None) and the repeats per trial (default: the settings')."""
    def get(k: str) -> Any:
        return settings.get(k) if isinstance(settings, Mapping) else getattr(settings, k, None)

    out: dict[str, Any] = {"model": str(model)}
    for k in SIMULATION_KEYS[1:]:
        v = repeats if k == "repeats" and repeats is not None else get(k)
        out[k] = float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "repeats" else v
    if out["repeats"] is not None:
        out["repeats"] = int(out["repeats"])
    return out
