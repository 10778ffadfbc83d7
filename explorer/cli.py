"""`explorer` command line: a thin registry of sub-commands.

Each package's command line is its ``commands`` module (``explorer.<package>.commands``), beside the
code it drives; for each sub-command NAME it holds ``add_NAME_arguments(parser)`` and
``NAME_command(args) -> int`` (the exit status). These modules are cheap to import (they import the
heavy code they drive only when a command runs), so ``explorer --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from explorer.errors import ExplorerError

#: command name NAME -> (module holding add_NAME_arguments and NAME_command, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("explorer.runner.commands", "Run (or resume) the study described by a YAML config."),
    "resume": ("explorer.runner.commands", "Resume a study by name from its frozen config."),
    "extend": ("explorer.runner.commands", "Add trials per subject, or new subjects, to a study."),
    "status": ("explorer.study.commands", "Per-subject progress, best scores and parameters of a study."),
    "verify": ("explorer.study.commands", "Check that Optuna, MLflow and zarr agree on every trial."),
    "report": ("explorer.report.commands", "Twin report: fit with fresh seeds, individuality, test-retest, "
               "recovery, phenotype."),
    "ui": ("explorer.study.commands", "Browse a study in the MLflow UI (and optuna-dashboard with --optuna)."),
    "cohort": ("explorer.cohort.commands", "Inspect and validate a cohort (`explorer cohort show PATH`)."),
    "bench": ("explorer.sim.commands", "Benchmark the simulator; prints JSON."),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="explorer",
        description="Fit a virtual brain twin to every subject of a cohort, on Ray, with Optuna, MLflow and zarr.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        module = importlib.import_module(module_name)
        getattr(module, f"add_{name}_arguments")(p)
        p.set_defaults(_module=module_name, _name=name)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    module = importlib.import_module(args._module)
    runner = getattr(module, f"{args._name}_command")
    try:
        return int(runner(args) or 0)
    except ExplorerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
