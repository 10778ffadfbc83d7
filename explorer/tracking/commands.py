"""`explorer ui NAME`: the command line of :mod:`explorer.tracking.ui` (start the servers, print the links,
wait until Ctrl-C or SIGTERM, stop them).

Cheap to import: the CLI builds its parser from this module.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

from explorer.layout import add_study_name, resolve
from explorer.tracking.ui import HOST, MLFLOW_PORT, OPTUNA_PORT, ServerExited, UIServers, start_ui


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
        servers = start_ui(study_dir, port=args.port, optuna=args.optuna, optuna_port=args.optuna_port)
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
