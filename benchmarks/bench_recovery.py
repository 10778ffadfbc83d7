"""Parameter recovery on synthetic twins: known G and a on the 5 bundled connectomes, fitted back.

Builds the synthetic cohort with :func:`explorer.cohort.synthetic` (Hopf at the BOLD time scale),
saves it as a manifest, fits it with a real study (Optuna TPE on Ray actors), runs
``explorer report`` on it and prints the report's ``recovery`` section, plus the individuality
figures of these twins, as JSON. The suite's ``test_synthetic_twins_are_recovered`` runs the same.

    .venv/bin/python benchmarks/bench_recovery.py --trials 80 --duration-s 5600
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

TRUTH = [{"G": 0.6, "a": -0.03}, {"G": 0.9, "a": -0.015}, {"G": 1.2, "a": -0.04}, {"G": 1.5, "a": -0.02},
         {"G": 1.8, "a": -0.05}]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=80, help="trials per subject")
    ap.add_argument("--duration-s", type=float, default=5600.0, help="simulated (and 'empirical') seconds")
    ap.add_argument("--objective", default="fc_r_minus_fcd_ks")
    ap.add_argument("--seeds", type=int, default=3, help="fresh seeds of the report's re-simulations")
    args = ap.parse_args(argv)

    from explorer.cohort import save_manifest, synthetic
    from explorer.config import parse_config
    from explorer.study.frozen import save_frozen
    from explorer.report.commands import create_report
    from explorer.runner.driver import run_study

    sim = {"duration_s": args.duration_s, "dt_ms": 100, "transient_s": 60, "noise_sigma": 0.02, "bold_tr_s": 2.0,
           "bold_monitor": "sample", "velocity": 20}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        manifest = save_manifest(synthetic(model="hopf", truth=TRUTH, seed=1, **sim), Path(tmp) / "twins")
        cfg = parse_config({
            "name": "recovery", "studies_dir": str(Path(tmp) / "studies"),
            "cohort": {"source": str(manifest), "drop": [], "normalise": "none", "zero_diagonal": False,
                       "features": {"bandpass": None, "fcd_window": 30}},
            "model": "hopf", "params": {"free": {"G": {"low": 0.2, "high": 2.5}, "a": {"low": -0.08, "high": -0.005}}},
            "simulation": sim, "objective": args.objective, "trials": args.trials,
            "sampler": {"name": "tpe", "seed": 0, "options": {"n_startup_trials": 10, "multivariate": True}},
            "store": {"mode": "none"}, "ray": {"actors": 2, "batch_size": 8}})
        save_frozen(cfg)
        run_study(cfg)
        report, _, _ = create_report(cfg.study_dir, seeds=args.seeds, mlflow=False)
        ind = report["individuality"]
        print(json.dumps({
            "model": "hopf", "objective": args.objective, "trials_per_subject": args.trials,
            "duration_s": args.duration_s, "truth": TRUTH, "recovery": report["recovery"],
            "fc_r_resim_median": report["summary"]["fc_r_resim_median"],
            "individuality": {"accuracy": ind["accuracy"], "p_value": ind["p_value"], "i_diff": ind["i_diff"],
                              "residual_accuracy": ind["residual"]["accuracy"],
                              "residual_i_diff": ind["residual"]["i_diff"]},
            "wall_s": round(time.perf_counter() - t0, 1)}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
