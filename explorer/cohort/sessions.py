"""Sessions from one scan: cut every subject's BOLD into k parts (``cohort.split: k``) for test-retest."""

from __future__ import annotations

import logging
from dataclasses import replace

from explorer.errors import CohortError, ConfigError
from explorer.features import FeatureOptions, empirical_features, min_filter_length

from .types import Cohort, Subject

log = logging.getLogger("explorer.cohort")


def session_id(participant: str, session: str) -> str:
    """The id of one session of a participant: ``f"{participant}_ses-{session}"``."""
    return f"{participant}_ses-{session}"


def min_part_length(features: FeatureOptions) -> int:
    """Fewest TRs a BOLD part needs: the FCD window, and the band-pass filter's minimum length
    (the same two limits the loader applies to a whole BOLD)."""
    need = int(features.fcd_window)
    if features.bandpass is not None:
        need = max(need, min_filter_length(features))
    return need


def split_sessions(cohort: Cohort, k: int, features: FeatureOptions | None = None) -> Cohort:
    """A new cohort where every subject's BOLD is cut into ``k`` equal contiguous parts.

    Part j (1..k) of subject ``s`` covers TRs ``[(j-1) * n, j * n)`` with ``n = T // k`` (the
    ``T % k`` remainder TRs at the end are dropped) and becomes the subject
    ``f"{s.id}_ses-{j}"`` with participant ``s.id``, session ``str(j)``, the same SC, lengths,
    labels, TR and phenotype, and its own FC/FCD from :func:`explorer.features.empirical_features`
    with ``features`` (default: the cohort's). ``k == 1`` returns the cohort unchanged.

    Raises CohortError when the cohort already has sessions (a manifest ``session`` column: use
    one or the other), and, listing every subject at fault, when a subject has no BOLD (FC only or
    structural only) or its parts would be shorter than the FCD window or the band-pass filter
    allows. With ``cohort.options.skip_bad`` such subjects are moved to ``skipped`` instead.
    The input cohort is not modified.
    """
    k = int(k)
    if k < 1:
        raise ConfigError(f"cohort.split must be an integer >= 1, got {k}")
    if k == 1:
        return cohort
    with_sessions = [s.id for s in cohort if s.session is not None]
    if with_sessions:
        raise CohortError(
            f"cohort {cohort.source!r}: cohort.split: {k} but the subjects already have sessions "
            f"({with_sessions[:5]}{' ...' if len(with_sessions) > 5 else ''}, e.g. a manifest session column): "
            "use one or the other (set split: 1, or drop the session column)"
        )
    fopts = features if features is not None else cohort.options.features
    need = min_part_length(fopts)
    subjects: list[Subject] = []
    problems: dict[str, list[str]] = {}
    for s in cohort:
        if s.bold is None:
            what = "an FC only" if s.fc is not None else "no BOLD and no FC"
            problems[s.id] = [f"subject {s.id}: cohort.split: {k} needs BOLD to cut into sessions, but the subject "
                              f"has {what}: set split: 1 (or give its BOLD)"]
            continue
        if s.tr_s is None:
            problems[s.id] = [f"subject {s.id}: cohort.split: {k}: the subject's BOLD has no TR: set cohort.tr_s"]
            continue
        t = int(s.bold.shape[0])
        n = t // k
        if n < need:
            why = (f"the FCD window of {fopts.fcd_window} TRs" if n < fopts.fcd_window
                   else f"the band-pass filter (needs {need})")
            problems[s.id] = [f"subject {s.id}: cohort.split: {k} cuts its {t} TRs into parts of {n} TRs, shorter "
                              f"than {why}: use a smaller split (at most {max(1, t // need)} here)"]
            continue
        parts: list[Subject] = []
        for j in range(1, k + 1):
            a, b = (j - 1) * n, j * n
            bold = s.bold[a:b].copy()
            try:
                fc, fcd = empirical_features(bold, float(s.tr_s), fopts)  # type: ignore[arg-type]
            except (CohortError, ConfigError, ValueError) as exc:
                problems[s.id] = [f"subject {s.id}: session {j} (TRs {a}..{b - 1}, {n} TRs) of cohort.split: {k}: "
                                  f"cannot compute FC/FCD: {exc}: use a smaller split"]
                break
            sources = dict(s.sources)
            sources["session"] = f"part {j}/{k} of {s.id}'s BOLD: TRs {a}..{b - 1} of {t} (cohort.split)"
            parts.append(replace(
                s, id=session_id(s.id, str(j)), participant=s.id, session=str(j), bold=bold, fc=fc, fcd=fcd,
                phenotype=dict(s.phenotype), sources=sources, labels=list(s.labels),
            ))
        else:
            subjects.extend(parts)
            if t % k:
                log.info("subject %s: cohort.split: %d drops the last %d of %d TRs", s.id, k, t % k, t)
    if problems and not cohort.options.skip_bad:
        lines = "\n".join(f"  - {p}" for ps in problems.values() for p in ps)
        raise CohortError(f"cohort {cohort.source!r}: cannot split into {k} sessions:\n{lines}")
    skipped = {**cohort.skipped, **problems}
    for sid, ps in problems.items():
        log.warning("subject %s skipped: %s", sid, "; ".join(ps))
    if not subjects:
        raise CohortError(f"cohort {cohort.source!r}: no subject left after cohort.split: {k}; skipped:\n"
                          + "\n".join(f"  - {p}" for ps in problems.values() for p in ps))
    options = cohort.options if cohort.options.split == k else cohort.options.replace(split=k)
    return Cohort(subjects, options, skipped=skipped, warnings=cohort.warnings, source=cohort.source)
