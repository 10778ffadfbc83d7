"""One unit of the EC stage: what an actor is sent to fit one subject's EC, and its key.

:class:`EcRequest` carries everything :func:`run_request` needs (no study, store or tracker), so the
same unit runs on a Ray actor, in a test or in a notebook. :func:`ec_key` names what the result depends
on: a stored EC with the same key is not fitted again; one whose key changed (new best global
parameters after ``explorer extend``, other options) is.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

import numpy as np

from explorer.ec.fit import EcFit, fit_ec
from explorer.ec.linear import Spectral, spectral
from explorer.ec.options import EcOptions
from explorer.ec.targets import connection_mask, empirical_targets
from explorer.scoring.features import bandpass_sos
from explorer.scoring.options import FeatureOptions


@dataclass(frozen=True)
class EcRequest:
    """The inputs of one subject's EC fit.

    subject: the subject id; weights: (N, N) the simulator's SC; labels: N region labels;
    bold: (T, N) the subject's empirical BOLD; tr_s: its TR (s); features: the cohort's feature options
    (dict of :class:`~explorer.scoring.options.FeatureOptions`); params: the global twin's parameters
    (``G``, ``a``, ``f``: floats or per-region lists); best_trial: the search trial they come from;
    options: :class:`EcOptions` as a dict.
    """

    subject: str
    weights: np.ndarray
    labels: list[str]
    bold: np.ndarray
    tr_s: float
    features: dict[str, Any]
    params: dict[str, Any]
    best_trial: int
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return ec_key(self)


def _plain(v: Any) -> Any:
    if isinstance(v, (list, tuple, np.ndarray)):
        return [round(float(x), 12) for x in np.ravel(v)]
    return round(float(v), 12) if isinstance(v, (int, float, np.floating, np.integer)) else v


#: the fitting method's version, part of every key: a stored EC fitted by another method is fitted again
METHOD = "hopf-linear/2 (band-passed moments)"


def ec_key(req: EcRequest) -> str:
    """A stable id of an EC fit's inputs (SC, BOLD, TR, features, global parameters, options, method)."""
    h = hashlib.sha1(np.ascontiguousarray(req.weights, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(req.bold, dtype=np.float64).tobytes())
    doc = {"method": METHOD, "tr_s": _plain(req.tr_s), "features": req.features, "options": req.options,
           "params": {k: _plain(v) for k, v in sorted(req.params.items())}, "labels": list(req.labels)}
    h.update(json.dumps(doc, sort_keys=True, default=str).encode())
    return h.hexdigest()[:20]


def global_params(params: Mapping[str, Any]) -> tuple[float, Any, Any]:
    """(G, a, f) of a Hopf parameter set: G a float, a and f floats or (N,) arrays."""
    def arr(v: Any) -> Any:
        return np.asarray(v, dtype=np.float64) if isinstance(v, (list, tuple, np.ndarray)) else float(v)
    return float(params["G"]), arr(params["a"]), arr(params["f"])


def run_request(req: EcRequest) -> EcFit:
    """Fit the EC of ``req``'s subject (the work of one unit of the EC stage)."""
    opts = EcOptions(**req.options)
    features = target_features(req.features, opts)
    target = empirical_targets(np.asarray(req.bold, dtype=np.float64), req.tr_s, features, opts.lag_trs(req.tr_s))
    g, a, f = global_params(req.params)
    mask = connection_mask(req.weights, req.labels, opts.mask)
    return fit_ec(req.weights, mask, g, a, f, target, req.tr_s, opts, model_filter(features, req.tr_s, opts))


def target_features(features: Mapping[str, Any], opts: EcOptions) -> FeatureOptions:
    """The preprocessing of the EC's targets: the cohort's features, without their band-pass when
    ``ec.bandpass`` is false."""
    out = FeatureOptions.from_dict(dict(features))
    return out if opts.bandpass else replace(out, bandpass=None)


def model_filter(features: FeatureOptions, tr_s: float, opts: EcOptions) -> Spectral | None:
    """The band-pass of ``features`` as the model's analytic moments apply it (None without one)."""
    if features.bandpass is None:
        return None
    tau = opts.lag_trs(tr_s) * float(tr_s)
    return spectral(bandpass_sos(float(tr_s), features), float(tr_s), tau)
