"""The record of one trial, shared by the runner, the signals store and the tracker."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class TrialRecord:
    """What one evaluated trial produced.

    ``state`` is ``"COMPLETE"`` or ``"FAIL"``; ``reason`` says why a trial failed
    (``"diverged"``, ``"actor died"``, ``"interrupted"``, ``"error: ..."``).
    ``signals`` is the location (URL or path) of the trial's signals in the zarr store, if stored.

    Times, measured by the actor for this trial (durations in seconds):

    * ``sim_seconds``: *simulated* (model) time, ``duration_s * repeats``; not a wall time.
    * ``simulate_wall_seconds``: this trial's share of the wall time of the ``simulate`` call that
      ran its batch (one call simulates the whole batch at once, so it cannot be timed per trial:
      the call's wall time is split evenly over the batch's trials, which all have ``repeats`` rows).
    * ``score_wall_seconds``: wall time of this trial's own scoring (FC/FCD of every repeat),
      measured for this trial alone.
    * ``store_wall_seconds``: wall time of this trial's own write to the signals store, measured
      for this trial alone (0 when signals are not stored).
    * ``wall_seconds``: ``simulate_wall_seconds + score_wall_seconds + store_wall_seconds``, the
      actor time this trial accounts for. A trial the actor never returned (``"actor died"``,
      ``"error: ..."`` from Ray) has 0.
    * ``started_at`` / ``ended_at``: epoch seconds (``time.time()``) on the actor: when the
      ``simulate`` call of its batch started, and when its record was complete (scored, signals
      written). The interval includes the scoring of the batch's earlier trials, so it can be
      longer than ``wall_seconds``. For a trial the actor never returned they are the driver's
      times of submitting the batch and of learning that it failed (0 when unknown). Optuna
      keeps them as the user attributes ``started_at``/``ended_at``, MLflow as the child run's
      tags of the same names.
    * ``asked_at`` / ``told_at``: epoch seconds of the Optuna trial's own ``datetime_start`` (ask)
      and ``datetime_complete`` (tell), queueing included. The MLflow child run starts and ends at
      exactly these times, so optuna-dashboard and MLflow show one duration for a trial.
    """

    subject: str
    number: int
    params: dict[str, float]
    seed: int
    state: str
    scores: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    sim_seconds: float = 0.0
    wall_seconds: float = 0.0
    actor: str = ""
    node: str = ""
    signals: str = ""
    attempt: int = 0
    simulate_wall_seconds: float = 0.0
    score_wall_seconds: float = 0.0
    store_wall_seconds: float = 0.0
    started_at: float = 0.0
    ended_at: float = 0.0
    asked_at: float = 0.0
    told_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
