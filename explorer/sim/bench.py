"""Simulator speed on a connectome, one JSON record per batch size (`explorer bench`:
:mod:`explorer.sim.commands`).

The connectome is an .npz holding ``weights`` and ``lengths`` (mm). Each batch size runs in its own
process (one thread), so ``peak_rss_mb`` is that run's honest peak resident memory (Python, numba and xarray
included) and ``compile_s`` is that process's JIT time. ``wall_s`` excludes compilation.
``sim_s_per_wall_s = batch * (transient_s + duration_s) / wall_s``: every simulated second.
Each record also describes the machine (``cores``, ``cpu_model``, ``isa``: AVX-512, AVX2, ...,
``l2_per_core_kib``, ``llvm_target_cpu``) and the batch tiling: ``tile`` trials per tile, ``tiles``,
``tile_buffer_kib`` (the delay buffer of one tile) and ``buffer_fits_l2``.

Cheap to import (the CLI's parser imports :mod:`explorer.sim.commands`, which imports this): numpy,
the numba models and the simulator are imported only when a benchmark runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from explorer.errors import SimulationError

_THREAD_VARS = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def run_one(cfg: dict[str, Any]) -> dict[str, Any]:
    """Run one batch size in this process and return its JSON record."""
    import resource

    import numpy as np

    # numba models and kernels: not for `explorer --help`, which imports this module (via sim.commands)
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
