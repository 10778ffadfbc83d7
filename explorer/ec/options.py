"""EcOptions: how a subject's effective connectivity is fitted (a study config's ``ec`` section)."""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass
from typing import Any

from explorer.errors import OptionError

MASKS = ("sc", "sc+homotopic")
RULES = ("lbfgs", "gec")
#: models whose linearisation the EC stage knows
EC_MODELS = ("hopf",)


@dataclass(frozen=True)
class EcOptions:
    """Options of the EC stage; construction raises OptionError (section ``ec``) naming each bad field.

    tau_s: the lag of the lagged covariance in s (default 2 s); each subject uses ``round(tau_s / TR)``
        TRs, at least 1, and the model the same lag in s.
    mask: the connections that are fitted: "sc" (every SC > 0 pair) or "sc+homotopic" (also the
        left-right homotopic pairs, by region label ``*_L`` / ``*_R``).
    rule: "lbfgs" (default): L-BFGS-B on the exact gradient (adjoint) of the moment-matching loss of
        MOU-EC/GEC, W >= 0; "gec": Deco et al.'s update ``W += eta (dFC + dCOV_tau)`` with W >= 0.
    max_iter: most iterations (each one analytic evaluation, about 10 ms at 80 regions).
    patience: "gec": stop after this many iterations without a better loss; the best iterate is kept.
    eta: "gec": the step, relative to the mean fitted SC weight.
    tol: stop when the loss improves by less than this fraction over ``patience`` iterations ("gec"),
        or L-BFGS-B's relative-reduction tolerance ("lbfgs").
    bandpass: fit the moments of the BOLD preprocessed as the cohort's features say (True), or the same
        without their band-pass (False). The analytic moments are those of the unfiltered model, so a
        band-pass is a mismatch the fit absorbs into the connections: on synthetic twins the unfiltered
        fit recovers the true EC better (benchmarks/bench_ec_recovery.py); the report always judges the
        twins on the cohort's features.
    """

    __pydantic_config__ = {"extra": "forbid"}

    tau_s: float = 2.0
    mask: str = "sc"
    rule: str = "lbfgs"
    max_iter: int = 300
    patience: int = 30
    eta: float = 0.05
    tol: float = 1e-7
    bandpass: bool = True

    def __post_init__(self) -> None:
        found = self.problems()
        if found:
            raise OptionError("ec", found)

    def problems(self) -> list[tuple[str, str]]:
        """Every invalid field as ``(field, message)``."""
        out = []
        for name in ("tau_s", "eta", "tol"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not (math.isfinite(v) and v > 0):
                out.append((name, f"must be a finite number > 0, got {v!r}"))
        for name, least in (("max_iter", 1), ("patience", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < least:
                out.append((name, f"must be an integer >= {least}, got {v!r}"))
        if self.mask not in MASKS:
            out.append(("mask", f"must be one of {list(MASKS)}, got {self.mask!r}"))
        if not isinstance(self.bandpass, bool):
            out.append(("bandpass", f"must be true or false, got {self.bandpass!r}"))
        if self.rule not in RULES:
            out.append(("rule", f"must be one of {list(RULES)}, got {self.rule!r}"))
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lag_trs(self, tr_s: float) -> int:
        """The lag in TRs at TR ``tr_s`` (s): ``round(tau_s / tr_s)``, at least 1."""
        return max(1, int(round(float(self.tau_s) / float(tr_s))))
