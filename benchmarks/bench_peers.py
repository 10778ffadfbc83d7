"""Peer simulators on explorer's benchmark: neurolib 0.6.2 and cuBNM 0.1.0 (CPU path), one core each.

    .venv/bin/python benchmarks/bench_peers.py [--peers neurolib cubnm] [--models rww_ei hopf]
        [--duration-s 60] [--repeat 3] [--peer-python PYTHON]

Prints one JSON line per peer and model: its best ``sim_s_per_wall_s`` (simulated seconds per wall
second on one core, every simulation counted) over ``--repeat`` fresh processes, or ``skipped`` with
the reason when the peer is not installed. ``benchmarks/bench_sim.py --peers ...`` runs the same peers
side by side with explorer, alternating, and prints the ratios.

The peers are the ``peers`` extra (``pip install -e ".[peers]"``). cuBNM 0.1.0 pins numpy < 2, so keep
them in an environment of their own and point ``--peer-python`` (or ``EXPLORER_PEER_PYTHON``) at its
interpreter: the peer runs in that interpreter, which needs numpy and the peer only (not explorer).

Settings, the same as explorer's benchmark: the 80-region gw connectome (NAP_001), dt 0.1 ms, delays
at 20 m/s, BOLD at TR 2 s, no transient, ``OMP_NUM_THREADS=1`` (and every other thread count 1).

- neurolib: ``WWModel`` (rww_ei) and ``HopfModel`` (hopf) with their default parameters,
  ``sigma_ou = 0`` (no noise, as explorer's neurolib comparison), ``run(chunkwise=True, bold=True)``
  (2 s chunks, its BOLD model online). A 1 s run first compiles its numba code; the timed run follows.
- cuBNM: ``rWWSimGroup`` (rww_ei only) on its CPU path (``force_cpu=True``: one simulation per
  OpenMP thread, so ``--cubnm-sims`` simulations run one after the other on the one thread),
  ``dt="0.1"``, ``bw_dt="1.0"`` (its Balloon-Windkessel at 1 ms, as explorer's), ``do_fic=False``,
  ``do_fcd=False``, ``gof_terms=["+fc_corr"]``, ``bold_remove_s=0``, G 0.5, ``v`` 20, its default
  noise (``sigma`` 0.01, so compare with explorer run with noise: ``--noise-sigma 0.01``). Its weights
  are rows-as-sources: it gets ``W.T`` (and ``lengths.T``) for explorer's ``W[i, j]`` = j -> i. The
  first ``run()`` initialises its session (and draws its noise); the second is timed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
THREAD_VARS = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
PEERS = ("neurolib", "cubnm")
#: the explorer models each peer has
PEER_MODELS = {"neurolib": {"rww_ei": "WWModel", "hopf": "HopfModel"}, "cubnm": {"rww_ei": "rWWSimGroup"}}


# ------------------------------------------------------------------ worker side (peer interpreter)
def _neurolib(cfg: dict[str, Any]) -> dict[str, Any]:
    import logging

    import numpy as np

    logging.disable(logging.WARNING)  # neurolib logs every chunk
    import neurolib
    from neurolib.models.hopf import HopfModel
    from neurolib.models.ww import WWModel

    data = np.load(cfg["connectome"])
    cls = {"WWModel": WWModel, "HopfModel": HopfModel}[PEER_MODELS["neurolib"][cfg["model"]]]
    m = cls(Cmat=data["weights"], Dmat=data["lengths"])
    m.params.dt = cfg["dt_ms"]
    m.params.signalV = cfg["velocity"]
    m.params.sigma_ou = 0.0
    m.params.duration = 1000.0  # compile
    m.run(chunkwise=True, bold=True)
    m.params.duration = cfg["duration_s"] * 1000.0
    t0 = time.perf_counter()
    m.run(chunkwise=True, bold=True)
    wall = time.perf_counter() - t0
    bold = m.BOLD.BOLD
    return dict(version=getattr(neurolib, "__version__", "0.6.2"), n_sims=1, wall_s=wall,
                finite=bool(np.all(np.isfinite(bold))), bold_shape=list(bold.shape))


class _StdoutToStderr:
    """cuBNM's C++ core prints progress on file descriptor 1: send it to stderr."""

    def __enter__(self):
        sys.stdout.flush()
        self.saved = os.dup(1)
        os.dup2(2, 1)

    def __exit__(self, *exc):
        sys.stdout.flush()
        os.dup2(self.saved, 1)
        os.close(self.saved)


def _cubnm(cfg: dict[str, Any]) -> dict[str, Any]:
    import logging

    import numpy as np

    logging.disable(logging.WARNING)
    with _StdoutToStderr():
        import cubnm
        from cubnm import sim

        data = np.load(cfg["connectome"])
        n = int(cfg["cubnm_sims"])
        g = sim.rWWSimGroup(duration=cfg["duration_s"], TR=cfg["bold_tr_s"],
                            sc=np.ascontiguousarray(data["weights"].T), sc_dist=np.ascontiguousarray(data["lengths"].T),
                            dt=str(cfg["dt_ms"]), bw_dt="1.0", do_fic=False, force_cpu=True, do_fcd=False,
                            gof_terms=["+fc_corr"], bold_remove_s=0)
        g.N = n
        g.param_lists["G"] = np.repeat(0.5, n)
        g.param_lists["v"] = np.repeat(float(cfg["velocity"]), n)
        g._set_default_params()
        g.run()  # initialises the session and its noise
        t0 = time.perf_counter()
        g.run()
        wall = time.perf_counter() - t0
    bold = np.asarray(g.sim_bold)
    return dict(version=getattr(cubnm, "__version__", "0.1.0"), n_sims=n, wall_s=wall, do_fic=False,
                noise_sigma=float(np.asarray(g.param_lists["sigma"]).ravel()[0]),
                finite=bool(np.all(np.isfinite(bold))), bold_shape=list(bold.shape))


def _worker(cfg: dict[str, Any]) -> None:
    peer = cfg["peer"]
    try:
        __import__({"neurolib": "neurolib", "cubnm": "cubnm"}[peer])
    except Exception as exc:  # not installed here (or broken): a record that says so
        print(json.dumps(dict(peer=peer, model=cfg["model"], skipped=f"{peer} is not importable by "
                              f"{sys.executable}: {type(exc).__name__}: {exc}")), flush=True)
        return
    out = (_neurolib if peer == "neurolib" else _cubnm)(cfg)
    rec = dict(peer=peer, peer_model=PEER_MODELS[peer][cfg["model"]], model=cfg["model"],
               duration_s=cfg["duration_s"], dt_ms=cfg["dt_ms"], **out)
    rec["sim_s_per_wall_s"] = round(rec["n_sims"] * cfg["duration_s"] / rec["wall_s"], 3)
    rec["wall_s"] = round(rec["wall_s"], 4)
    print(json.dumps(rec), flush=True)


# ------------------------------------------------------------------ driver side
def peer_python(python: str | None = None) -> str:
    """The interpreter that runs the peers: ``python``, else $EXPLORER_PEER_PYTHON, else this one."""
    return python or os.environ.get("EXPLORER_PEER_PYTHON") or sys.executable


def run_peer(peer: str, cfg: dict[str, Any], python: str | None = None) -> dict[str, Any]:
    """One timed run of ``peer`` on ``cfg`` (connectome, model, duration_s, dt_ms, velocity, bold_tr_s)
    in a fresh single-threaded process; a ``skipped`` record when the peer cannot run."""
    if cfg["model"] not in PEER_MODELS[peer]:
        return dict(peer=peer, model=cfg["model"], skipped=f"{peer} has no {cfg['model']} model here")
    env = dict(os.environ)
    for var in THREAD_VARS:
        env[var] = "1"
    env.pop("PYTHONPATH", None)
    exe = peer_python(python)
    full = {"cubnm_sims": 4, **cfg, "peer": peer}
    try:
        proc = subprocess.run([exe, str(Path(__file__).resolve()), "--worker", json.dumps(full)],
                              capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())
    except OSError as exc:
        return dict(peer=peer, model=cfg["model"], skipped=f"cannot start {exe}: {exc}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return dict(peer=peer, model=cfg["model"],
                    skipped=f"{peer} failed (exit {proc.returncode}): {proc.stderr.strip()[-800:]}")
    return json.loads(lines[-1])


def best_of(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest of several runs (``sim_s_per_wall_s``), with every run's figure in ``all``."""
    ok = [r for r in records if "skipped" not in r]
    if not ok:
        return records[-1]
    best = dict(max(ok, key=lambda r: r["sim_s_per_wall_s"]))
    best["all"] = [r["sim_s_per_wall_s"] for r in ok]
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--peers", nargs="+", default=list(PEERS), choices=PEERS)
    ap.add_argument("--models", nargs="+", default=["rww_ei", "hopf"])
    ap.add_argument("--duration-s", type=float, default=60.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cubnm-sims", type=int, default=4, help="simulations per cuBNM run (one thread)")
    ap.add_argument("--peer-python", help="interpreter with the peers installed (default $EXPLORER_PEER_PYTHON "
                                          "or this one)")
    args = ap.parse_args()
    if args.worker:
        _worker(json.loads(args.worker))
        return 0
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_sim import aal80_file

    with tempfile.TemporaryDirectory() as tmp:
        path = aal80_file(tmp)
        for model in args.models:
            for peer in args.peers:
                cfg = dict(connectome=str(path), model=model, duration_s=args.duration_s, dt_ms=0.1,
                           velocity=20.0, bold_tr_s=2.0, cubnm_sims=args.cubnm_sims)
                if model not in PEER_MODELS[peer]:
                    continue
                recs = []
                for _ in range(max(1, args.repeat)):
                    recs.append(run_peer(peer, cfg, args.peer_python))
                    if "skipped" in recs[-1]:
                        break
                print(json.dumps(best_of(recs)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
