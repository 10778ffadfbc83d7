"""From raw arrays to validated Subjects: orientation, region selection, checks, normalisation, features.

Every problem is collected (never stop at the first), each naming the subject, the file and what to
do. :func:`build_cohort` returns the good subjects and the bad ones with their problems; the caller
(:func:`explorer.cohort.load_cohort`) refuses the whole cohort unless ``skip_bad``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from explorer.errors import CohortError, ConfigError
from explorer.features import empirical_features, min_filter_length

from .types import Cohort, CohortOptions, Subject

log = logging.getLogger("explorer.cohort")


@dataclass
class RawSubject:
    """A subject as read from its files, before any checks or changes.

    bold is as stored on disk: regions x time unless ``bold_time_major`` (e.g. simulated BOLD).
    problems/warnings hold messages found while reading, already naming subject and file.
    origin says where the subject was declared (a folder, or "manifest.csv row 3").
    participant/session: see :class:`~explorer.cohort.types.Subject` (participant "" = the id).
    """

    id: str
    origin: str
    weights: np.ndarray | None = None
    lengths: np.ndarray | None = None
    labels: list[str] | None = None
    bold: np.ndarray | None = None
    bold_time_major: bool = False
    fc: np.ndarray | None = None
    tr_s: float | None = None
    phenotype: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    participant: str = ""
    session: str | None = None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def problem(self, file: str, what: str) -> None:
        self.problems.append(f"subject {self.id}: {file}: {what}")

    def warn(self, file: str, what: str) -> None:
        self.warnings.append(f"subject {self.id}: {file}: {what}")


def generic_labels(n: int) -> list[str]:
    """Labels for files that store none: "R000", "R001", ... (0-based file index)."""
    return [f"R{i:03d}" for i in range(n)]


def _region(labels: Sequence[str], keep: np.ndarray, k: int) -> str:
    return f"{labels[k]!r} (file index {int(keep[k])})"


def _regions(labels: Sequence[str], keep: np.ndarray, ks: Sequence[int], limit: int = 8) -> str:
    names = [_region(labels, keep, int(k)) for k in list(ks)[:limit]]
    more = f" and {len(ks) - limit} more" if len(ks) > limit else ""
    return ", ".join(names) + more


def _check(raw: RawSubject, opts: CohortOptions) -> tuple[Subject | None, list[str], list[str]]:
    """Validate and transform one subject: (subject or None, problems, warnings)."""
    before = len(raw.problems)
    src = raw.sources
    wfile = src.get("weights", raw.origin)
    lfile = src.get("lengths", raw.origin)
    bfile = src.get("bold", raw.origin)
    ffile = src.get("fc", raw.origin)
    if raw.weights is None or raw.lengths is None:
        if not raw.problems:
            raw.problem(raw.origin, "no SC weights/lengths could be read: check the files")
        return None, raw.problems, raw.warnings
    w, ln = raw.weights, raw.lengths
    if w.shape[0] != w.shape[1]:
        raw.problem(wfile, f"SC weights are {w.shape[0]}x{w.shape[1]}, not square: store an N x N matrix")
    if ln.shape[0] != ln.shape[1]:
        raw.problem(lfile, f"tract lengths are {ln.shape[0]}x{ln.shape[1]}, not square: store an N x N matrix")
    if len(raw.problems) > before:
        return None, raw.problems, raw.warnings
    n = w.shape[0]
    if ln.shape != w.shape:
        raw.problem(lfile, f"tract lengths are {ln.shape[0]}x{ln.shape[1]} but the SC weights ({wfile}) are "
                           f"{n}x{n}: both must have the same regions")
    labels = list(raw.labels) if raw.labels is not None else generic_labels(n)
    if raw.labels is None:
        src.setdefault("labels", "generic R000.. (the files store no labels)")
    if len(labels) != n:
        raw.problem(src.get("labels", raw.origin), f"{len(labels)} labels for {n} regions: give one label per region")
        labels = generic_labels(n)

    bold = None
    if raw.bold is not None:
        b = raw.bold
        if raw.bold_time_major:
            if b.shape[1] != n:
                raw.problem(bfile, f"BOLD has {b.shape[1]} regions but the SC weights ({wfile}) have {n}")
            else:
                bold = b
        elif b.shape[0] == n:
            bold = b.T  # regions x time on disk (also when square: assumed, see module docs)
        elif b.shape[1] == n:
            bold = b
            src["bold_orientation"] = "time x regions in the file (used as is)"
            log.info("subject %s: %s holds time x regions (%s); used as is", raw.id, bfile, b.shape)
        else:
            raw.problem(bfile, f"BOLD is {b.shape[0]}x{b.shape[1]}, which matches neither way the {n} regions "
                               f"of the SC weights ({wfile}): store regions x time with the same regions")
    fcm = raw.fc
    if fcm is not None and fcm.shape != (n, n):
        raw.problem(ffile, f"FC is {fcm.shape[0]}x{fcm.shape[1]} but the SC weights ({wfile}) are {n}x{n}")
        fcm = None
    if len(raw.problems) > before:
        return None, raw.problems, raw.warnings

    # region selection (indices are 0-based indices of the file, or labels)
    drop: set[int] = set()
    for d in opts.drop or []:
        if isinstance(d, str):
            hits = [i for i, lab in enumerate(labels) if lab == d]
            if not hits:
                raw.problem(src.get("labels", wfile), f"cannot drop region label {d!r}: no such label "
                                                      f"(labels: {labels[:5]}...): fix cohort.drop")
            drop.update(hits)
        else:
            if not 0 <= int(d) < n:
                raw.problem(wfile, f"cannot drop region index {d}: the file has regions 0..{n - 1}: fix cohort.drop")
            else:
                drop.add(int(d))
    keep = np.array([i for i in range(n) if i not in drop], dtype=int)
    if keep.size < 2:
        raw.problem(wfile, f"only {keep.size} region(s) left after dropping {sorted(drop)}: drop fewer regions")
    if len(raw.problems) > before:
        return None, raw.problems, raw.warnings
    ix = np.ix_(keep, keep)
    w = np.array(w[ix], dtype=np.float64)
    ln = np.array(ln[ix], dtype=np.float64)
    labels = [labels[i] for i in keep]
    if bold is not None:
        bold = np.array(bold[:, keep], dtype=np.float64)
    if fcm is not None:
        fcm = np.array(fcm[ix], dtype=np.float64)
    what_to_do = "fix the file, or drop the region(s) with cohort.drop / --drop"

    # value checks on the selected regions
    for arr, file, name in ((w, wfile, "SC weights"), (ln, lfile, "tract lengths")):
        bad = ~np.isfinite(arr)
        if bad.any():
            rows = np.unique(np.nonzero(bad)[0])
            raw.problem(file, f"{name} hold {int(bad.sum())} NaN/inf value(s), in the rows of "
                              f"{_regions(labels, keep, rows)}: {what_to_do}")
        neg = np.isfinite(arr) & (arr < 0)
        if neg.any():
            rows = np.unique(np.nonzero(neg)[0])
            raw.problem(file, f"{name} hold {int(neg.sum())} negative value(s) (min {arr[neg].min():g}), in the rows "
                              f"of {_regions(labels, keep, rows)}: {what_to_do}")
    if np.all(np.isfinite(w)):
        off = w.copy()
        np.fill_diagonal(off, 0.0)
        if not np.any(off):
            raw.problem(wfile, "SC weights are all zero off the diagonal: check the file")
        else:
            zero_rows = np.flatnonzero(~np.any(off != 0, axis=1))
            for k in zero_rows:
                raw.warn(wfile, f"region {_region(labels, keep, int(k))} has an all-zero SC row "
                                "(disconnected: it receives no input from the network): "
                                "drop it with cohort.drop if that is not intended")
    tr_s = raw.tr_s if raw.tr_s is not None else opts.tr_s
    fopts = opts.features
    if bold is not None:
        t = bold.shape[0]
        if not np.all(np.isfinite(bold)):
            cols = np.flatnonzero(~np.all(np.isfinite(bold), axis=0))
            raw.problem(bfile, f"BOLD holds NaN/inf values in {_regions(labels, keep, cols)}: {what_to_do}")
        else:
            sd = bold.std(axis=0)
            const = np.flatnonzero(sd <= 1e-12 * np.maximum(1.0, np.abs(bold.mean(axis=0))))
            if const.size:
                raw.problem(bfile, f"BOLD is constant in {_regions(labels, keep, const)}: {what_to_do}")
        if t < fopts.fcd_window:
            raw.problem(bfile, f"BOLD has {t} time points, shorter than the FCD window of {fopts.fcd_window} TRs: "
                               "give longer BOLD, or lower features.fcd_window")
        elif fopts.bandpass is not None and t < min_filter_length(fopts):
            raw.problem(bfile, f"BOLD has {t} time points, too short for the band-pass filter "
                               f"(needs {min_filter_length(fopts)}): give longer BOLD or set features.bandpass: null")
        if tr_s is None:
            raw.problem(bfile, "no TR: this format stores none: add a tr_s column to the manifest, "
                               "or set cohort.tr_s / --tr-s")
        elif not (float(tr_s) > 0 and np.isfinite(float(tr_s))):
            raw.problem(bfile, f"TR must be > 0 s, got {tr_s}: fix the tr_s column or cohort.tr_s")
        elif fopts.bandpass is not None and fopts.bandpass[1] >= 0.5 / float(tr_s):
            raw.problem(bfile, f"band-pass upper edge {fopts.bandpass[1]} Hz is not below the Nyquist frequency "
                               f"{0.5 / float(tr_s):g} Hz of TR {tr_s} s: lower features.bandpass or check the TR")
        if fcm is not None:
            raw.warn(ffile, "both BOLD and an FC file are given: the FC is computed from the BOLD, the FC file is unused")
            fcm = None
    elif fcm is not None:
        if not np.all(np.isfinite(fcm)):
            raw.problem(ffile, f"FC holds NaN/inf values: {what_to_do}")
        raw.warn(ffile, "FC only (no BOLD): FCD-based scores (fcd_ks) are unavailable for this subject")
        if fopts.fisher_z:
            raw.warn(ffile, "features.fisher_z is on but the FC file is used as given: "
                            "store it as Fisher z too, or turn fisher_z off")
        tr_s = None
    elif not raw.problems:
        raw.warn(raw.origin, "no BOLD and no FC: structural only, this subject cannot be fitted; "
                             "pair it with BOLD in a manifest")
        tr_s = None
    if raw.problems:
        return None, raw.problems, raw.warnings

    # transforms, only as the options ask
    if opts.symmetrise:
        w = (w + w.T) / 2.0
        ln = (ln + ln.T) / 2.0
    if opts.zero_diagonal:
        np.fill_diagonal(w, 0.0)
    if opts.normalise == "log1p+max":
        w = np.log1p(w)
    if opts.normalise in ("max", "log1p+max"):
        m = float(w.max())
        if m <= 0:
            raw.problem(wfile, "SC weights are all zero after zeroing the diagonal: check the file")
            return None, raw.problems, raw.warnings
        w = w / m

    f = fcd = None
    if bold is not None:
        try:
            f, fcd = empirical_features(bold, float(tr_s), fopts)  # type: ignore[arg-type]
        except (CohortError, ConfigError, ValueError) as exc:
            raw.problem(bfile, f"cannot compute FC/FCD: {exc}")
            return None, raw.problems, raw.warnings
    elif fcm is not None:
        f = fcm
    subject = Subject(
        id=raw.id, weights=w, lengths=ln, labels=labels, bold=bold,
        tr_s=None if tr_s is None else float(tr_s), fc=f, fcd=fcd,
        phenotype=dict(raw.phenotype), sources=dict(src), participant=raw.participant, session=raw.session,
    )
    return subject, raw.problems, raw.warnings


def build_cohort(
    raws: Sequence[RawSubject],
    options: CohortOptions,
    source: str,
    default_drop: Sequence[int | str] = (),
    default_tr_s: float | None = None,
) -> Cohort:
    """Check and transform every raw subject. Returns a Cohort of the good subjects whose
    ``skipped`` holds *every* bad subject with its problems, whatever ``options.skip_bad`` says;
    :func:`refuse_if_bad` applies the skip_bad policy.

    The returned cohort's options are resolved: ``drop`` and ``tr_s`` hold what was used.
    """
    opts = options.replace(
        drop=list(options.drop) if options.drop is not None else list(default_drop),
        tr_s=options.tr_s if options.tr_s is not None else default_tr_s,
    )
    counts: dict[str, list[str]] = {}
    for r in raws:
        counts.setdefault(r.id, []).append(r.origin)
    for r in raws:
        if len(counts[r.id]) > 1:
            r.problem(r.origin, f"duplicate subject id (declared {len(counts[r.id])} times: "
                                f"{', '.join(counts[r.id])}): give every subject a unique id")
    subjects: list[Subject] = []
    skipped: dict[str, list[str]] = {}
    warnings: list[str] = []
    for r in raws:
        s, probs, warns = _check(r, opts)
        warnings.extend(warns)
        if s is None or probs:
            skipped.setdefault(r.id, []).extend(p for p in probs if p not in skipped.get(r.id, []))
        else:
            subjects.append(s)
    for msg in warnings:
        log.warning(msg)
    return Cohort(subjects, opts, skipped=skipped, warnings=warnings, source=source)


def problems_text(skipped: dict[str, list[str]]) -> str:
    lines = [f"  - {p}" for probs in skipped.values() for p in probs]
    return "\n".join(lines)


def refuse_if_bad(cohort: Cohort) -> Cohort:
    """Apply the skip_bad policy: raise CohortError listing every problem, or log the skips."""
    if cohort.skipped and not cohort.options.skip_bad:
        n = sum(len(v) for v in cohort.skipped.values())
        raise CohortError(
            f"cohort {cohort.source!r} refused: {n} problem(s) in {len(cohort.skipped)} subject(s):\n"
            f"{problems_text(cohort.skipped)}\n"
            "Fix them (or drop the affected regions), or set skip_bad: true (--skip-bad) to run the good subjects only."
        )
    for sid, probs in cohort.skipped.items():
        log.warning("subject %s skipped: %s", sid, "; ".join(probs))
    if len(cohort) == 0:
        raise CohortError(
            f"cohort {cohort.source!r} has no usable subject"
            + (f"; every subject was skipped:\n{problems_text(cohort.skipped)}" if cohort.skipped else "")
        )
    return cohort
