"""EC recovery on synthetic twins (issue 22, item 5): a known EC per subject, fitted back; JSON.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_ec_recovery.py [--subjects 5] [--trs 355 1200]
        [--sigma 1.0] [--rule lbfgs] > benchmarks/results/bench_ec_recovery.json

The start is the bundled gw SC of NAP_001 (80 cortical regions, weights / max, mask SC > 0). Subject i's
true EC is that SC times exp(sigma N(0, 1)) on every masked edge (seed i); its BOLD is simulated with
the nonlinear Hopf model (G 0.5, a -0.02, f per region drawn in 0.04-0.07 Hz, noise 0.02, dt 100 ms,
x sampled every 2 s) for each session length in ``--trs``, and preprocessed two ways: band-passed
0.008-0.08 Hz (the issue's features) and unfiltered (detrended, z-scored). The EC is fitted from the
SC with the true G, a, f (:func:`explorer.ec.recovery.recover_ec`). Per subject: the edge-wise r of the
fitted EC and of the SC with the true EC, over the mask.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core: before numpy is imported
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from statistics import median  # noqa: E402

import numpy as np  # noqa: E402

from bench_twins import cpu  # noqa: E402  (benchmarks/ is on the path of a script run from it)
from explorer.cohort import demo  # noqa: E402
from explorer.ec import EcOptions, connection_mask  # noqa: E402
from explorer.ec.recovery import recover_ec  # noqa: E402
from explorer.scoring.options import FeatureOptions  # noqa: E402

G, A, NOISE = 0.5, -0.02, 0.02
PREPROCESSING = {"bandpass_0.008-0.08": FeatureOptions(bandpass=(0.008, 0.08)),
                 "unfiltered": FeatureOptions(bandpass=None)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subjects", type=int, default=5)
    ap.add_argument("--trs", type=int, nargs="+", default=[355, 1200], help="session lengths in TRs")
    ap.add_argument("--sigma", type=float, default=1.0, help="log-normal spread of the true EC around the SC")
    ap.add_argument("--rule", default="lbfgs", choices=["lbfgs", "gec"])
    ap.add_argument("--max-iter", type=int, default=300)
    args = ap.parse_args(argv)

    s = demo().subjects[0]
    w = s.weights / s.weights.max()
    mask = connection_mask(w, s.labels, "sc")
    f = np.random.default_rng(100).uniform(0.04, 0.07, w.shape[0])
    opts = EcOptions(rule=args.rule, max_iter=args.max_iter)
    runs = []
    t0, c0 = time.perf_counter(), time.process_time()
    for n_trs in args.trs:
        for name, features in PREPROCESSING.items():
            got = recover_ec(w, s.lengths, mask, g=G, a=A, f_hz=f, seeds=range(args.subjects), sigma=args.sigma,
                             n_trs=n_trs, features=features, opts=opts, noise_sigma=NOISE)
            runs.append({"n_trs": n_trs, "preprocessing": name, "features": features.to_dict(),
                         "r_fit_median": median(r.r_fit for r in got), "r_sc_median": median(r.r_sc for r in got),
                         "fit_beats_sc": sum(r.r_fit > r.r_sc for r in got),
                         "subjects": [r.to_dict() for r in got]})
    print(json.dumps({
        "benchmark": "ec_recovery", "cpu": cpu(), "threads": os.environ.get("OMP_NUM_THREADS"),
        "loadavg": os.getloadavg(), "model": "hopf (nonlinear simulation; linearised fit)",
        "regions": int(w.shape[0]), "edges": int(mask.sum()), "base_sc": f"gw {s.id}, weights / max",
        "truth": f"SC * exp({args.sigma} N(0,1)) per masked edge, seed = subject", "G": G, "a": A,
        "f_hz": "uniform(0.04, 0.07) per region, seed 100", "noise_sigma": NOISE, "dt_ms": 100, "tr_s": 2.0,
        "ec_options": opts.to_dict(), "runs": runs, "wall_s": time.perf_counter() - t0,
        "cpu_s": time.process_time() - c0}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
