"""Actor utilisation in a real sweep: the fraction of actor wall time spent inside simulate().

Runs a real study (demo cohort, Optuna TPE, zarr store, MLflow tracking, Ray actors) in a
temporary folder and prints JSON: a small built-in rww_ei study, or any config with --config.

    .venv/bin/python benchmarks/bench_overhead.py --duration-s 300 --dt-ms 0.1 --trials 8 --batch-size 4
    .venv/bin/python benchmarks/bench_overhead.py --config experiments/gw_fit.yaml --actors 2   # short trials

utilisation       = sum of actor time inside simulate() / (actors x driver wall time of the sweep)
actor_busy        = sum of actor time inside run_batch() / (actors x driver wall time)
                    (the difference to utilisation is scoring + signal writes inside the actor)
score_s, store_s  = actor time scoring trials and writing their signals (parts of actor_call_s)
startup_s         = Ray start + actor JIT warm-up + cohort loading (paid once per run, excluded)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=None, help="run this study config (its trials, cohort, batch size) instead")
    ap.add_argument("--model", default="rww_ei")
    ap.add_argument("--duration-s", type=float, default=300.0, help="simulated seconds per trial")
    ap.add_argument("--dt-ms", type=float, default=0.1)
    ap.add_argument("--trials", type=int, default=None, help="trials per subject (default 8, or the config's)")
    ap.add_argument("--subjects", nargs="+", default=["NAP_001", "NAP_002"])
    ap.add_argument("--batch-size", type=int, default=None, help="upper bound of trials per call "
                    "(default 4, or the config's)")
    ap.add_argument("--actors", type=int, default=None, help="default: one per CPU")
    ap.add_argument("--store", default="all", choices=["all", "best", "none"])
    ap.add_argument("--children", default=None, choices=["auto", "all", "best_k", "none"],
                    help="tracking.children (default: the config's, else auto)")
    args = ap.parse_args(argv)

    from explorer.config import load_config, parse_config
    from explorer.runner.driver import run_study

    free = {"G": {"low": 0.5, "high": 3.0}, "w_plus": {}} if args.model == "rww_ei" else {"G": {}}
    with tempfile.TemporaryDirectory(prefix="bench_overhead_") as tmp:
        if args.config:
            cfg = load_config(args.config, studies_dir=tmp, trials=args.trials, **{"ray.actors": args.actors,
                              "ray.batch_size": args.batch_size, "tracking.children": args.children})
        else:
            cfg = parse_config({
                "name": "bench_overhead", "studies_dir": tmp, "model": args.model,
                "cohort": {"source": "demo", "subjects": args.subjects},
                "params": {"free": free},
                "simulation": {"duration_s": args.duration_s, "dt_ms": args.dt_ms, "transient_s": 0},
                "trials": args.trials or 8, "store": {"mode": args.store},
                "ray": {"actors": args.actors, "batch_size": args.batch_size or 4},
                "tracking": {"children": args.children or "auto"},
            })
        r = run_study(cfg)
        wall = r.driver_wall_s
        out = {
            "utilisation": round(r.utilisation, 4) if r.utilisation is not None else None,
            "actor_busy": round(r.actor_call_s / (r.actors * wall), 4) if wall else None,
            "config": args.config, "model": cfg.model, "regions": 80, "duration_s": cfg.simulation.duration_s,
            "dt_ms": cfg.simulation.dt_ms, "batch_size": cfg.ray.batch_size, "call_s": cfg.ray.call_s,
            "trials_per_call": round(r.trials_run / r.calls, 2) if r.calls else None,
            "actors": r.actors, "subjects": len(r.subjects),
            "trials": r.trials_run, "driver_wall_s": round(wall, 2), "startup_s": round(r.startup_s, 2),
            "simulate_s": round(r.simulate_s, 2), "actor_call_s": round(r.actor_call_s, 2),
            "score_s": round(r.score_s, 2), "store_s": round(r.store_s, 2),
            "trial_wall_s": round(r.actor_call_s / max(1, r.trials_run), 3),
            "trials_per_min": round(r.trials_per_min, 2), "store": cfg.store.mode, "cpus": os.cpu_count(),
            "children": cfg.tracking.children,
        }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
