"""Subject, CohortOptions and Cohort: the validated input of a study."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from explorer.errors import CohortError, ConfigError, OptionError
from explorer.scoring.options import FeatureOptions

NORMALISATIONS = ("max", "none", "log1p+max")


@dataclass
class Subject:
    """One subject, after region selection, normalisation and validation.

    weights: (N, N) structural connectivity, as normalised by the cohort options.
    lengths: (N, N) tract lengths in mm.
    labels: N region labels.
    bold: (T, N) empirical BOLD (time-major) or None when only an FC was given.
    tr_s: BOLD sampling period in s (None without BOLD).
    fc: (N, N) empirical FC (from bold with the cohort's FeatureOptions, or as given), or None for a
        structural-only subject (which cannot be fitted).
    fcd: (W, W) empirical FCD, or None (no BOLD, or BOLD shorter than the FCD window):
        FCD-based scores are then unavailable.
    phenotype: column -> value (float or str); synthetic twins hold ``true_<param>`` here.
    sources: what each array came from (``weights``, ``lengths``, ``bold``, ``labels``, ...).
    participant: the person this subject's data belongs to (defaults to ``id``). The unit that is
        fitted is ``id``: one twin per (participant, session).
    session: the session label (a manifest's ``session`` column, or "1".."k" with
        ``cohort.split: k``), or None for a single-session subject. Such subjects have id
        ``f"{participant}_ses-{session}"``.
    """

    id: str
    weights: np.ndarray
    lengths: np.ndarray
    labels: list[str]
    bold: np.ndarray | None = None
    tr_s: float | None = None
    fc: np.ndarray | None = None
    fcd: np.ndarray | None = None
    phenotype: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    participant: str = ""
    session: str | None = None

    def __post_init__(self) -> None:
        if not self.participant:
            self.participant = self.id
        if self.session is not None:
            self.session = str(self.session)

    @property
    def n_regions(self) -> int:
        return int(self.weights.shape[0])

    @property
    def n_time(self) -> int | None:
        return None if self.bold is None else int(self.bold.shape[0])

    @property
    def sc_density(self) -> float:
        """Fraction of non-zero off-diagonal weights."""
        n = self.n_regions
        off = ~np.eye(n, dtype=bool)
        return float(np.count_nonzero(self.weights[off]) / max(1, n * (n - 1)))

    @property
    def mean_fc(self) -> float | None:
        """Mean of the upper triangle of the empirical FC (None without FC)."""
        if self.fc is None:
            return None
        return float(np.nanmean(self.fc[np.triu_indices(self.n_regions, k=1)]))

    def __repr__(self) -> str:
        t = "no BOLD" if self.bold is None else f"T={self.n_time} TR={self.tr_s}s"
        ses = "" if self.session is None else f", participant={self.participant!r}, session={self.session!r}"
        return f"Subject({self.id!r}{ses}, N={self.n_regions}, {t})"


@dataclass
class CohortOptions:
    """How subjects are loaded; all recorded with the study (see :meth:`to_dict`).

    drop: regions to remove, as 0-based indices of the files or as labels. None = the source's
        default (the demo drops gw's 14 subcortical regions; other sources drop nothing).
        The loaded cohort's options hold the resolved list.
    normalise: SC weights normalisation: "max" (divide by the largest weight), "none", or
        "log1p+max" (log(1 + w), then divide by the largest).
    zero_diagonal: set SC self-connections to 0 (before normalising).
    symmetrise: replace weights and lengths by (A + A.T) / 2 (before normalising). Off by default.
    tr_s: BOLD TR in s for formats that store none (a manifest's tr_s column takes precedence).
    skip_bad: load the good subjects and record the bad ones in ``Cohort.skipped`` instead of
        refusing the whole cohort.
    features: how the empirical FC/FCD are computed (same as for the simulations).
    split: k >= 2 cuts every subject's BOLD into k equal contiguous parts (remainder TRs at the end
        dropped), each its own subject ``f"{id}_ses-{j}"`` (j = 1..k, participant = id, session =
        str(j)) with its own FC/FCD: test-retest from one scan. 1 (default) = no split. Refused for
        FC-only subjects and for a manifest that already has a ``session`` column.

    A study config's ``cohort`` section is these options plus ``source`` and ``subjects``
    (:class:`explorer.config.CohortConfig`, generated from this class; ``cfg.cohort.options``).
    """

    drop: list[int | str] | None = None
    normalise: str = "max"
    zero_diagonal: bool = True
    symmetrise: bool = False
    tr_s: float | None = None
    skip_bad: bool = False
    features: FeatureOptions = field(default_factory=FeatureOptions)
    split: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.drop, (str, int, np.integer)) and not isinstance(self.drop, bool):
            self.drop = [self.drop]
        if isinstance(self.features, Mapping):
            try:
                self.features = FeatureOptions.from_dict(self.features)
            except OptionError as exc:
                raise OptionError("cohort", [(f"features.{f}", m) for f, m in exc.problems]) from None
        found = self.problems()
        if found:
            raise OptionError("cohort", found)
        self.split = int(self.split)
        if self.drop is not None:
            self.drop = [int(d) if isinstance(d, np.integer) else d for d in self.drop]

    def problems(self) -> list[tuple[str, str]]:
        """Every invalid option as ``(field, message)``; construction raises OptionError for them."""
        out = []
        if isinstance(self.split, bool) or not isinstance(self.split, (int, np.integer)) or self.split < 1:
            out.append(("split", f"must be an integer >= 1 (1 = no split), got {self.split!r}"))
        if self.normalise not in NORMALISATIONS:
            out.append(("normalise", f"must be one of {list(NORMALISATIONS)}, got {self.normalise!r}"))
        if self.tr_s is not None:
            try:
                ok = math.isfinite(float(self.tr_s)) and float(self.tr_s) > 0
            except (TypeError, ValueError):
                ok = False
            if not ok:
                out.append(("tr_s", f"must be > 0 s, or null, got {self.tr_s!r}"))
        if self.drop is not None:
            items = self.drop if isinstance(self.drop, (list, tuple)) else [self.drop]
            bad = [d for d in items if not isinstance(d, (int, np.integer, str)) or isinstance(d, bool)]
            if bad or not isinstance(self.drop, (list, tuple)):
                out.append(("drop", f"takes a list of region indices (int) or labels (str), got {self.drop!r}"))
        if not isinstance(self.features, FeatureOptions):
            out.append(("features", f"must be FeatureOptions or a mapping of them, got {self.features!r}"))
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON/YAML-safe) of every option."""
        return {
            "drop": None if self.drop is None else list(self.drop),
            "normalise": self.normalise,
            "zero_diagonal": self.zero_diagonal,
            "symmetrise": self.symmetrise,
            "tr_s": self.tr_s,
            "skip_bad": self.skip_bad,
            "features": self.features.to_dict(),
            "split": self.split,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "CohortOptions":
        """Inverse of :meth:`to_dict`; unknown keys raise ConfigError naming them."""
        if d is None:
            return cls()
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown cohort option(s) {unknown}; valid: {sorted(known)}")
        return cls(**d)  # a features mapping becomes FeatureOptions in __post_init__

    def replace(self, **changes: Any) -> "CohortOptions":
        return replace(self, **changes)


class Cohort:
    """The validated subjects of a study, in load order.

    subjects: the loaded subjects; options: the resolved options they were loaded with;
    skipped: id -> problems of each subject left out (only with ``skip_bad``);
    warnings: messages that did not stop loading (e.g. a disconnected region);
    source: what was loaded ("demo", a folder, a manifest path, ...).
    """

    def __init__(
        self,
        subjects: Sequence[Subject],
        options: CohortOptions,
        skipped: Mapping[str, list[str]] | None = None,
        warnings: Sequence[str] | None = None,
        source: str = "",
    ) -> None:
        self.subjects: list[Subject] = list(subjects)
        self.options = options
        self.skipped: dict[str, list[str]] = dict(skipped or {})
        self.warnings: list[str] = list(warnings or [])
        self.source = str(source)
        self._by_id = {s.id: s for s in self.subjects}
        if len(self._by_id) != len(self.subjects):
            raise CohortError(f"duplicate subject ids in cohort {self.source!r}")

    @property
    def ids(self) -> list[str]:
        return [s.id for s in self.subjects]

    def __len__(self) -> int:
        return len(self.subjects)

    def __iter__(self) -> Iterator[Subject]:
        return iter(self.subjects)

    def __contains__(self, subject_id: object) -> bool:
        return subject_id in self._by_id

    def __getitem__(self, subject_id: str | int) -> Subject:
        if isinstance(subject_id, int):
            return self.subjects[subject_id]
        try:
            return self._by_id[subject_id]
        except KeyError:
            raise KeyError(f"no subject {subject_id!r} in cohort {self.source!r}; ids: {self.ids}") from None

    @property
    def has_sessions(self) -> bool:
        """True when some participant has >= 2 sessions (test-retest is possible)."""
        return bool(self.sessions())

    def sessions(self) -> dict[str, dict[str, str]]:
        """participant -> {session: subject id}, in load order, for participants with >= 2 sessions."""
        by: dict[str, dict[str, str]] = {}
        for s in self.subjects:
            if s.session is not None:
                by.setdefault(s.participant, {})[s.session] = s.id
        return {p: ses for p, ses in by.items() if len(ses) >= 2}

    def subset(self, ids: Sequence[str]) -> "Cohort":
        """A cohort of the given subjects, in the given order; unknown ids raise CohortError."""
        missing = [i for i in ids if i not in self._by_id]
        if missing:
            raise CohortError(f"subjects {missing} are not in cohort {self.source!r}; ids: {self.ids}")
        return Cohort([self._by_id[i] for i in ids], self.options, self.skipped, self.warnings, self.source)

    def record(self) -> dict[str, Any]:
        """Provenance of the cohort (JSON/YAML-safe): source, options, per-subject sources, skips."""
        return {
            "source": self.source,
            "options": self.options.to_dict(),
            "subjects": {
                s.id: {
                    "n_regions": s.n_regions,
                    "n_time": s.n_time,
                    "tr_s": s.tr_s,
                    "participant": s.participant,
                    "session": s.session,
                    "sources": dict(s.sources),
                }
                for s in self.subjects
            },
            "skipped": {k: list(v) for k, v in self.skipped.items()},
            "warnings": list(self.warnings),
        }

    def __repr__(self) -> str:
        return f"Cohort({self.source!r}, {len(self)} subjects, skipped={len(self.skipped)})"
