"""Simulator speed on the 80-region AAL2 connectome (gw subject NAP_001): JSON lines on stdout.

    .venv/bin/python benchmarks/bench_sim.py [--models rww_ei hopf] [--batch 1 8 32 64] [--duration-s 60]
        [--dtype float64 float32] [--repeat 1] [--noise-sigma 0]

Takes weights/lengths from the bundled gw demo cohort (explorer.cohort.demo(): the 14 subcortical
regions dropped, zero diagonal, weights divided by their max), writes them to a temporary .npz and
runs ``explorer bench`` on it (dt 0.1 ms, velocity 20 m/s, BOLD TR 2 s, no transient), one process per
batch size.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def aal80(subject: str = "NAP_001") -> tuple[np.ndarray, np.ndarray]:
    """(weights, lengths in mm) of one bundled gw subject on its 80 cortical AAL2 regions.

    The demo cohort's defaults: subcortical regions dropped, zero diagonal, weights / max.
    """
    from explorer.cohort import demo

    s = demo()[subject]
    return s.weights, s.lengths


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["rww_ei", "hopf"])
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8, 32, 64])
    ap.add_argument("--duration-s", type=float, default=60.0)
    ap.add_argument("--dtype", nargs="+", default=["float64", "float32"])
    ap.add_argument("--noise-sigma", type=float, default=0.0)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from explorer.sim.bench import bench

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "aal80.npz"
        w, ln = aal80()
        np.savez(path, weights=w, lengths=ln)
        for model in args.models:
            for dtype in args.dtype:
                cfg = dict(model=model, connectome=str(path), duration_s=args.duration_s, transient_s=0.0,
                           dt_ms=0.1, velocity=20.0,
                           bold_tr_s=2.0, bold_monitor="balloon", noise_sigma=args.noise_sigma, dtype=dtype,
                           integrator="euler", repeat=args.repeat)
                for rec in bench(cfg, args.batch):
                    print(json.dumps(rec), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
