"""Parameter space of a study config -> Optuna distributions and full parameter sets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:  # pragma: no cover
    from optuna.distributions import BaseDistribution

    from explorer.config import StudyConfig


def distributions(cfg: "StudyConfig") -> dict[str, "BaseDistribution"]:
    """Free parameters as ``FloatDistribution(low, high, log)``, in config order."""
    from optuna.distributions import FloatDistribution

    return {name: FloatDistribution(low, high, log=log) for name, (low, high, log) in cfg.free_bounds().items()}


#: fixed-parameter values that each subject's own data decides: token -> what it means
DATA_VALUES: dict[str, str] = {
    "bold_peak": "each region's peak frequency (Hz) of the subject's empirical BOLD, within "
                 "features.bandpass (0.01-0.1 Hz when there is none); Deco et al. 2017's Hopf frequencies",
}


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
    from explorer.errors import StudyError
    from explorer.features import peak_frequency

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


def trial_params(cfg: "StudyConfig", free: Mapping[str, float]) -> dict[str, Any]:
    """The parameter set a simulator receives: fixed parameters plus the trial's free values."""
    out = fixed_params(cfg)
    out.update({k: float(v) for k, v in free.items()})
    return out


def full_params(cfg: "StudyConfig", subject: Any, free: Mapping[str, float]) -> dict[str, Any]:
    """A subject's complete parameter set for the free values ``free``: fixed, data-derived, free.

    The one place that says what a twin is: the search's trials, the report's re-simulations and
    its baselines all simulate what this returns (the free values win over nothing; data-derived
    values, such as ``bold_peak`` frequencies, come from the subject's own data).
    """
    out = trial_params(cfg, free)
    out.update(subject_params(cfg, subject))
    return out
