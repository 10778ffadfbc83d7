"""What a trial is made of (:class:`Task`) and what it produced (:class:`TrialRecord`).

Shared by the runner, the search, the signals store and the tracker; each of those encodes and
decodes a TrialRecord for its own backend.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Task:
    """One trial sent to an actor: its Optuna number, its free values, its noise seed, its attempt.

    ``free``: the sampled values (``P``, ``P.base``, ``P[g]``, ``noise_sigma``), before the subject's
    :class:`~explorer.params.subject.SubjectSpace` expands them. ``attempt``: 0, or how often the trial was
    sent again after its actor died. Repeat ``r`` of the trial uses seed ``seed + r``.
    """

    number: int
    free: dict[str, float]
    seed: int
    attempt: int = 0

    def retried(self) -> "Task":
        """The same trial, sent once more."""
        return Task(self.number, dict(self.free), self.seed, self.attempt + 1)


@dataclass
class TrialRecord:
    """What one evaluated trial produced.

    ``state`` is ``"COMPLETE"`` or ``"FAIL"``; ``reason`` says why a trial failed
    (``"diverged"``, ``"actor died"``, ``"interrupted"``, ``"error: ..."``).
    ``signals`` is the location (URL or path) of the trial's signals in the zarr store, if stored.

    Times, measured by the actor for this trial (durations in seconds):

    * ``sim_seconds``: *simulated* (model) time, ``duration_s * repeats``; not a wall time.
    * ``simulate_wall_seconds``, ``score_wall_seconds``, ``store_wall_seconds``: this trial's share of
      the wall time of its batch's one ``simulate`` call, its one vectorised scoring pass (FC, and
      FCD when an objective needs it, of every repeat) and its one write to the signals store (0
      when signals are not stored). An actor call does each stage once for the whole batch, so
      each stage's wall time is split evenly over the batch's simulated trials.
    * ``wall_seconds``: ``simulate_wall_seconds + score_wall_seconds + store_wall_seconds``, the
      actor time this trial accounts for. A trial the actor never returned (``"actor died"``,
      ``"error: ..."`` from Ray) has 0.
    * ``started_at`` / ``ended_at``: epoch seconds (``time.time()``) on the actor: when its batch's
      ``simulate`` call started and when the batch's records were complete (scored, signals
      written). For a trial the actor never returned they are the driver's times of submitting
      the batch and of learning that it failed (0 when unknown). Optuna keeps them as the user
      attributes ``started_at``/``ended_at``, MLflow as the child run's tags of the same names.
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

    @classmethod
    def of(cls, subject: str, task: Task, state: str, **fields: Any) -> "TrialRecord":
        """The record of ``task`` of ``subject`` (number, free values, seed and attempt from the task)."""
        return cls(subject=subject, number=int(task.number), params=dict(task.free), seed=int(task.seed),
                   state=state, attempt=int(task.attempt), **fields)
