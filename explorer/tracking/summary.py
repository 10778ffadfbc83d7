"""A finished subject's summary, as the tracker logs it on the subject's parent run (no mlflow import).

:class:`SubjectSummary` is what :meth:`~explorer.tracking.protocol.TrackerProtocol.finish_subject`
takes: the twin (best trial), how the study ranks trials, the trials themselves, and the arrays its
figures are drawn from (:class:`FitArrays`; the drawing is :func:`explorer.tracking.figures.summary_figures`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from explorer.records import TrialRecord


@dataclass(frozen=True, eq=False)
class FitArrays:
    """The arrays of a subject's fit figures; a missing one leaves its figure out.

    ``emp_fc``, ``best_fc``: empirical and the twin's simulated FC (region x region, Pearson r);
    ``emp_fcd_values``, ``best_fcd_values``: the upper triangles of the empirical and simulated FCD
    matrices (correlations between FC windows)."""

    emp_fc: np.ndarray | None = None
    best_fc: np.ndarray | None = None
    emp_fcd_values: np.ndarray | None = None
    best_fcd_values: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class SubjectSummary:
    """What the parent run of a finished subject records (see :mod:`explorer.tracking.tracker`).

    ``best_params``/``best_scores``: the twin's free values and scores, ``best_trial`` its number.
    ``objectives`` and ``directions`` (``"maximize"``/``"minimize"``, one per objective) in the
    study's order; without ``directions`` the first objective is maximised and the others get no
    ``best_so_far`` curve. ``history``: the COMPLETE trials ``[{"number", "values" (one per
    objective), "ended_at" (epoch s, optional)}]`` in trial order (None: from ``records``, else, in
    ``tracking.children: all`` only, from the subject's child runs). ``records``: every finished
    trial (COMPLETE and FAIL), the parent's trials table. ``config_text``: the frozen study config
    (logged as ``study.yaml``, secrets redacted). ``model`` and ``fixed_params`` become tags.
    """

    subject: str
    best_params: Mapping[str, float]
    best_scores: Mapping[str, float]
    best_trial: int | None = None
    objectives: Sequence[str] = ("fc_r",)
    directions: Sequence[str] = ()
    history: Sequence[Mapping[str, Any]] | None = None
    records: Sequence[TrialRecord] | None = None
    config_text: str = ""
    model: str = ""
    fixed_params: Mapping[str, Any] | None = None
    arrays: FitArrays = field(default_factory=FitArrays)

    @property
    def objective(self) -> str:
        """The first objective: the one the figures show."""
        return self.objectives[0]

    @property
    def maximise(self) -> bool:
        """Whether the first objective is maximised."""
        return self.resolved_directions()[0] == "maximize"

    def resolved_directions(self) -> list[str]:
        """The directions, lower-case; without any, ``maximize`` for the first objective and ``""`` (no
        ``best_so_far`` curve) for the others."""
        if not self.directions:
            return ["maximize"] + [""] * (len(self.objectives) - 1)
        return [str(d).lower() for d in self.directions]


@dataclass(frozen=True, eq=False)
class EcSummary:
    """A subject's EC fit, as the tracker logs it on the subject's parent run (metrics, tags, figures).

    ``summary``: the fit's scalars (:meth:`explorer.ec.EcFit.summary`: status, reason, fc_r_start, fc_r,
    loss, iterations, wall_s, ...); ``weights``/``sc``: the fitted EC and the SC it started from
    (region x region, ``[i, j]``: j -> i); ``trace``: (iterations + 1, 3) loss, FC r and lagged-covariance
    r per iteration; ``key``: the fit's key in the signals store."""

    subject: str
    key: str
    summary: Mapping[str, Any]
    weights: np.ndarray
    sc: np.ndarray
    trace: np.ndarray
