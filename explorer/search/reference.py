"""The study's cohort reference: the cohort-mean empirical FC, fixed when a study starts.

``fc_r_residual`` subtracts it from both FCs, and ``params.groups: fc_networks<k>`` clusters it.
It is computed from the subjects of the first run and kept in ``<study>/cohort_reference.npz``, so
that resuming, extending to more subjects or re-running a report never changes what an existing
trial's score or a group name means.
"""

from __future__ import annotations

import os

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from explorer.errors import StudyError
from explorer.layout import REFERENCE_FILE
from explorer.search.space import cohort_fc_mean


def cohort_reference(study_dir: str | Path, subjects: Sequence[Any]) -> np.ndarray | None:
    """The study's cohort-mean empirical FC (N, N): read from the study folder, else computed and saved.

    None when fewer than 2 subjects have an FC (nothing is saved then). Raises StudyError when the
    saved reference has another region count than ``subjects``.
    """
    path = Path(study_dir) / REFERENCE_FILE
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            fc_mean = np.asarray(z["fc_mean"], dtype=np.float64)
        n = subjects[0].n_regions if subjects else fc_mean.shape[0]
        if fc_mean.shape != (n, n):
            raise StudyError(f"{path} holds a {fc_mean.shape} cohort-mean FC but the subjects have {n} regions: "
                             "the cohort's regions changed since the study started; start a new study")
        return fc_mean
    fc_mean = cohort_fc_mean(subjects)
    if fc_mean is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.npz")   # per process: two drivers may start together
    np.savez(tmp, fc_mean=fc_mean, subjects=np.array([s.id for s in subjects if s.fc is not None]))
    tmp.replace(path)
    return fc_mean
