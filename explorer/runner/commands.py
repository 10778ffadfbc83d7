"""`explorer run | resume | extend | status`: the study commands.

Cheap to import (the CLI builds its parser from it): ray, optuna and the simulator are imported
only when a command runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path
from typing import Any

from explorer.errors import StudyError

STUDIES_DIR_ENV = "EXPLORER_STUDIES_DIR"


def _console():
    from rich.console import Console

    return Console()


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--actors", type=int, default=None, metavar="N",
                   help="number of simulator actors (default: ray.actors, else one per CPU)")
    p.add_argument("--no-progress", action="store_true", help="no live progress display")


def add_study_name(p: argparse.ArgumentParser) -> None:
    """The ``NAME`` and ``--studies-dir`` arguments of every command that opens a study folder."""
    p.add_argument("name", metavar="NAME", help="study name (looked up in --studies-dir) or a study folder")
    p.add_argument("--studies-dir", default=None, metavar="DIR",
                   help=f"folder holding the studies (default: ${STUDIES_DIR_ENV} or ./studies)")


def resolve_study_dir(name: str, studies_dir: str | None = None) -> Path:
    """A study folder from a name (``<studies_dir>/<name>``) or a path to the folder."""
    p = Path(name)
    if (p / "study.yaml").is_file():
        return p
    base = Path(studies_dir or os.environ.get(STUDIES_DIR_ENV) or "studies")
    d = base / name
    if not (d / "study.yaml").is_file():
        raise StudyError(f"no study {name!r} in {base}/ (no {d / 'study.yaml'}); start it with "
                         "`explorer run CONFIG`, or pass --studies-dir")
    return d


def _interrupted_before_start(name: str) -> int:
    print(f"interrupted before any trial started; nothing to clean up. Resume with: explorer resume {name}")
    return 130


def _report(result, console) -> int:
    from rich.table import Table

    t = Table(title=f"study {result.name}")
    for col in ("subject", "complete", "failed", "running", "best", "best params"):
        t.add_column(col)
    for sid, s in result.subjects.items():
        best = s.get("best") or {}
        scores = ", ".join(f"{k}={v:.4f}" for k, v in best.get("scores", {}).items() if isinstance(v, float))
        params = ", ".join(f"{k}={v:.4g}" for k, v in best.get("params", {}).items())
        t.add_row(sid, f"{s['complete']}/{s['target']}", str(s["failed"]), str(s["running"]), scores, params)
    console.print(t)
    if result.utilisation is not None:
        console.print(f"{result.trials_run} trials in {result.driver_wall_s:.1f} s on {result.actors} actors "
                      f"({result.trials_per_min:.1f}/min); actor utilisation {100 * result.utilisation:.1f}% "
                      f"(start-up {result.startup_s:.1f} s)")
    console.print(f"study folder: {result.study_dir}")
    return result.exit_code


# -- run -----------------------------------------------------------------------------------
def add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", metavar="CONFIG", help="study config (YAML), e.g. experiments/quickstart.yaml")
    p.add_argument("--trials", type=int, default=None, metavar="N", help="trials per subject (overrides `trials`)")
    p.add_argument("--skip-bad", action="store_true", help="skip invalid subjects instead of refusing the cohort")
    _add_common(p)


def prepare_study(cfg, study_dir: Path, console=None):
    """Create the study folder or check a rerun against it; save the frozen config. Returns the config."""
    from explorer.config import incompatible_fields, load_frozen, save_frozen

    if (study_dir / "study.yaml").is_file():
        old = load_frozen(study_dir)
        bad = incompatible_fields(old, cfg)
        if bad:
            raise StudyError(f"study {cfg.name!r} in {study_dir} was started with a different {', '.join(bad)}; "
                             "trials would not be comparable. Give the config a new `name`, or resume as it was "
                             f"with `explorer resume {cfg.name}`")
        if console is not None:
            console.print(f"study {cfg.name} exists: resuming it")
    save_frozen(cfg, study_dir)
    return cfg


def run_command(args: argparse.Namespace) -> int:
    from explorer.config import load_config
    from explorer.runner.driver import run_study

    overrides: dict[str, Any] = {"trials": args.trials}
    if args.skip_bad:
        overrides["cohort.skip_bad"] = True
    cfg = load_config(args.config, **overrides)
    console = _console()
    study_dir = cfg.study_dir
    prepare_study(cfg, study_dir, console)
    try:
        result = run_study(cfg, study_dir, actors=args.actors, live=False if args.no_progress else None)
    except KeyboardInterrupt:
        return _interrupted_before_start(cfg.name)
    return _report(result, console)


# -- resume --------------------------------------------------------------------------------
def add_resume_arguments(p: argparse.ArgumentParser) -> None:
    add_study_name(p)
    _add_common(p)


def resume_command(args: argparse.Namespace) -> int:
    from explorer.config import load_frozen
    from explorer.runner.driver import run_study

    study_dir = resolve_study_dir(args.name, args.studies_dir)
    cfg = load_frozen(study_dir)
    try:
        result = run_study(cfg, study_dir, actors=args.actors, live=False if args.no_progress else None)
    except KeyboardInterrupt:
        return _interrupted_before_start(cfg.name)
    return _report(result, _console())


# -- extend --------------------------------------------------------------------------------
def add_extend_arguments(p: argparse.ArgumentParser) -> None:
    add_study_name(p)
    p.add_argument("--trials", type=int, default=None, metavar="N", help="add N trials per subject")
    p.add_argument("--subjects", nargs="+", default=None, metavar="ID",
                   help="add these subjects of the cohort source (only they are run, unless --trials)")
    _add_common(p)


def extend_config(cfg, trials: int | None = None, subjects: list[str] | None = None):
    """The config with ``trials`` more per subject and/or ``subjects`` added to the cohort."""
    from explorer.errors import ConfigError

    data = cfg.model_dump(mode="python")
    if trials is not None:
        if trials < 1:
            raise ConfigError("--trials must be a positive number of trials to add per subject")
        if cfg.sampler.name == "grid":
            raise StudyError(f"study {cfg.name!r} is a grid study: it visits its grid once; extend it "
                             "by --subjects, or start a new study with a larger grid")
        data["trials"] = cfg.n_trials + trials
    if subjects:
        if cfg.cohort.subjects is not None:
            data["cohort"]["subjects"] = list(cfg.cohort.subjects) + [s for s in subjects
                                                                     if s not in cfg.cohort.subjects]
    from explorer.config import parse_config

    return parse_config(data, "(extended)")


def extend_command(args: argparse.Namespace) -> int:
    from explorer.config import load_frozen, save_frozen
    from explorer.runner.driver import run_study

    if args.trials is None and not args.subjects:
        raise StudyError("extend needs --trials N and/or --subjects ID ...")
    study_dir = resolve_study_dir(args.name, args.studies_dir)
    cfg = extend_config(load_frozen(study_dir), args.trials, args.subjects)
    only = list(args.subjects) if args.subjects and args.trials is None else None
    save_frozen(cfg, study_dir)
    console = _console()
    try:
        result = run_study(cfg, study_dir, only_subjects=only, actors=args.actors,
                           live=False if args.no_progress else None)
    except KeyboardInterrupt:
        return _interrupted_before_start(cfg.name)
    return _report(result, console)


# -- status --------------------------------------------------------------------------------
def add_status_arguments(p: argparse.ArgumentParser) -> None:
    add_study_name(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _finite(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    return x


def study_status(study_dir: str | Path) -> dict[str, Any]:
    """Per-subject counts, best scores and params, and utilisation of a study folder."""
    from dataclasses import asdict

    from explorer.config import load_frozen, optuna_storage_url
    from explorer.runner.driver import RUNS_FILE
    from explorer.search import best_summary, list_subject_studies, open_storage, open_subject_study, subject_counts
    from explorer.search.storage import redact

    study_dir = Path(study_dir)
    cfg = load_frozen(study_dir)
    url = optuna_storage_url(cfg, study_dir)
    storage = open_storage(url)
    subjects = {}
    for sid in list_subject_studies(storage, cfg.name):
        study = open_subject_study(storage, cfg, sid, create=False)
        c = subject_counts(study)
        subjects[sid] = {**asdict(c), "target": cfg.n_trials, "done": c.done,
                         "best": _finite(best_summary(study, cfg.objectives))}
    runs = []
    runs_path = study_dir / RUNS_FILE
    if runs_path.is_file():
        runs = [json.loads(line) for line in runs_path.read_text().splitlines() if line.strip()]
    sim = sum(r.get("simulate_s", 0.0) for r in runs)
    capacity = sum(r.get("actors", 0) * r.get("driver_wall_s", 0.0) for r in runs)
    return {
        "name": cfg.name, "study_dir": str(study_dir), "model": cfg.model, "objective": cfg.objectives,
        "sampler": cfg.sampler.name, "trials_per_subject": cfg.n_trials, "optuna_storage": redact(url),
        "subjects": subjects,
        "totals": {k: sum(s[k] for s in subjects.values())
                   for k in ("complete", "failed", "interrupted", "running", "waiting")},
        "utilisation": (sim / capacity) if capacity > 0 else None,
        "last_run": runs[-1] if runs else None,
        "runs": len(runs),
    }


def status_command(args: argparse.Namespace) -> int:
    study_dir = resolve_study_dir(args.name, args.studies_dir)
    st = study_status(study_dir)
    if args.json:
        print(json.dumps(st, indent=2, default=str))
        return 0
    from rich.table import Table

    console = _console()
    obj = st["objective"]
    t = Table(title=f"study {st['name']} ({st['model']}, {st['sampler']}, objective {', '.join(obj)})")
    for col in ("subject", "complete", "failed", "running", "waiting", "best", "best params", "fail reasons"):
        # (fail reasons: counts per reason; "interrupted" trials are re-enqueued and not counted)
        t.add_column(col)
    for sid, s in st["subjects"].items():
        best = s.get("best") or {}
        scores = ", ".join(f"{k}={v:.4f}" for k, v in (best.get("scores") or {}).items()
                           if isinstance(v, float) and k in obj)
        params = ", ".join(f"{k}={v:.4g}" for k, v in (best.get("params") or {}).items())
        reasons = ", ".join(f"{k}: {v}" for k, v in s["reasons"].items())
        t.add_row(sid, f"{s['complete']}/{s['target']}", str(s["failed"]), str(s["running"]), str(s["waiting"]),
                  scores, params, reasons)
    console.print(t)
    u = st["utilisation"]
    console.print(f"runs: {st['runs']}; actor utilisation (simulating / actor wall time): "
                  f"{'n/a' if u is None else f'{100 * u:.1f}%'}; storage: {st['optuna_storage']}")
    return 0
