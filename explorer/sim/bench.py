"""`explorer bench`: simulator speed on a connectome, one JSON object per batch size.

    explorer bench --model rww_ei --connectome FILE.npz --duration-s 60 --transient-s 0 --dt-ms 0.1 \\
        --velocity 20 --bold-tr-s 2 --noise-sigma 0 --batch 1 8 32 --json

FILE.npz holds ``weights`` and ``lengths`` (mm). Each batch size runs in its own process (one
thread), so ``peak_rss_mb`` is that run's honest peak resident memory (Python, numba and xarray
included) and ``compile_s`` is that process's JIT time. ``wall_s`` excludes compilation.
``sim_s_per_wall_s = batch * (transient_s + duration_s) / wall_s``: every simulated second.
Each record also describes the machine (``cores``, ``cpu_model``, ``isa``: AVX-512, AVX2, ...,
``l2_per_core_kib``, ``llvm_target_cpu``) and the batch tiling: ``tile`` trials per tile, ``tiles``,
``tile_buffer_kib`` (the delay buffer of one tile) and ``buffer_fits_l2``.
Run settings left out take :class:`~explorer.sim.settings.RunSettings`'s defaults (a study's);
the BOLD TR defaults to 2 s.

Cheap to import (the CLI builds its parser from it): numpy, the numba models and the simulator
are imported only when a benchmark runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any

from explorer.errors import OptionError, SimulationError
from explorer.sim.settings import BOLD_MONITORS, DTYPES, INTEGRATORS, RunSettings

_THREAD_VARS = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def add_arguments(parser: argparse.ArgumentParser) -> None:
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


def run_one(cfg: dict[str, Any]) -> dict[str, Any]:
    """Run one batch size in this process and return its JSON record."""
    import resource

    import numpy as np

    from explorer.models import get_model
    from explorer.sim import simulate, warmup
    from explorer.sim.connectome import build_connectome
    from explorer.sim.kernel import buffer_bytes, machine_info, model_tile_width, tile_fits_l2

    data = np.load(cfg["connectome"])
    w, ln = data["weights"], data["lengths"]
    compile_s = warmup(cfg["model"], cfg["dtype"])
    B = int(cfg["batch"])
    conn = build_connectome(w, ln, float(cfg["velocity"]), float(cfg["dt_ms"]))
    model = get_model(cfg["model"])
    shape = (conn.n, conn.max_delay + 1, len(model.coupled_states), cfg["dtype"])
    tile = min(B, model_tile_width(model, conn.n, conn.max_delay + 1, cfg["dtype"]))
    machine = machine_info()
    tr = cfg["bold_tr_s"] if cfg["bold_tr_s"] else None
    walls = []
    for _ in range(max(1, int(cfg["repeat"]))):
        ds = simulate(cfg["model"], w, ln, [{}] * B, duration_s=cfg["duration_s"], dt_ms=cfg["dt_ms"],
                      velocity=cfg["velocity"], noise_sigma=cfg["noise_sigma"], seed=0, tavg_ms=None,
                      bold_tr_s=tr, transient_s=cfg["transient_s"], dtype=cfg["dtype"],
                      integrator=cfg["integrator"], bold_monitor=cfg["bold_monitor"])
        walls.append(float(ds.attrs["wall_s"]))
    wall = min(walls)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    return {
        "model": cfg["model"], "n_regions": int(w.shape[0]), "batch": B, "duration_s": cfg["duration_s"],
        "transient_s": cfg["transient_s"], "dt_ms": cfg["dt_ms"], "wall_s": round(wall, 4),
        "compile_s": round(compile_s, 3),
        "sim_s_per_wall_s": round(B * (cfg["transient_s"] + cfg["duration_s"]) / wall, 3),
        "peak_rss_mb": round(rss, 1),
        "dtype": cfg["dtype"], "noise_sigma": cfg["noise_sigma"], "diverged": int(ds["diverged"].sum()),
        "wall_s_all": [round(x, 4) for x in walls],
        "cores": machine["cores"], "cpu_model": machine["cpu_model"], "isa": machine["isa"],
        "l2_per_core_kib": machine["l2_per_core_bytes"] // 1024, "l2_source": machine["l2_source"],
        "llvm_target_cpu": machine["llvm_target_cpu"],
        "tile": tile, "tiles": -(-B // tile), "max_delay_steps": conn.max_delay,
        "tile_buffer_kib": round(buffer_bytes(*shape, tile) / 1024, 1),
        "buffer_fits_l2": bool(tile_fits_l2(*shape, tile, machine["l2_per_core_bytes"])),
    }


def _worker() -> None:  # entry point of the per-batch subprocess
    cfg = json.loads(sys.argv[1])
    print(json.dumps(run_one(cfg)), flush=True)


def bench(cfg: dict[str, Any], batches: list[int], pythonpath: str | None = None) -> list[dict[str, Any]]:
    """Run each batch size in a fresh single-threaded subprocess; returns the records.

    ``pythonpath``: a folder holding another ``explorer`` package to benchmark instead (e.g. a
    checkout of an earlier version, for before/after figures side by side).
    """
    env = dict(os.environ)
    for var in _THREAD_VARS:
        env[var] = "1"
    cwd = None
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([pythonpath] + [p for p in [env.get("PYTHONPATH")] if p])
        cwd = pythonpath  # `python -c` puts the working directory first on sys.path: not this checkout's
    out = []
    for B in batches:
        proc = subprocess.run([sys.executable, "-c", "from explorer.sim.bench import _worker; _worker()",
                               json.dumps({**cfg, "batch": B})], capture_output=True, text=True, env=env, cwd=cwd)
        if proc.returncode != 0:
            raise SimulationError(f"benchmark of batch {B} failed:\n{proc.stderr.strip()[-2000:]}")
        out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return out


def command(args: argparse.Namespace) -> int:
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
    from explorer.models import get_model

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
