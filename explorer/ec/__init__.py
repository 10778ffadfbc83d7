"""The EC stage: per-subject effective connectivity fitted analytically (linearised Hopf network).

numpy/scipy only (no ray, optuna, mlflow or zarr). :func:`fit_ec` fits one subject;
:mod:`explorer.ec.linear` holds the covariances and the gradient.
"""

from explorer.ec.fit import DIVERGED, NO_IMPROVEMENT, OK, TRACE_COLUMNS, UNSTABLE_START, EcFit, fit_ec
from explorer.ec.linear import Moments, empirical_moments, hopf_jacobian, moments
from explorer.ec.options import EC_MODELS, EcOptions
from explorer.ec.targets import connection_mask, empirical_targets, homotopic_pairs

__all__ = ["DIVERGED", "EC_MODELS", "EcFit", "EcOptions", "Moments", "NO_IMPROVEMENT", "OK", "TRACE_COLUMNS",
           "UNSTABLE_START", "connection_mask", "empirical_moments", "empirical_targets", "fit_ec",
           "homotopic_pairs", "hopf_jacobian", "moments"]
