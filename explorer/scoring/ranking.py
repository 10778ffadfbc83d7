"""The one ranking of trials: an objective's value from a trial's scores, and keyed values best first.

The store (``store: best``), the scheduler (its running best ``k``), the per-subject studies (the best
trial) and the tracker (a subject's history) all rank through here, so that they agree on ties and on
non-finite values.
"""

from __future__ import annotations

import math
from typing import Hashable, Iterable, Mapping, TypeVar

from explorer.scoring.objectives import objective_value

__all__ = ["objective_of", "rank", "best_values"]

K = TypeVar("K", bound=Hashable)


def objective_of(scores: Mapping[str, float | None], objective: str) -> float:
    """The value of ``objective`` from a trial's ``scores``: the score itself when ``scores`` holds it
    (None reads as NaN), else the combination of scores it names (:func:`objective_value`; NaN when
    one is missing)."""
    clean = {k: (math.nan if v is None else float(v)) for k, v in scores.items()}
    if objective in clean:
        return clean[objective]
    return objective_value(clean, objective)


def rank(values: Mapping[K, float], maximise: bool, k: int | None = None) -> list[K]:
    """The keys of ``values`` best first: finite values by value (largest first when ``maximise``, else
    smallest first), then the non-finite ones (NaN, inf of either sign); ties keep ``values``' order.
    ``k``: only the first ``k`` keys (``k <= 0`` gives none; None gives all)."""
    def key(item: tuple[int, tuple[K, float]]) -> tuple[int, float, int]:
        pos, (_, v) = item
        v = float(v)
        if not math.isfinite(v):
            return (1, 0.0, pos)
        return (0, -v if maximise else v, pos)

    ordered = [name for _, (name, _) in sorted(enumerate(values.items()), key=key)]
    return ordered if k is None else ordered[:max(int(k), 0)]


def best_values(values: Iterable[float], maximise: bool, k: int | None = None) -> list[float]:
    """The ``k`` best finite ``values``, best first (:func:`rank`); non-finite values are dropped."""
    by_pos = {i: float(v) for i, v in enumerate(values) if math.isfinite(float(v))}
    return [by_pos[i] for i in rank(by_pos, maximise, k)]
