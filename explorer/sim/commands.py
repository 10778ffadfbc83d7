"""`explorer bench`: simulator speed on a connectome, one JSON object per batch size (:mod:`explorer.sim.bench`).

    explorer bench --model rww_ei --connectome FILE.npz --duration-s 60 --transient-s 0 --dt-ms 0.1 \\
        --velocity 20 --bold-tr-s 2 --noise-sigma 0 --batch 1 8 32 --json

FILE.npz holds ``weights`` and ``lengths`` (mm). Run settings left out take
:class:`~explorer.sim.settings.RunSettings`'s defaults (a study's); the BOLD TR defaults to 2 s.

Cheap to import (the CLI builds its parser from it): numpy, the numba models and the simulator are
imported only when a benchmark runs.
"""

from __future__ import annotations

import argparse
import json
import os

from explorer.errors import OptionError, SimulationError
from explorer.sim.bench import bench
from explorer.sim.settings import BOLD_MONITORS, DTYPES, INTEGRATORS, RunSettings


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="rww_ei", help="registered model name (default rww_ei)")
    parser.add_argument("--connectome", required=True, metavar="FILE.npz",
                        help="npz with arrays 'weights' (N, N) and 'lengths' (N, N, mm)")
    d = RunSettings()
    parser.add_argument("--duration-s", type=float, default=d.duration_s,
                        help="recorded simulated seconds (default %(default)s)")
    parser.add_argument("--transient-s", type=float, default=d.transient_s,
                        help="simulated seconds before recording (default %(default)s)")
    parser.add_argument("--dt-ms", type=float, default=d.dt_ms, help="integration step in ms (default %(default)s)")
    parser.add_argument("--velocity", type=float, default=d.velocity,
                        help="conduction velocity m/s (default %(default)s)")
    parser.add_argument("--bold-tr-s", type=float, default=2.0, help="BOLD TR in s; 0 turns BOLD off (default 2)")
    parser.add_argument("--bold-monitor", default=d.bold_monitor, choices=list(BOLD_MONITORS))
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8, 32], help="batch sizes (default 1 8 32)")
    parser.add_argument("--noise-sigma", type=float, default=d.noise_sigma,
                        help="noise amplitude (default %(default)s)")
    parser.add_argument("--dtype", default=d.dtype, choices=list(DTYPES),
                        help="simulation precision (default %(default)s)")
    parser.add_argument("--integrator", default=d.integrator, choices=list(INTEGRATORS))
    parser.add_argument("--repeat", type=int, default=1, help="runs per batch size; wall_s is the fastest")
    parser.add_argument("--json", action="store_true", help="print JSON lines only (no table)")


def bench_command(args: argparse.Namespace) -> int:
    if not os.path.isfile(args.connectome):
        raise SimulationError(f"--connectome {args.connectome}: no such file; give an .npz with "
                              f"'weights' and 'lengths'")
    import numpy as np

    with np.load(args.connectome) as data:
        missing = [k for k in ("weights", "lengths") if k not in data]
    if missing:
        raise SimulationError(f"--connectome {args.connectome} lacks array(s) {missing}")
    if any(b < 1 for b in args.batch):
        raise SimulationError("--batch sizes must be >= 1")
    from explorer.models import get_model   # numba: not for `explorer --help`, which imports this module

    get_model(args.model)
    run = dict(duration_s=args.duration_s, transient_s=args.transient_s, dt_ms=args.dt_ms, velocity=args.velocity,
               noise_sigma=args.noise_sigma, dtype=args.dtype, integrator=args.integrator,
               bold_monitor=args.bold_monitor)
    try:
        RunSettings(**run, bold_tr_s=args.bold_tr_s or None)
    except OptionError as exc:
        raise SimulationError("; ".join(f"--{f.replace('_', '-')}: {m}" for f, m in exc.problems)) from None
    cfg = dict(model=args.model, connectome=os.path.abspath(args.connectome), bold_tr_s=args.bold_tr_s,
               repeat=args.repeat, **run)
    records = []
    for B in args.batch:
        rec = bench(cfg, [B])[0]
        records.append(rec)
        keys = ("model", "n_regions", "batch", "duration_s", "dt_ms", "wall_s", "compile_s",
                "sim_s_per_wall_s", "peak_rss_mb")
        if args.json:
            print(json.dumps({k: rec[k] for k in keys} | {k: rec[k] for k in rec if k not in keys}), flush=True)
        else:
            from rich.console import Console

            Console().print(f"{rec['model']} N={rec['n_regions']} batch={B}: {rec['sim_s_per_wall_s']} sim-s/wall-s "
                            f"(wall {rec['wall_s']} s, compile {rec['compile_s']} s, "
                            f"peak RSS {rec['peak_rss_mb']} MB; {rec['cpu_model']}, {rec['cores']} cores, "
                            f"{rec['isa']}, L2 {rec['l2_per_core_kib']} KiB/core; tiles of {rec['tile']} trials, "
                            f"delay buffer {rec['tile_buffer_kib']} KiB per tile"
                            f"{'' if rec['buffer_fits_l2'] else ', beyond L2'})")
    return 0
