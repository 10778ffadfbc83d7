"""What a study's trials are made of: its cohort, each subject's TR and parameter space, the actors' spec.

Everything here is checked when a study opens, before any actor starts: a bad subject, TR, map,
group file or run length is an error that names it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from explorer.cohort import load_cohort
from explorer.config import StudyConfig, check_tr
from explorer.errors import ConfigError, SimulationError, StudyError
from explorer.runner.actor import WorkerSpec
from explorer.scoring.scores import fit_scores
from explorer.search import cohort_reference, subject_spaces
from explorer.study.frozen import git_revision


def load_study_cohort(cfg: StudyConfig, only: list[str] | None = None):
    """The cohort of the config, restricted to ``cohort.subjects`` and then to ``only``."""
    cohort = load_cohort(cfg.cohort.source, cfg.cohort.options)
    wanted = cfg.cohort.subjects
    if only:
        wanted = list(only)
    if wanted is not None:
        missing = [s for s in wanted if s not in cohort and s not in cohort.skipped]
        if missing:
            raise ConfigError(f"field 'cohort.subjects': {missing} not in cohort {cfg.cohort.source!r}; "
                              f"available: {cohort.ids}")
        cohort = cohort.subset([s for s in wanted if s in cohort])
    if not len(cohort):
        raise StudyError(f"study {cfg.name!r}: no subject to fit (skipped: {cohort.skipped})")
    for s in cohort:
        if s.fc is None:
            raise StudyError(f"subject {s.id}: no empirical FC or BOLD to fit against")
        needs_fcd = [o for o in cfg.objectives if "fcd_ks" in o]
        if needs_fcd and s.fcd is None:
            raise StudyError(f"subject {s.id}: objective {needs_fcd[0]} needs empirical BOLD at least "
                             f"{cfg.cohort.features.fcd_window} TRs long; use objective fc_r")
    return cohort


def bold_tr(cfg: StudyConfig, subject) -> float:
    """The simulated BOLD TR (s) of ``subject``: ``simulation.bold_tr_s``, else the subject's own TR."""
    tr = cfg.simulation.bold_tr_s if cfg.simulation.bold_tr_s is not None else subject.tr_s
    if subject.tr_s is not None and tr is not None and abs(float(tr) - float(subject.tr_s)) > 1e-9:
        raise ConfigError(f"field 'simulation.bold_tr_s': {tr:g} s, but subject {subject.id}'s BOLD has TR "
                          f"{subject.tr_s:g} s: FC and FCD would compare unlike samples; set bold_tr_s to null "
                          "(the cohort's TR)")
    if tr is None:
        raise StudyError(f"subject {subject.id}: no BOLD TR to simulate at (FC only); give cohort.tr_s or "
                         "simulation.bold_tr_s")
    check_tr(cfg, float(tr), f"subject {subject.id}")
    return float(tr)


def study_inputs(cfg: StudyConfig, study_dir: Path, subjects) -> tuple[dict[str, Any], Any]:
    """(each subject's SubjectSpace, the study's cohort-mean FC or None): what trials are made of.

    Raises StudyError when an objective needs the cohort-mean FC and there is none, ConfigError
    for a bad map or group file.
    """
    fc_mean = cohort_reference(study_dir, list(subjects))
    need = [o for o in cfg.objectives if "fc_r_residual" in o]
    if need and fc_mean is None:
        raise StudyError(f"objective {need[0]} compares each subject with the cohort mean, which needs at least "
                         "2 subjects with BOLD or FC; use objective fc_r")
    return subject_spaces(cfg, list(subjects), fc_mean), fc_mean


def preflight(cfg: StudyConfig, cohort) -> None:
    """Fail before any actor starts if a TR does not fit dt, or simulated BOLD would be too short to score."""
    trs = {s.id: bold_tr(cfg, s) for s in cohort}
    s = cohort.subjects[0]
    n_tr = int(cfg.simulation.duration_s / trs[s.id])
    fake = np.random.default_rng(0).standard_normal((max(n_tr, 1), s.n_regions))
    try:
        fit_scores(fake, trs[s.id], s.fc, s.fcd, cfg.cohort.features)
    except SimulationError as exc:
        raise StudyError(f"field 'simulation.duration_s' ({cfg.simulation.duration_s} s): {exc}") from None
    if cfg.ec is not None:
        ec_preflight(cfg, cohort)


def ec_preflight(cfg: StudyConfig, cohort) -> None:
    """The EC stage needs each subject's BOLD (its lagged covariance), longer than the lag by a margin, and
    a TR its lag ``ec.tau_s`` can be expressed in: StudyError naming every subject at fault."""
    bad = []
    for s in cohort:
        if s.bold is None:
            bad.append(f"{s.id}: no BOLD time series (FC only)")
            continue
        lag = cfg.ec.lag_trs(float(s.tr_s))
        if s.bold.shape[0] < 10 * lag:
            bad.append(f"{s.id}: {s.bold.shape[0]} TRs is too short for a lag of {lag} TRs (needs >= {10 * lag})")
    if bad:
        raise StudyError("the EC stage (config section 'ec') fits each subject's FC and lag-"
                         f"{cfg.ec.tau_s:g} s covariance from its BOLD, but " + "; ".join(bad)
                         + ". Give these subjects BOLD (or a shorter ec.tau_s), drop them (cohort.subjects), or remove the "
                         "ec section")


def subject_payload(cfg: StudyConfig, subject, space, fc_mean) -> dict[str, Any]:
    """What an actor keeps of a subject: connectome, empirical features, its parameter space, its TR."""
    return {"weights": subject.weights, "lengths": subject.lengths, "labels": list(subject.labels),
            "fc": subject.fc, "fcd": subject.fcd, "space": space, "fc_mean": fc_mean,
            "bold_tr_s": bold_tr(cfg, subject)}


def worker_spec(cfg: StudyConfig, tr_s: float, store_url: str | None, repeats: int | None = None) -> WorkerSpec:
    """The actors' settings for ``cfg``; ``tr_s`` is a default BOLD TR (payloads carry each subject's).

    With a ``store_url``, the code's git revision goes along, recorded with every trial's signals."""
    return WorkerSpec(model=cfg.model, simulate_kwargs=cfg.simulation.simulate_kwargs(tr_s),
                      features=cfg.cohort.features.to_dict(),
                      repeats=cfg.simulation.repeats if repeats is None else repeats,
                      objectives=cfg.objectives, directions=cfg.directions, store_url=store_url,
                      fic_target_hz=cfg.params.fic_target_hz if cfg.params.fic else None,
                      git_revision=git_revision() if store_url is not None else None,
                      best_k=cfg.store.best_k if cfg.store.mode == "best" else 0)
