"""`explorer run | resume | extend`: the commands that run a study.

Cheap to import (the CLI builds its parser from it): ray, optuna and the simulator are imported
only when a command runs.
"""

from __future__ import annotations

import argparse
from typing import Any

from explorer.config import load_config, parse_config
from explorer.errors import ConfigError, StudyError
from explorer.layout import add_study_name, resolve
from explorer.runner.progress import Progress
from explorer.study.commands import terminal_width
from explorer.study.frozen import load_frozen, prepare, save_frozen
from explorer.study.status import status_lines, study_status


def _console():
    from rich.console import Console

    return Console()


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--actors", type=int, default=None, metavar="N",
                   help="number of simulator actors (default: ray.actors, else one per CPU)")
    p.add_argument("--no-progress", action="store_true", help="no live progress display")
    p.add_argument("--shard", type=parse_shard, default=None, metavar="I/N",
                   help="run only the I-th of N interleaved parts of the subjects (0 <= I < N), e.g. one driver "
                        "per part; without it, a second driver simply takes the subjects no live driver holds")


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> (i, n), with 0 <= i < n."""
    i, sep, n = str(text).partition("/")
    try:
        shard = (int(i), int(n))
    except ValueError:
        shard = (-1, 0)
    if not sep or not 0 <= shard[0] < shard[1]:
        raise argparse.ArgumentTypeError(f"--shard {text!r}: give I/N with 0 <= I < N, e.g. --shard 0/4")
    return shard


def _interrupted_before_start(name: str) -> int:
    print(f"interrupted before any trial started; nothing to clean up. Resume with: explorer resume {name}")
    return 130


def _progress(cfg, args: argparse.Namespace):
    return Progress(cfg.name, cfg.objectives, cfg.directions, live=False if args.no_progress else None)


def _run(cfg, study_dir, args: argparse.Namespace, only: list[str] | None = None) -> int:
    """Run ``cfg`` in ``study_dir`` and print what the session did and the study's status."""
    from explorer.runner.driver import run_study   # numba, Ray, Optuna: not for `explorer --help`

    try:
        result = run_study(cfg, study_dir, only_subjects=only, actors=args.actors, progress=_progress(cfg, args),
                           shard=args.shard)
    except KeyboardInterrupt:
        return _interrupted_before_start(cfg.name)
    return _report(result, _console())


def _report(result, console) -> int:
    """What a session did (interrupts, failures), the study's status (80 columns in a pipe), its throughput."""
    if result.already_done:
        console.print(f"study {result.name}: every subject already has its trials "
                      f"(use `explorer extend {result.name} --trials N` for more)")
    for line in result.takeovers:
        console.print(f"[bold yellow]lease taken over[/]: {line}", highlight=False)
    if result.held_elsewhere:
        console.print(f"{len(result.held_elsewhere)} subject(s) left to the other driver(s) running them: "
                      f"{', '.join(sorted(result.held_elsewhere))}", highlight=False)
    for sid in result.failed_subjects:
        console.print(f"[bold red]subject {sid}: every trial failed[/] ({result.subjects[sid]['reasons']}); "
                      "the other subjects continued")
    console.print("\n".join(status_lines(study_status(result.study_dir), terminal_width())), highlight=False,
                  markup=False)
    if result.utilisation is not None:
        console.print(f"this session ({result.mode}): {result.trials_run} trials in {result.driver_wall_s:.1f} s on "
                      f"{result.actors} actors ({result.trials_per_min:.1f}/min); actor utilisation "
                      f"{100 * result.utilisation:.1f}% (start-up {result.startup_s:.1f} s)")
    if result.interrupted:
        if not result.actors:
            console.print(f"\n[bold yellow]interrupted[/] ({result.signal}) before any trial started; nothing to "
                          "clean up.")
        else:
            console.print(f"\n[bold yellow]interrupted[/] ({result.signal}): {result.requeued} in-flight trial(s) "
                          "marked FAIL 'interrupted' and re-enqueued.")
        if result.left_running:
            console.print(f"[bold yellow]second interrupt[/]: clean-up stopped between two storage writes; the "
                          f"in-flight trials of {', '.join(result.left_running)} are still RUNNING, and `explorer "
                          f"resume {result.name}` marks and re-enqueues them first.")
        console.print(f"Resume with: [bold]explorer resume {result.name}[/]")
    console.print(f"study folder: {result.study_dir}")
    return result.exit_code


# -- run -----------------------------------------------------------------------------------
def add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", metavar="CONFIG", help="study config (YAML), e.g. experiments/quickstart.yaml")
    p.add_argument("--trials", type=int, default=None, metavar="N", help="trials per subject (overrides `trials`)")
    p.add_argument("--skip-bad", action="store_true", help="skip invalid subjects instead of refusing the cohort")
    _add_common(p)


def run_command(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {"trials": args.trials}
    if args.skip_bad:
        overrides["cohort.skip_bad"] = True
    cfg = load_config(args.config, **overrides)
    console = _console()
    study_dir = cfg.study_dir
    if prepare(cfg, study_dir):
        console.print(f"study {cfg.name} exists: resuming it")
    return _run(cfg, study_dir, args)


# -- resume --------------------------------------------------------------------------------
def add_resume_arguments(p: argparse.ArgumentParser) -> None:
    add_study_name(p)
    _add_common(p)


def resume_command(args: argparse.Namespace) -> int:
    study_dir = resolve(args.name, args.studies_dir)
    return _run(load_frozen(study_dir), study_dir, args)


# -- extend --------------------------------------------------------------------------------
def add_extend_arguments(p: argparse.ArgumentParser) -> None:
    add_study_name(p)
    p.add_argument("--trials", type=int, default=None, metavar="N", help="add N trials per subject")
    p.add_argument("--subjects", nargs="+", default=None, metavar="ID",
                   help="add these subjects of the cohort source (only they are run, unless --trials)")
    _add_common(p)


def extend_config(cfg, trials: int | None = None, subjects: list[str] | None = None):
    """The config with ``trials`` more per subject and/or ``subjects`` added to the cohort."""
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
    return parse_config(data, "(extended)")


def extend_command(args: argparse.Namespace) -> int:
    if args.trials is None and not args.subjects:
        raise StudyError("extend needs --trials N and/or --subjects ID ...")
    study_dir = resolve(args.name, args.studies_dir)
    cfg = extend_config(load_frozen(study_dir), args.trials, args.subjects)
    only = list(args.subjects) if args.subjects and args.trials is None else None
    save_frozen(cfg, study_dir)
    return _run(cfg, study_dir, args, only)
