"""The free-parameter name grammar and what a name may stand for (no optuna, no numba at import).

Free parameters are named after what they set:

- ``P``: one global value of model parameter P;
- ``P.base`` and ``P.scale``: a regional map, ``p_i = base + scale * m_i`` with ``m`` in [0, 1]
  (``params.maps.P``: the subject's SC strength or FC gradient, or a label,value file);
- ``P[g]``: one value per group g of regions (``params.groups.P``: FC networks or a label,group file);
- ``noise_sigma``: the simulation's noise amplitude, per trial.

Config validation (:mod:`explorer.config`) and the search (:mod:`explorer.search.space`) both read them here.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

__all__ = ["DATA_VALUES", "NOISE", "split_name", "free_param", "split_noise", "default_bounds"]

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
