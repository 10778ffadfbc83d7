"""RunSettings: how every simulation runs (step, length, delays, noise, BOLD), its defaults and its check.

    from explorer.sim import RunSettings, simulate
    s = RunSettings(duration_s=60.0, dt_ms=0.5)     # OptionError (a ConfigError) naming each bad field
    s.check(tr_s=0.72)                              # dt must also divide the subject's TR
    ds = simulate("rww_ei", W, L, {"G": 0.5}, settings=s, bold_tr_s=2.0)

This is the one definition: the study config's ``simulation`` section is a RunSettings, and
:func:`explorer.sim.simulate` takes its keyword defaults from ``RunSettings()`` and checks its
arguments with :meth:`RunSettings.problems`. Pure Python (no numpy), cheap to import.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields
from typing import Any, Sequence

from explorer.errors import ConfigError, OptionError

INTEGRATORS = ("euler", "heun")
BOLD_MONITORS = ("balloon", "sample")
DTYPES = ("float64", "float32")


@dataclass(frozen=True)
class RunSettings:
    """Run settings of every simulation of a study; construction runs :meth:`problems` (TR unknown).

    duration_s: recorded seconds of simulated time, after the transient (> 0).
    dt_ms: integration step in ms (> 0); duration_s, transient_s and the BOLD TR must be whole
        multiples of it.
    transient_s: seconds simulated first and discarded (>= 0).
    velocity: conduction velocity in m/s (= mm/ms; > 0, ``inf`` = no delays).
    noise_sigma: additive noise amplitude (>= 0), in the model's unit (``Model.noise_doc``).
    bold_tr_s: simulated BOLD TR in s, or None = the cohort's (each subject's own) TR.
    integrator: "euler" (Euler-Maruyama) or "heun" (stochastic Heun).
    dtype: "float64" or "float32": precision of the simulation (state, equations, noise, delay buffer,
        coupling); the BOLD and temporal-average monitors are float64 either way.
    bold_monitor: "balloon" (Balloon-Windkessel) or "sample" (the model's BOLD state every TR).
    repeats: noise seeds per trial (>= 1); the runner averages their scores (not a simulate() argument).
    """

    __pydantic_config__ = {"extra": "forbid"}  # unknown keys of a study config's `simulation` are errors

    duration_s: float = 300.0
    dt_ms: float = 0.1
    transient_s: float = 20.0
    velocity: float = 20.0
    noise_sigma: float = 0.01
    bold_tr_s: float | None = None
    integrator: str = "euler"
    dtype: str = "float64"
    bold_monitor: str = "balloon"
    repeats: int = 1

    def __post_init__(self) -> None:
        self.check()

    def problems(self, tr_s: float | None = None, tr_what: str | None = None) -> list[tuple[str, str]]:
        """Every problem as ``(field, message)``; empty when the settings are usable.

        The BOLD TR is ``bold_tr_s``, else ``tr_s`` (the subject's, when known), described as
        ``tr_what`` in messages (default "bold_tr_s" or "the TR"). Checked: dt_ms positive and
        finite; duration_s > 0, transient_s >= 0 and the TR whole multiples of dt_ms (the message
        lists dt values that divide them all); the TR not longer than duration_s; velocity > 0;
        noise_sigma finite >= 0; integrator, dtype and bold_monitor among their values; repeats an
        integer >= 1.
        """
        out: list[tuple[str, str]] = []
        dt = _number(self.dt_ms)
        if dt is None or not (math.isfinite(dt) and dt > 0):
            out.append(("dt_ms", f"must be a positive number of ms, got {self.dt_ms!r}"))
            dt = None
        dur = _number(self.duration_s)
        if dur is None or not (math.isfinite(dur) and dur > 0):
            out.append(("duration_s", f"must be a finite number of s > 0, got {self.duration_s!r}"))
            dur = None
        trans = _number(self.transient_s)
        if trans is None or not (math.isfinite(trans) and trans >= 0):
            out.append(("transient_s", f"must be a finite number of s >= 0, got {self.transient_s!r}"))
            trans = None
        vel = _number(self.velocity)
        if vel is None or not vel > 0:
            out.append(("velocity", f"must be > 0 m/s (inf = no delays), got {self.velocity!r}"))
        noise = _number(self.noise_sigma)
        if noise is None or not (math.isfinite(noise) and noise >= 0):
            out.append(("noise_sigma", f"must be a finite number >= 0, got {self.noise_sigma!r}"))
        for name, valid in (("integrator", INTEGRATORS), ("dtype", DTYPES), ("bold_monitor", BOLD_MONITORS)):
            if getattr(self, name) not in valid:
                out.append((name, f"must be one of {list(valid)}, got {getattr(self, name)!r}"))
        if isinstance(self.repeats, bool) or not isinstance(self.repeats, numbers.Integral) or self.repeats < 1:
            out.append(("repeats", f"must be an integer >= 1, got {self.repeats!r}"))

        tr_field = "bold_tr_s" if self.bold_tr_s is not None else "duration_s"
        tr = None
        if self.bold_tr_s is not None:
            tr = _number(self.bold_tr_s)
            if tr is None or not (math.isfinite(tr) and tr > 0):
                out.append(("bold_tr_s", f"must be a finite number of s > 0, or null (the cohort's TR), "
                                         f"got {self.bold_tr_s!r}"))
                tr = None
        elif tr_s is not None:
            tr = _number(tr_s)
            tr = tr if tr is not None and math.isfinite(tr) and tr > 0 else None
        what = tr_what or ("bold_tr_s" if self.bold_tr_s is not None else "the TR")
        if tr is not None and dur is not None and tr > dur:
            out.append((tr_field, f"{what} ({tr:g} s) is longer than duration_s ({dur:g} s): no BOLD sample "
                                  "would be recorded"))
        if dt is not None:
            spans = [(f"duration_s ({dur:g} s)", dur)] if dur is not None else []
            spans += [(f"transient_s ({trans:g} s)", trans)] if trans else []
            spans += [(f"{what} ({tr:g} s)", tr)] if tr is not None else []
            bad = [name for name, s in spans if not _divides(dt, s)]
            if bad:
                good = ", ".join(f"{d:g}" for d in dt_divisors([s for _, s in spans], dt))
                verb = "is not a whole multiple" if len(bad) == 1 else "are not whole multiples"
                out.append(("dt_ms", f"{_and(bad)} {verb} of dt = {dt:g} ms; "
                            f"dt values that divide {_and([n for n, _ in spans])}: "
                            + (f"{good} ms" if good else "none (use lengths in whole microseconds)")))
        return out

    def check(self, tr_s: float | None = None, tr_what: str | None = None) -> None:
        """OptionError (a ConfigError) listing every :meth:`problems`, each with its field."""
        found = self.problems(tr_s, tr_what)
        if found:
            raise OptionError("simulation", found)

    def simulate_kwargs(self, tr_s: float | None = None) -> dict[str, Any]:
        """Keyword arguments for :func:`explorer.sim.simulate` (all but model, connectome, params, seed).

        ``tr_s``: the subject's BOLD TR in s, used when ``bold_tr_s`` is None (the default).
        """
        tr = self.bold_tr_s if self.bold_tr_s is not None else tr_s
        if tr is None:
            raise ConfigError("field 'simulation.bold_tr_s' is null (use the cohort's TR) but the subject has "
                              "no TR: give cohort.tr_s or simulation.bold_tr_s")
        kw = {f.name: getattr(self, f.name) for f in fields(self) if f.name in SIMULATE_ARGS}
        return kw | {"bold_tr_s": float(tr)}


#: the RunSettings fields that are simulate() arguments (all but ``repeats``)
SIMULATE_ARGS = ("duration_s", "dt_ms", "transient_s", "velocity", "noise_sigma", "bold_tr_s", "integrator",
                 "dtype", "bold_monitor")


def dt_divisors(span_s: float | Sequence[float], dt_ms: float, k: int = 6) -> list[float]:
    """Up to ``k`` integration steps (ms), nearest to ``dt_ms``, that divide every span (s) exactly.

    Spans are counted in whole microseconds; the result is sorted ascending (empty if none).
    """
    spans = [span_s] if isinstance(span_s, (int, float)) else list(span_s)
    g = 0
    for s in spans:
        g = math.gcd(g, round(float(s) * 1e6))
    if g < 1:
        return []
    divs = set()
    for d in range(1, math.isqrt(g) + 1):
        if g % d == 0:
            divs.update((d, g // d))
    cands = [d / 1000.0 for d in divs]
    return sorted(sorted(cands, key=lambda d: abs(math.log(d / dt_ms)))[:k])


def _number(x: Any) -> float | None:
    """``x`` as a float, or None for a non-number (bools and strings included)."""
    if isinstance(x, (bool, str, bytes)) or x is None:
        return None
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _divides(dt_ms: float, span_s: float) -> bool:
    n = span_s * 1000.0 / dt_ms
    return round(n) >= 1 and abs(n - round(n)) <= 1e-6 * max(1.0, n)
