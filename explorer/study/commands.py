"""`explorer status | verify`: the commands that read a study folder.

Cheap to import (the CLI builds its parser from it): Optuna, MLflow and zarr are opened only when a
command runs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys

from explorer.layout import add_study_name, resolve
from explorer.study.status import status_lines, study_status
from explorer.study.verify import KINDS, verify_study


def terminal_width() -> int:
    """The terminal's width, or 80 in a pipe."""
    return shutil.get_terminal_size((80, 24)).columns if sys.stdout.isatty() else 80


# -- status --------------------------------------------------------------------------------
def add_status_arguments(p: argparse.ArgumentParser) -> None:
    add_study_name(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def status_command(args: argparse.Namespace) -> int:
    st = study_status(resolve(args.name, args.studies_dir))
    if args.json:
        print(json.dumps(st, indent=2, default=str))
        return 0
    print("\n".join(status_lines(st, terminal_width())))
    return 0


# -- verify --------------------------------------------------------------------------------
def add_verify_arguments(p: argparse.ArgumentParser) -> None:
    add_study_name(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--repair", action="store_true",
                   help="re-create MLflow runs and trials tables from Optuna, delete orphans, report what cannot "
                        "be re-created")


def verify_command(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    study_dir = resolve(args.name, args.studies_dir)
    report = verify_study(study_dir, repair=args.repair)
    if args.json:
        print(json.dumps({"study_dir": str(study_dir), **report.to_dict()}, indent=2))
        return 0 if report.ok else 1
    console = Console()
    for line in report.repaired:
        console.print(f"[green]repaired[/] {line}")
    for line in report.unrepairable:
        console.print(f"[red]cannot repair[/] {line}")
    if report.ok:
        console.print(f"[green]ok[/]: {report.checked} COMPLETE trials of {report.subjects} subject(s) agree "
                      "in Optuna, MLflow and zarr, and their recorded signals locations resolve"
                      + (f"; the EC of {report.ec_checked} finished subject(s) is stored, fitted from its twin, "
                         "and logged" if report.ec_checked else ""))
        return 0
    t = Table(title=f"{len(report.problems)} problem(s) in {study_dir}")
    for col in ("subject", "trial", "problem", "detail"):
        t.add_column(col)
    for p in report.problems:
        t.add_row(p.subject, str(p.number), KINDS[p.kind], p.detail)
    console.print(t)
    if not args.repair:
        console.print(f"run `explorer verify {args.name} --repair` to re-create MLflow runs and remove orphans")
    return 1
