"""Parameter space of a study: free names -> Optuna distributions -> a subject's full parameter set.

Free parameters are named after what they set:

- ``P``: one global value of model parameter P;
- ``P.base`` and ``P.scale``: a regional map, ``p_i = base + scale * m_i`` with ``m`` in [0, 1]
  (``params.maps.P``: the subject's SC strength or FC gradient, or a label,value file);
- ``P[g]``: one value per group g of regions (``params.groups.P``: FC networks or a label,group file).

:class:`SubjectSpace` is the one place that turns a trial's free values into what is simulated:
fixed numbers, data-derived values (``bold_peak``), maps and groups (:meth:`SubjectSpace.expand`), and
the FIC-derived J_I for the connectome being simulated (:meth:`SubjectSpace.full_batch`). The search's
trials, the report's re-simulations and its baselines all go through it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from explorer.cohort import maps as M
from explorer.errors import ConfigError, StudyError
from explorer.scoring.features import peak_frequency

if TYPE_CHECKING:  # pragma: no cover
    from optuna.distributions import BaseDistribution

    from explorer.config import StudyConfig

#: fixed-parameter values that each subject's own data decides: token -> what it means
DATA_VALUES: dict[str, str] = {
    "bold_peak": "each region's peak frequency (Hz) of the subject's empirical BOLD, within "
                 "features.bandpass (0.01-0.1 Hz when there is none); Deco et al. 2017's Hopf frequencies",
}

#: free names that set a simulation setting per trial instead of a model parameter
NOISE = "noise_sigma"

_NAME = re.compile(r"^(?P<p>[A-Za-z_][A-Za-z0-9_]*)(?:\.(?P<part>base|scale)|\[(?P<g>[A-Za-z0-9_\-]+)\])?$")


def split_name(name: str) -> tuple[str, str, str | None]:
    """``"w_plus.base"`` -> ("w_plus", "base", None); ``"J_I[net2]"`` -> ("J_I", "group", "net2"); ``"G"`` -> ("G", "value", None).

    Raises ValueError for anything else.
    """
    m = _NAME.match(str(name))
    if m is None:
        raise ValueError(f"{name!r} is not a free-parameter name: use P, P.base, P.scale or P[group] "
                         "(group names: letters, digits, '_' and '-')")
    if m["part"]:
        return m["p"], m["part"], None
    if m["g"]:
        return m["p"], "group", m["g"]
    return m["p"], "value", None


def free_param(model: Any, name: str) -> Any:
    """The :class:`~explorer.models.base.Param` behind free name ``name`` (``noise_sigma``: the noise amplitude).

    ``noise_sigma`` searches the simulation's noise amplitude per trial (units: ``model.noise_doc``);
    it has no default bounds. Raises ModelError for an unknown name.
    """
    from explorer.models.base import Param  # numba models: kept out of `explorer --help`

    pname = split_name(name)[0]
    if pname == NOISE:
        return Param(NOISE, 0.0, float("nan"), float("nan"), "model noise unit", model.noise_doc, 0.0,
                     per_region=False)
    return model.param(pname)


def split_noise(params: Sequence[Mapping[str, Any]], default: float) -> tuple[list[dict[str, Any]], list[float]]:
    """(parameter sets without ``noise_sigma``, each set's noise amplitude: its own or ``default``)."""
    sets, sigmas = [], []
    for p in params:
        q = dict(p)
        sigmas.append(float(q.pop(NOISE, default)))
        sets.append(q)
    return sets, sigmas


def default_bounds(name: str, low: float, high: float) -> tuple[float, float]:
    """Default search bounds of a free name from its model parameter's (low, high).

    ``P``, ``P.base`` and ``P[g]`` take (low, high); ``P.scale`` takes +-(high - low) / 2.
    """
    _, kind, _ = split_name(name)
    if kind == "scale":
        half = (high - low) / 2.0
        return -half, half
    return low, high


def distributions(cfg: "StudyConfig") -> dict[str, "BaseDistribution"]:
    """Free parameters as ``FloatDistribution(low, high, log)``, in config order."""
    from optuna.distributions import FloatDistribution

    return {name: FloatDistribution(low, high, log=log) for name, (low, high, log) in cfg.free_bounds().items()}


def fixed_params(cfg: "StudyConfig") -> dict[str, Any]:
    """Fixed parameters given as numbers (floats, or lists for per-region parameters).

    Values given as a :data:`DATA_VALUES` token are per subject: see :func:`subject_params`.
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


@dataclass(frozen=True)
class SubjectSpace:
    """How one subject's free values become the parameter set it is simulated with (picklable).

    fixed: numbers and data-derived values (per-region lists).
    maps: parameter -> its map m (N,) in [0, 1].
    groups: parameter -> (group names, each region's group index (N,)).
    limits: per-region parameter -> its hard limits (low, high), for :meth:`refusal`.
    fic_target_hz: rww_ei's FIC target rate in Hz, or None without FIC.
    """

    subject: str
    model: str
    fixed: dict[str, Any] = field(default_factory=dict)
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    groups: dict[str, tuple[tuple[str, ...], np.ndarray]] = field(default_factory=dict)
    limits: dict[str, tuple[float, float]] = field(default_factory=dict)
    fic_target_hz: float | None = None

    def expand(self, free: Mapping[str, float]) -> dict[str, Any]:
        """Fixed, data-derived, mapped, grouped and global free values (everything but FIC)."""
        out = dict(self.fixed)
        for name, v in free.items():
            p, kind, _ = split_name(name)
            if kind == "value":
                out[p] = float(v)
        for p, m in self.maps.items():
            out[p] = (float(free[f"{p}.base"]) + float(free[f"{p}.scale"]) * m).tolist()
        for p, (names, idx) in self.groups.items():
            values = np.array([float(free[f"{p}[{g}]"]) for g in names])
            out[p] = values[idx].tolist()
        return out

    def refusal(self, free: Mapping[str, float]) -> str | None:
        """Why ``free`` would put a regional value outside its hard limits (None when it would not).

        A map spans [base, base + scale] (m takes both 0 and 1), so both ends are checked.
        """
        for p in self.maps:
            lo, hi = self.limits[p]
            base, scale = float(free[f"{p}.base"]), float(free[f"{p}.scale"])
            ends = (base, base + scale)
            if min(ends) < lo or max(ends) > hi:
                return (f"refused: {p} = {p}.base + {p}.scale * map spans [{min(ends):.4g}, {max(ends):.4g}], "
                        f"outside its hard limits [{lo:g}, {hi:g}]")
        return None

    def full_batch(self, frees: Sequence[Mapping[str, float]], weights: np.ndarray) -> list[dict[str, Any] | str]:
        """Full parameter sets for a batch of free values on the connectome ``weights`` (N, N).

        With FIC, each set's J_I comes from :func:`explorer.models.fic.fic_inhibition` for that set and
        ``weights``, solved for the whole batch at once. An entry is a string (the FAIL reason)
        for a refused candidate or one whose FIC does not converge.
        """
        out: list[dict[str, Any] | str] = []
        for f in frees:
            why = self.refusal(f)
            out.append(why if why else self.expand(f))
        return with_fic(out, weights, self.model, self.fic_target_hz)

    def full(self, free: Mapping[str, float], weights: np.ndarray) -> dict[str, Any]:
        """One full parameter set (:meth:`full_batch`); StudyError naming the subject when it has none."""
        got = self.full_batch([free], weights)[0]
        if isinstance(got, str):
            raise StudyError(f"subject {self.subject}: {got}")
        return got


def with_fic(params: Sequence[dict[str, Any] | str], weights: np.ndarray, model: str,
             target_hz: float | None) -> list[dict[str, Any] | str]:
    """``params`` with FIC's per-region J_I set (strings, already failures, pass through).

    A set whose FIC does not converge becomes ``"fic did not converge: <why>"``. No-op when
    ``target_hz`` is None.
    """
    if target_hz is None:
        return list(params)
    # numba models and simulator: kept out of `explorer --help`
    from explorer.models import get_model
    from explorer.models.fic import fic_inhibition
    from explorer.sim.simulator import param_array

    todo = [i for i, p in enumerate(params) if not isinstance(p, str)]
    out = list(params)
    if not todo:
        return out
    w = np.asarray(weights, dtype=np.float64)
    p = param_array(get_model(model), split_noise([params[i] for i in todo], 0.0)[0], w.shape[0])
    res = fic_inhibition(p, w, target_hz)
    for b, i in enumerate(todo):
        if res.converged[b]:
            out[i] = {**params[i], "J_I": res.J_I[:, b].tolist()}
        else:
            out[i] = f"fic did not converge: {res.reason[b]}"
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


def group_names_of(cfg: "StudyConfig", param: str) -> list[str] | None:
    """The group names a ``params.groups`` source gives (``net1..netk``, or a file's), or None if unreadable."""
    src = cfg.params.groups[param]
    k = M.parse_group_source(src)
    if k is not None:
        return [f"net{i}" for i in range(1, k + 1)]
    if not Path(src).is_file():
        return None
    return M.table_groups(src)
