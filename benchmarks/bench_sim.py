"""Simulator speed on the 80-region AAL2 connectome (gw subject NAP_001): JSON lines on stdout.

    .venv/bin/python benchmarks/bench_sim.py [--models rww_ei hopf] [--batch 1 8 32 64] [--duration-s 60]
        [--dtype float64 float32] [--repeat 1] [--noise-sigma 0]

Builds weights/lengths from the bundled gw data (explorer/cohort/data/gw, else ../shared/data/gw):
drop the 14 subcortical regions (indices 40-45, 74-81), normalise weights by their max, zero the
diagonal; writes them to a temporary .npz and runs ``explorer bench`` on it (dt 0.1 ms,
velocity 20 m/s, BOLD TR 2 s), one process per batch size.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CANDIDATES = [ROOT / "explorer" / "cohort" / "data" / "gw", ROOT.parent / "shared" / "data" / "gw",
              Path("/work/shared/data/gw")]
DROP = list(range(40, 46)) + list(range(74, 82))


def aal80(subject: str = "NAP_001") -> tuple[np.ndarray, np.ndarray]:
    """(weights, lengths) of one gw subject on the 80 cortical AAL2 regions."""
    from scipy.io import loadmat

    for base in CANDIDATES:
        d = base / "subjects" / subject / "structural"
        if (d / "DTI_CM.mat").is_file():
            w = np.asarray(loadmat(d / "DTI_CM.mat")["sc"], dtype=float)
            ln = np.asarray(loadmat(d / "DTI_LEN.mat")["len"], dtype=float)
            keep = [i for i in range(w.shape[0]) if i not in DROP]
            w = w[np.ix_(keep, keep)]
            ln = ln[np.ix_(keep, keep)]
            np.fill_diagonal(w, 0.0)
            return w / w.max(), ln
    sys.exit(f"gw data not found in any of {[str(c) for c in CANDIDATES]}")


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
                cfg = dict(model=model, connectome=str(path), duration_s=args.duration_s, dt_ms=0.1, velocity=20.0,
                           bold_tr_s=2.0, bold_monitor="balloon", noise_sigma=args.noise_sigma, dtype=dtype,
                           integrator="euler", repeat=args.repeat)
                for rec in bench(cfg, args.batch):
                    print(json.dumps(rec), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
