"""`explorer report NAME`: write a study's twin report (HTML, JSON, figures) and log it to MLflow."""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path
from typing import Any

from explorer.layout import REPORT_DIR, add_study_name, resolve
from explorer.report.cross_session import within_session_note
from explorer.runner.hooks import open_tracker
from explorer.study.frozen import load_frozen

log = logging.getLogger(__name__)



def create_report(study_dir: str | Path, seeds: int = 5, actors: int | None = None,
                  mlflow: bool = True) -> tuple[dict[str, Any], Path, str | None]:
    """Build the report of a study folder and write ``<study>/report/`` (index.html, report.json, PNGs).

    The folder is replaced as a whole, only once everything is written. With ``mlflow``, the
    report is also logged to the study's MLflow experiment as a run tagged ``report``.
    Returns (report dict, report folder, MLflow run id or None).
    """
    # lazy: build pulls in the numba models and html matplotlib; `explorer --help` imports this module
    from explorer.report.build import build_report
    from explorer.report.html import write_report

    study_dir = Path(study_dir)
    report = build_report(study_dir, seeds=seeds, actors=actors)
    out = study_dir / REPORT_DIR
    tmp = study_dir / (REPORT_DIR + ".new")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / "report.json").write_text(json.dumps(report, indent=1, allow_nan=False))
    write_report(report, tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    run_id = _log_to_mlflow(study_dir, out, report) if mlflow else None
    return report, out, run_id


def _log_to_mlflow(study_dir: Path, out: Path, report: dict[str, Any]) -> str | None:
    ind = report.get("individuality") or {}
    res = ind.get("residual") or {}
    metrics = {"fc_r_resim_median": report["summary"].get("fc_r_resim_median"),
               "fcd_ks_resim_median": report["summary"].get("fcd_ks_resim_median"),
               "identification_accuracy": ind.get("accuracy"), "identification_p": ind.get("p_value"),
               "i_diff": ind.get("i_diff"), "residual_accuracy": res.get("accuracy"),
               "residual_i_diff": res.get("i_diff")}
    tags = {"seeds": str(report["seeds"]), "subjects": str(len(report["subjects"]))}
    try:
        tracker = open_tracker(load_frozen(study_dir), study_dir)
        if not hasattr(tracker, "log_report"):
            return None
        return tracker.log_report(out, metrics, tags)
    except Exception as exc:  # noqa: BLE001 - the files are written; MLflow is a copy of them
        log.warning("logging the report to MLflow failed: %s: %s (the files in %s are complete)",
                    type(exc).__name__, exc, out)
        return None


# -- CLI -------------------------------------------------------------------------------------
def add_report_arguments(p: argparse.ArgumentParser) -> None:
    add_study_name(p)
    p.add_argument("--seeds", type=int, default=5, metavar="K",
                   help="fresh noise seeds per re-simulation of each twin and baseline (default 5)")
    p.add_argument("--actors", type=int, default=None, metavar="N",
                   help="simulator actors for the re-simulations (default: ray.actors, else one per CPU)")
    p.add_argument("--json", action="store_true", help="print report.json instead of a summary")
    p.add_argument("--no-mlflow", action="store_true", help="do not log the report to MLflow")


def report_command(args: argparse.Namespace) -> int:
    study_dir = resolve(args.name, args.studies_dir)
    try:
        report, out, run_id = create_report(study_dir, seeds=args.seeds, actors=args.actors,
                                            mlflow=not args.no_mlflow)
    except KeyboardInterrupt:
        print(f"interrupted: the re-simulations that finished are kept in the study's signals store; run "
              f"`explorer report {args.name}` again to go on from there")
        return 130
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    _summary(report, out, run_id)
    return 0


def _fmt(x: Any, spec: str = ".3f") -> str:
    return "-" if x is None else format(x, spec)


def _cross_session_summary(console: Any, xs: dict[str, Any] | None) -> None:
    """The headline (individuality on the session a twin never saw) and one row per method, both directions."""
    from rich.table import Table

    if not xs:
        return
    console.print(f"[bold]{xs['headline']}[/]", highlight=False)
    a, b = xs["sessions"][:2]
    t = Table(title="across sessions: fitted on one, identified on the other")
    for col in ("", f"{a} → {b}: identified (p)", "self r", "fit r", f"{b} → {a}: identified (p)", "self r", "fit r"):
        t.add_column(col)
    for m in (xs.get("methods") or {}).values():
        if not m:
            continue
        cells = []
        for d in m["directions"]:
            cells += [f"{d['hits']}/{d['n']} ({_fmt(d.get('p_value'), '.2g')})", _fmt(d.get("self_r")),
                      _fmt(d.get("fit_r"))]
        t.add_row(m["label"], *cells)
    console.print(t)


def _summary(report: dict[str, Any], out: Path, run_id: str | None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    t = Table(title=f"twins of study {report['study']} ({report['model']}, {report['seeds']} fresh seeds)")
    obj = report["objectives"][0]
    for col in ("subject", f"search best {obj}", "re-sim fc_r", "re-sim fcd_ks", "best params"):
        t.add_column(col)
    for sid in report["subjects"]:
        f = report["fit"][sid]
        r = f["resim"]
        params = " ".join(f"{k}={v:.3g}" for k, v in f["best_params"].items())
        t.add_row(sid, _fmt(f["best_scores"].get(obj)), f"{_fmt(r['fc_r_mean'])} ± {_fmt(r['fc_r_sd'])}",
                  _fmt(r["fcd_ks_mean"]), params)
    console.print(t)
    _cross_session_summary(console, report.get("cross_session"))
    ind = report.get("individuality")
    if ind and not report.get("cross_session"):
        console.print(f"[bold]{within_session_note()}[/]", highlight=False)
    if ind:
        t = Table(title="individuality (twin i vs subject j)")
        for col in ("", "accuracy", "subject→twin", "p", "I_diff"):
            t.add_column(col)
        rows = [("twins", ind), ("residual", ind["residual"])]
        rows += [(k, v) for k, v in ind["baselines"].items() if v]
        for name, v in rows:
            t.add_row(name, _fmt(v.get("accuracy")), _fmt(v.get("accuracy_subject_to_twin")),
                      _fmt(v.get("p_value"), ".3g"), _fmt(v.get("i_diff")))
        console.print(t)
    for note in report.get("notes", []):
        console.print(f"- {note}")
    sims = report["simulations"]
    console.print(f"simulations: {sims['run']} run, {sims['reused']} reused")
    console.print(f"report: [bold]{out / 'index.html'}[/]" + (f" (MLflow run {run_id})" if run_id else ""))
