"""The record of one trial, shared by the runner, the signals store and the tracker."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class TrialRecord:
    """What one evaluated trial produced.

    ``state`` is ``"COMPLETE"`` or ``"FAIL"``; ``reason`` says why a trial failed
    (``"diverged"``, ``"actor died"``, ``"interrupted"``, ``"error: ..."``).
    Times are in seconds: ``sim_seconds`` of simulated time, ``wall_seconds`` spent by the actor.
    ``signals`` is the location (URL or path) of the trial's signals in the zarr store, if stored.
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
