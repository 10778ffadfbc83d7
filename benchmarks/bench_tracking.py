"""Cost of MLflow logging per trial (child run: create_run + log_batch + set_terminated), and of
writing one trial's signals to the zarr store. Prints JSON.

    python benchmarks/bench_tracking.py [--trials 200] [--regions 80] [--trs 1200]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--batch", type=int, default=8, help="records per log_trials call (the driver's batch)")
    ap.add_argument("--regions", type=int, default=80)
    ap.add_argument("--trs", type=int, default=300)
    args = ap.parse_args()

    from explorer.records import TrialRecord
    from explorer.store import SignalStore
    from explorer.tracking import Tracker

    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        tr = Tracker(f"sqlite:///{Path(d) / 'mlflow.db'}", "bench", artifact_location=str(Path(d) / "mlartifacts"))
        open_s = time.perf_counter() - t0
        recs = [TrialRecord(subject="S1", number=i, params={"G": 0.5 + i * 1e-3, "J_NMDA": 0.15, "w_p": 1.4},
                            seed=i, state="COMPLETE", scores={"fc_r": 0.4, "fc_rmse": 0.2, "fcd_ks": 0.3},
                            sim_seconds=60.0, wall_seconds=2.0, signals=f"{d}/signals.zarr/x/{i}")
                for i in range(args.trials)]
        tr.parent_run("S1")
        t0 = time.perf_counter()
        for i in range(0, args.trials, args.batch):
            tr.log_trials("S1", recs[i:i + args.batch])
        log_ms = 1000 * (time.perf_counter() - t0) / args.trials

        store = SignalStore(str(Path(d) / "signals.zarr"))
        rng = np.random.default_rng(0)
        bold = rng.standard_normal((args.trs, args.regions)).astype(np.float32)
        fc = np.corrcoef(bold.T).astype(np.float32)
        n = min(args.trials, 50)
        t0 = time.perf_counter()
        for i in range(n):
            store.write_trial(TrialRecord(subject="S1", number=i, params={"G": 0.5}, seed=i, state="COMPLETE",
                                          scores={"fc_r": 0.4}), bold, fc, tr_s=2.0)
        write_ms = 1000 * (time.perf_counter() - t0) / n
        t0 = time.perf_counter()
        store.pack("S1")
        pack_s = time.perf_counter() - t0
    print(json.dumps({"mlflow_open_s": round(open_s, 3), "mlflow_log_ms_per_trial": round(log_ms, 2),
                      "zarr_write_ms_per_trial": round(write_ms, 2), "zarr_pack_s": round(pack_s, 3),
                      "trials": args.trials, "regions": args.regions, "trs": args.trs,
                      "backend": "sqlite (embedded default)"}))


if __name__ == "__main__":
    main()
