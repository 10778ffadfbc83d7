"""Which trials get an MLflow child run (``tracking.children``): the mode's resolution and ranking.

Pure functions, no mlflow: the tracker, the driver's log line and ``explorer verify`` all ask here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

CHILDREN = ("auto", "all", "best_k", "none")

#: ``children: auto`` keeps one child run per trial while the study has at most this many trials
#: (subjects x trials per subject), and only each subject's best k beyond. MLflow's UI has been
#: reported to break above about 1,700 runs in one experiment, and ``search_runs`` to take over
#: 15 minutes at 30,000; 2,000 child runs (plus one parent per subject) stays browsable.
AUTO_ALL_MAX_TRIALS = 2000


def resolve_children(mode: str, subjects: int, trials: int) -> str:
    """The child-run mode (``all``, ``best_k`` or ``none``) of ``tracking.children = mode`` for a study of
    ``subjects`` subjects with ``trials`` trials each: ``auto`` is ``all`` up to
    :data:`AUTO_ALL_MAX_TRIALS` trials in all, else ``best_k``; the other modes are themselves."""
    if mode not in CHILDREN:
        raise ValueError(f"tracking.children must be one of {list(CHILDREN)}, got {mode!r}")
    if mode != "auto":
        return mode
    return "all" if max(int(subjects), 0) * max(int(trials), 0) <= AUTO_ALL_MAX_TRIALS else "best_k"


def describe(mode: str, subjects: int, trials: int, best_k: int) -> str:
    """One line saying which trials get a child run, and why (the session's log line)."""
    resolved = resolve_children(mode, subjects, trials)
    what = {"all": "one child run per trial", "best_k": f"child runs for the best {best_k} trials of each subject",
            "none": "no child runs"}[resolved]
    why = (f"auto: {subjects} subjects x {trials} trials {'<=' if resolved == 'all' else '>'} "
           f"{AUTO_ALL_MAX_TRIALS}" if mode == "auto" else f"tracking.children: {mode}")
    return f"MLflow: {what} ({why}); every trial is in its subject's parent run table trials.json"


def best_children(trials: Mapping[int, Mapping[str, Any]], k: int, objective: str, maximise: bool,
                  always: Iterable[int] = ()) -> set[int]:
    """Numbers of the trials (number -> {"scores": ...}, COMPLETE ones) that keep a child run in ``best_k``
    mode: the ``k`` best by ``objective`` (the first objective: a score or a combination; non-finite
    last, ties to the lower number), plus those of ``always`` (the subject's twin, a multi-objective
    compromise that need not be among them) that are in ``trials``. The ranking is ``store: best``'s
    (:func:`explorer.store.best_trials`)."""
    from explorer.store.packing import best_trials

    return set(best_trials({int(n): t for n, t in sorted(trials.items())}, k, objective, maximise, tuple(always)))


def tracker_options(cfg: Any, subjects: int) -> dict[str, Any]:
    """The :class:`~explorer.tracking.Tracker` keywords of study config ``cfg`` for a study of ``subjects``
    subjects: the resolved ``children`` mode, ``best_k``, and the first objective and its direction
    (what ``best_k`` ranks by)."""
    return {"children": resolve_children(cfg.tracking.children, subjects, cfg.n_trials),
            "best_k": cfg.tracking.best_k, "objective": cfg.objectives[0],
            "maximise": cfg.directions[0] == "maximize"}
