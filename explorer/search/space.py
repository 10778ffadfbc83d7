"""Parameter space of a study: free names -> Optuna distributions, and each subject's
:class:`~explorer.params.subject.SubjectSpace` built from the cohort.

The names themselves (``P``, ``P.base``/``P.scale``, ``P[g]``, ``noise_sigma``) are the grammar of
:mod:`explorer.params.names`; a trial's full parameter set comes from :class:`~explorer.params.subject.SubjectSpace`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from explorer.cohort import maps as M
from explorer.errors import ConfigError, StudyError
from explorer.params.subject import SubjectSpace
from explorer.scoring.features import peak_frequency

if TYPE_CHECKING:  # pragma: no cover
    from optuna.distributions import BaseDistribution

    from explorer.config import StudyConfig


def distributions(cfg: "StudyConfig") -> dict[str, "BaseDistribution"]:
    """Free parameters as ``FloatDistribution(low, high, log)``, in config order."""
    from optuna.distributions import FloatDistribution

    return {name: FloatDistribution(low, high, log=log) for name, (low, high, log) in cfg.free_bounds().items()}


def fixed_params(cfg: "StudyConfig") -> dict[str, Any]:
    """Fixed parameters given as numbers (floats, or lists for per-region parameters).

    Values given as a :data:`~explorer.params.names.DATA_VALUES` token are per subject: see :func:`subject_params`.
    """
    return {k: (list(v) if isinstance(v, list) else float(v)) for k, v in cfg.params.fixed.items()
            if not isinstance(v, str)}


def subject_params(cfg: "StudyConfig", subject: Any) -> dict[str, Any]:
    """The fixed parameters that ``subject``'s own data decides (``params.fixed: {f: bold_peak}``).

    Raises StudyError naming the subject when its data cannot give the value (no BOLD time series).
    """
    out: dict[str, Any] = {}
    for name, value in cfg.params.fixed.items():
        if value == "bold_peak":
            if subject.bold is None:
                raise StudyError(f"subject {subject.id}: params.fixed.{name} is 'bold_peak' but the subject has "
                                 "no BOLD time series (FC only): give numbers instead, or drop the subject")
            band = cfg.cohort.features.bandpass or (0.01, 0.1)
            band = (max(band[0], 0.0), band[1])
            out[name] = peak_frequency(subject.bold, float(subject.tr_s), band).tolist()
    return out


# -- building the spaces of a cohort -------------------------------------------------------------
def cohort_fc_mean(subjects: Sequence[Any]) -> np.ndarray | None:
    """The cohort-mean empirical FC (N, N), or None with fewer than 2 subjects with an FC."""
    fcs = [np.asarray(s.fc, dtype=np.float64) for s in subjects if s.fc is not None]
    return np.mean(fcs, axis=0) if len(fcs) >= 2 else None


def subject_spaces(cfg: "StudyConfig", subjects: Sequence[Any], fc_mean: np.ndarray | None = None
                   ) -> dict[str, SubjectSpace]:
    """Every subject's :class:`SubjectSpace`.

    ``fc_mean``: the study's cohort-mean empirical FC (see :func:`explorer.runner.reference`), from
    which ``fc_networks<k>`` groups are clustered, so that all subjects share group names and regions.
    Raises ConfigError naming the map/group file or source at fault.
    """
    from explorer.models import get_model  # numba models: kept out of `explorer --help`

    model = get_model(cfg.model)
    fixed = fixed_params(cfg)
    shared_groups: dict[str, tuple[tuple[str, ...], np.ndarray]] = {}
    shared_maps: dict[str, np.ndarray] = {}
    labels = list(subjects[0].labels) if subjects else []
    for p, src in cfg.params.groups.items():
        k = M.parse_group_source(src)
        if k is not None:
            if fc_mean is None:
                raise ConfigError(f"field 'params.groups.{p}': {src} clusters the cohort-mean empirical FC, "
                                  "which needs at least 2 subjects with BOLD or FC")
            names_per_region = M.fc_networks(fc_mean, k)
        else:
            names_per_region = M.groups_from_file(src, labels)
        shared_groups[p] = _group_index(names_per_region)
    for p, src in cfg.params.maps.items():
        if src == "fc_gradient_cohort":
            if fc_mean is None:
                raise ConfigError(f"field 'params.maps.{p}': fc_gradient_cohort needs the cohort-mean empirical FC "
                                  "of at least 2 subjects with BOLD or FC")
            shared_maps[p] = M.fc_gradient(fc_mean, what="the cohort-mean FC")
        elif src not in M.MAP_SOURCES:
            shared_maps[p] = M.map_from_file(src, labels)
    limits = {p: (model.param(p).hard_low, model.param(p).hard_high) for p in cfg.params.maps}
    out = {}
    for s in subjects:
        if list(s.labels) != labels:
            raise ConfigError(f"subject {s.id}: its region labels differ from {subjects[0].id}'s; regional maps and "
                              "groups need one atlas across the cohort")
        maps = {}
        for p, src in cfg.params.maps.items():
            if src == "sc_strength":
                maps[p] = M.sc_strength(s.weights, what=f"subject {s.id}'s SC")
            elif src == "fc_gradient":
                if s.fc is None:
                    raise ConfigError(f"subject {s.id}: params.maps.{p} is 'fc_gradient' but the subject has no FC")
                maps[p] = M.fc_gradient(s.fc, what=f"subject {s.id}'s FC")
            else:
                maps[p] = shared_maps[p]
        out[s.id] = SubjectSpace(subject=s.id, model=cfg.model, fixed={**fixed, **subject_params(cfg, s)},
                                 maps=maps, groups=dict(shared_groups), limits=limits,
                                 fic_target_hz=cfg.params.fic_target_hz if cfg.params.fic else None)
    return out


def _group_index(names_per_region: Sequence[str]) -> tuple[tuple[str, ...], np.ndarray]:
    names = tuple(dict.fromkeys(str(g) for g in names_per_region))
    pos = {g: i for i, g in enumerate(names)}
    return names, np.array([pos[str(g)] for g in names_per_region], dtype=np.int64)
