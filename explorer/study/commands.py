"""`explorer status | verify | ui`: the commands that read a study folder.

Cheap to import (the CLI builds its parser from it): Optuna, MLflow and zarr are opened only when a
command runs. ``ui`` reads the study's frozen config and hands it to the servers of
:mod:`explorer.tracking.ui` (start them, print the links, wait until Ctrl-C or SIGTERM, stop them).
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import time

from explorer.layout import add_study_name, resolve
from explorer.study.frozen import load_frozen
from explorer.study.status import status_lines, study_status
from explorer.study.verify import KINDS, verify_study
from explorer.tracking.ui import HOST, MLFLOW_PORT, OPTUNA_PORT, ServerExited, UIServers, start_ui


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


# -- ui ------------------------------------------------------------------------------------
def add_ui_arguments(p: argparse.ArgumentParser) -> None:
    add_study_name(p)
    p.add_argument("--port", type=int, default=MLFLOW_PORT, help=f"MLflow UI port on {HOST} (default {MLFLOW_PORT})")
    p.add_argument("--optuna", action="store_true", help="also start optuna-dashboard on the study's Optuna storage")
    p.add_argument("--optuna-port", type=int, default=OPTUNA_PORT,
                   help=f"optuna-dashboard port (default {OPTUNA_PORT})")
    p.add_argument("--no-browser-hint", action="store_true", help="print only the URLs")


def _describe(servers: UIServers, name: str, hint: bool) -> str:
    u = servers.urls
    lines = [f"study {name}: MLflow at {u['mlflow']}"]
    if "subjects" in u:
        lines.append(f"  per subject:   {u['subjects']}")
    lines.append(f"  all runs:      {u['runs']}")
    if servers.best is not None:
        lines += [f"  best subject:  {servers.best.describe()}", f"                 {u['best']}"]
    if "optuna" in u:
        lines.append(f"  optuna:        {u['optuna']}  (one Optuna study per subject: {name}/<subject>)")
    if hint:
        lines.append("Open these links as printed: MLflow 3 otherwise opens an experiment on its GenAI overview "
                     "(its sidebar toggle 'Model training' switches back). "
                     + ("Ctrl-C stops the servers." if servers.running else ""))
    return "\n".join(lines)


class _Terminated(Exception):
    pass


def _on_sigterm(signum, frame):
    raise _Terminated()


def ui_command(args: argparse.Namespace) -> int:
    study_dir = resolve(args.name, args.studies_dir)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    servers = None
    try:
        servers = start_ui(load_frozen(study_dir), study_dir, port=args.port, optuna=args.optuna,
                           optuna_port=args.optuna_port)
        print(_describe(servers, study_dir.name, not args.no_browser_hint), flush=True)
        while servers.children:                     # none when the study logs to an http(s) server
            failed = servers.poll()
            if failed is not None:
                print(f"error: {failed}", file=sys.stderr)
                return 1
            time.sleep(0.5)
        return 0
    except ServerExited as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, _Terminated):
        print("stopping the UI servers", file=sys.stderr)
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        if servers is not None:
            servers.stop()
