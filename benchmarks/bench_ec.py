"""EC fit speed on the 10 gw subject-sessions (issue 22: one 80-region subject-session in <= 10 s on one core).

    .venv/bin/python benchmarks/bench_ec.py [--g 0.5] [--rules lbfgs gec] > benchmarks/results/bench_ec.json

The cohort is experiments/gw_retest.yaml's (bundled gw, 80 cortical regions, ``split: 2``: 10
subject-sessions of 177 TRs) with features band-passed 0.008-0.08 Hz. Each is fitted with
:func:`explorer.ec.fit_ec` from G (``--g``), a = -0.02 and f per region =
``peak_frequency(bold, tr, band=(0.008, 0.08))``, with each rule and the default EcOptions. One BLAS
thread (set before numpy is imported). Per fit: wall and process CPU seconds (CPU time is the honest
figure on a loaded machine), iterations, wall and CPU ms per iteration, the median wall and CPU ms of one analytic
evaluation (:func:`explorer.ec.linear.fit_gradient`; L-BFGS-B may evaluate more than once per
iteration), analytic FC r at the start and the end; the load average before and after.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core: before numpy is imported
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from statistics import median  # noqa: E402

from bench_twins import cpu  # noqa: E402  (benchmarks/ is on the path of a script run from it)
from explorer.cohort import load_cohort  # noqa: E402
from explorer.config import load_config  # noqa: E402
from explorer.ec import EcOptions, connection_mask, empirical_targets, fit_ec  # noqa: E402
from explorer.ec.linear import fit_gradient  # noqa: E402
from explorer.scoring.features import peak_frequency  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BAND = (0.008, 0.08)
A = -0.02

def eval_ms(w, g, a, f, tau, target, repeat: int = 5) -> tuple[float, float]:
    """Median (wall, CPU) ms of one analytic evaluation (moments, loss and gradient) at ``w``."""
    wall, used = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fit_gradient(w, g, a, f, tau, target)
        wall.append((time.perf_counter() - t0) * 1e3)
        used.append((time.process_time() - c0) * 1e3)
    return median(wall), median(used)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--g", type=float, default=0.5, help="global coupling G of the start (1/s)")
    ap.add_argument("--rules", nargs="+", default=["lbfgs", "gec"])
    args = ap.parse_args(argv)

    cfg = load_config(ROOT / "experiments" / "gw_retest.yaml", **{"cohort.features.bandpass": list(BAND)})
    cohort = load_cohort(cfg.cohort.source, cfg.cohort.options)
    load_before = os.getloadavg()
    rows = []
    for s in cohort.subjects:
        f = peak_frequency(s.bold, s.tr_s, band=BAND)
        mask = connection_mask(s.weights, s.labels, "sc")
        for rule in args.rules:
            opts = EcOptions(rule=rule)
            target = empirical_targets(s.bold, s.tr_s, cohort.options.features, opts.lag_trs(s.tr_s))
            t0, c0 = time.perf_counter(), time.process_time()
            fit = fit_ec(s.weights, mask, args.g, A, f, target, s.tr_s, opts)
            wall, used = time.perf_counter() - t0, time.process_time() - c0
            one_wall, one_cpu = eval_ms(fit.weights, args.g, A, f, fit.tau_s, target)
            rows.append({"subject": s.id, "rule": rule, "n_trs": int(s.bold.shape[0]), "status": fit.status,
                         "wall_s": wall, "cpu_s": used, "iterations": fit.iterations,
                         "best_iteration": fit.best_iteration,
                         "ms_per_iteration": wall / max(fit.iterations, 1) * 1e3,
                         "cpu_ms_per_iteration": used / max(fit.iterations, 1) * 1e3,
                         "eval_ms": one_wall, "eval_cpu_ms": one_cpu,
                         "fc_r_start": fit.fc_r_start, "fc_r": fit.fc_r, "loss_start": fit.loss_start,
                         "loss": fit.loss})
    summary = {rule: {k: median(r[k] for r in rows if r["rule"] == rule)
                      for k in ("wall_s", "cpu_s", "iterations", "ms_per_iteration", "cpu_ms_per_iteration",
                                "eval_ms", "eval_cpu_ms", "fc_r_start", "fc_r")} | {
                   "max_cpu_s": max(r["cpu_s"] for r in rows if r["rule"] == rule)} for rule in args.rules}
    print(json.dumps({
        "benchmark": "ec_fit_speed", "cpu": cpu(), "threads": os.environ.get("OMP_NUM_THREADS"),
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
        "cohort": "gw_retest (demo, split 2), features band-passed 0.008-0.08 Hz",
        "regions": int(cohort.subjects[0].weights.shape[0]), "subject_sessions": len(cohort),
        "start": {"G": args.g, "a": A, "f": f"peak_frequency(bold, tr, band={BAND})"},
        "ec_options": {rule: EcOptions(rule=rule).to_dict() for rule in args.rules},
        "median": summary, "fits": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
