"""Feature options: how BOLD becomes FC/FCD, defined once for the config, the cohort loader and scoring."""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

from explorer.errors import ConfigError, OptionError

__all__ = ["FeatureOptions", "min_filter_length"]


@dataclass(frozen=True)
class FeatureOptions:
    """How BOLD becomes FC/FCD, for the empirical and the simulated side alike.

    detrend: remove a linear trend per region (scipy.signal.detrend).
    bandpass: (low, high) in Hz for a zero-phase Butterworth band-pass (sosfiltfilt), or None;
        low = 0 makes it a low-pass at high.
    filter_order: Butterworth order of the band-pass.
    zscore: z-score each region over time.
    fisher_z: FC as Fisher z = arctanh(r) (diagonal set to 0) instead of Pearson r.
    fcd_window, fcd_step: FCD sliding window length and step, in TRs.
    discard_s: leading seconds of *simulated* BOLD dropped before features (initial transient).

    A study config's ``cohort.features`` is a FeatureOptions (validated by pydantic against these
    field types, then by :meth:`problems`).
    """

    __pydantic_config__ = {"extra": "forbid"}  # unknown keys of a study config's `features` are errors

    detrend: bool = True
    bandpass: tuple[float, float] | None = (0.01, 0.1)
    zscore: bool = True
    fisher_z: bool = False
    fcd_window: int = 30
    fcd_step: int = 3
    discard_s: float = 0.0
    filter_order: int = 2

    def __post_init__(self) -> None:
        found = self.problems()
        if found:
            raise OptionError("features", found)
        if self.bandpass is not None:
            object.__setattr__(self, "bandpass", tuple(float(x) for x in self.bandpass))
        for name in ("fcd_window", "fcd_step", "filter_order"):
            object.__setattr__(self, name, int(getattr(self, name)))

    def problems(self) -> list[tuple[str, str]]:
        """Every invalid option as ``(field, message)``; construction raises OptionError for them."""
        out = []
        bp = self.bandpass
        if bp is not None:
            try:
                low, high = (float(x) for x in bp)
                ok = 0.0 <= low < high
            except (TypeError, ValueError):
                ok = False
            if not ok:
                out.append(("bandpass", f"must be [low_hz, high_hz] with 0 <= low < high, or null, got {bp!r}"))
        for name, least, unit in (("fcd_window", 2, " TRs"), ("fcd_step", 1, " TRs"), ("filter_order", 1, "")):
            v = getattr(self, name)
            if isinstance(v, bool) or not (isinstance(v, numbers.Real) and float(v).is_integer() and v >= least):
                out.append((name, f"must be an integer >= {least}{unit}, got {v!r}"))
        if not (isinstance(self.discard_s, numbers.Real) and self.discard_s >= 0):
            out.append(("discard_s", f"must be >= 0 s, got {self.discard_s!r}"))
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON/YAML-safe) of every option."""
        d = asdict(self)
        if d["bandpass"] is not None:
            d["bandpass"] = list(d["bandpass"])
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "FeatureOptions":
        """Inverse of :meth:`to_dict`; unknown keys raise ConfigError naming them."""
        if d is None:
            return cls()
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown feature option(s) {unknown}; valid: {sorted(known)}")
        kw = dict(d)
        if kw.get("bandpass") is not None:
            kw["bandpass"] = tuple(kw["bandpass"])
        return cls(**kw)


def min_filter_length(opts: FeatureOptions) -> int:
    """Shortest series sosfiltfilt accepts for this filter (its default padlen + 1)."""
    # butter band-pass of order n gives n second-order sections; padlen = 3 * (2 * n_sections + 1 - zeros)
    n_sections = int(opts.filter_order)
    return 3 * (2 * n_sections + 1) + 1

