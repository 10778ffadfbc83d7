"""Individual twins, side by side (issue "Individual twins"): the table of the README's report section.

Runs ``experiments/gw_ec.yaml`` (gw, ``split: 2``, band-passed 0.008-0.08 Hz) as a real study: the
search of G and a per subject-session, then the EC stage, then ``explorer report`` with fresh seeds.
From the report it prints one JSON row per method:

- ``global_twin``, ``ec_twin_analytic``, ``ec_twin_simulated``: fit r on the fitted session (median),
  self r on the unseen session (median), cross-session identification (hits/n and exact p, both
  directions), I_diff raw and residual, wall time per subject-session;
- ``empirical_fc`` (FC_a -> FC_b), ``partial_corr`` (a -> b), ``ec`` (EC_a -> EC_b): the same without fit r.

Wall time per subject-session: the global twin's is the search's actor time (simulate_s of
runs.jsonl) per subject-session; the EC twin adds the EC fit's median; the simulated EC twin adds the
report's re-simulations of it (actor time per subject-session).

    .venv/bin/python benchmarks/bench_ec_twins.py --out benchmarks/results/bench_ec_twins.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bench_twins import cpu

ROOT = Path(__file__).resolve().parent.parent


def table(report: dict, study_dir: Path, report_s: float) -> list[dict]:
    """The rows of the table from a report dict and its study's runs.jsonl."""
    xs = report["cross_session"]
    n_sub = len(report["subjects"])
    runs = [json.loads(x) for x in (study_dir / "runs.jsonl").read_text().splitlines() if x.strip()]
    search_s = sum(r.get("simulate_s", 0.0) for r in runs) / max(n_sub, 1)
    ec_s = [r["wall_s"] for r in (report.get("ec") or {}).values() if r.get("wall_s") is not None]
    ec_med = sorted(ec_s)[len(ec_s) // 2] if ec_s else None
    sims = report["simulations"]
    resim_per_sim = sims["simulate_s"] / sims["run"] if sims["run"] else None
    walls = {"global_twin": search_s,
             "ec_twin_analytic": None if ec_med is None else search_s + ec_med,
             "ec_twin_simulated": None if ec_med is None or resim_per_sim is None
             else search_s + ec_med + resim_per_sim * report["seeds"]}
    rows = []
    for method, m in xs["methods"].items():
        if m is None:
            continue
        row = {"method": method, "label": m["label"], "wall_s_per_subject": walls.get(method)}
        for d, (a, b) in zip(m["directions"], xs["directions"]):
            tag = f"{a}->{b}"
            row[f"fit_r_{tag}"] = d.get("fit_r")
            row[f"self_r_unseen_{tag}"] = d.get("self_r")
            row[f"identified_{tag}"] = f"{d['hits']}/{d['n']}"
            row[f"p_exact_{tag}"] = d.get("p_value")
            row[f"i_diff_{tag}"] = d.get("i_diff")
            row[f"i_diff_residual_{tag}"] = (d.get("residual") or {}).get("i_diff")
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", nargs="?", default=str(ROOT / "experiments" / "gw_ec.yaml"))
    ap.add_argument("--seeds", type=int, default=5, help="fresh noise seeds of the re-simulations")
    ap.add_argument("--trials", type=int, default=None, help="trials per subject-session (default: the config's)")
    ap.add_argument("--actors", type=int, default=None)
    ap.add_argument("--studies", default="/tmp/bench_ec_twins", help="where the study folder goes")
    ap.add_argument("--out", default=None, help="also write the result to this JSON file")
    args = ap.parse_args(argv)

    from explorer.config import load_config
    from explorer.report.commands import create_report
    from explorer.runner.driver import run_study
    from explorer.study.frozen import save_frozen

    cfg = load_config(args.config, studies_dir=args.studies, trials=args.trials)
    save_frozen(cfg)
    t0 = time.perf_counter()
    result = run_study(cfg, actors=args.actors)
    study_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    report, _, _ = create_report(cfg.study_dir, seeds=args.seeds, actors=args.actors, mlflow=False)
    report_s = time.perf_counter() - t1
    out = {"config": Path(args.config).name, "model": cfg.model, "subjects": len(report["subjects"]),
           "trials_per_subject": cfg.n_trials, "seeds": args.seeds, "ec": cfg.ec.to_dict(),
           "features": cfg.cohort.features.to_dict(), "duration_s": cfg.simulation.duration_s,
           "dt_ms": cfg.simulation.dt_ms, "actors": result.actors, "study_wall_s": round(study_s, 1),
           "report_wall_s": round(report_s, 1), "cpu": cpu(), "headline": report["cross_session"]["headline"],
           "ec_per_subject": report.get("ec"), "icc": report["cross_session"]["icc"],
           "table": table(report, cfg.study_dir, report_s)}
    text = json.dumps(out, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
