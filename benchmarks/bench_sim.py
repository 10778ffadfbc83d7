"""Simulator speed on the 80-region AAL2 connectome (gw subject NAP_001), peers side by side: JSON lines.

    .venv/bin/python benchmarks/bench_sim.py [--models rww_ei hopf] [--batch 1 8 32 64] [--duration-s 60]
        [--dtype float64 float32] [--repeat 1] [--noise-sigma 0 [0.01]] [--rounds 1]
        [--peers neurolib cubnm] [--peer-duration-s 60] [--peer-python PYTHON] [--baseline DIR]

Takes weights/lengths from the bundled gw demo cohort (explorer.cohort.demo(): the 14 subcortical
regions dropped, zero diagonal, weights divided by their max), writes them to a temporary .npz and
runs ``explorer bench`` on it (dt 0.1 ms, velocity 20 m/s, BOLD TR 2 s, no transient), one process per
batch size, one core.

Peers (``benchmarks/bench_peers.py``: neurolib 0.6.2, cuBNM 0.1.0 on its CPU path) run in the same
rounds, alternating with explorer, so that a busy machine slows both alike; each figure is the best
of ``--rounds`` (every run listed in ``all``). A peer that is not installed gives a ``skipped`` line
with the reason. Then one ``ratio`` line per explorer configuration and peer: explorer's best
sim-s/wall-s over the peer's (cuBNM is compared with the explorer runs whose noise matches its
``sigma`` 0.01 when there are any: ``--noise-sigma 0 0.01``). ``--baseline DIR`` also runs the
``explorer`` package found in DIR (e.g. an export of an earlier commit) in the same rounds, as
``explorer_before``, with its own ratios.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def aal80(subject: str = "NAP_001") -> tuple[np.ndarray, np.ndarray]:
    """(weights, lengths in mm) of one bundled gw subject on its 80 cortical AAL2 regions.

    The demo cohort's defaults: subcortical regions dropped, zero diagonal, weights / max.
    """
    from explorer.cohort import demo

    s = demo()[subject]
    return s.weights, s.lengths


def aal80_file(folder: str | Path) -> Path:
    """:func:`aal80` written as ``<folder>/aal80.npz`` (keys weights, lengths): a connectome file the
    peers and ``explorer bench`` read alike."""
    path = Path(folder) / "aal80.npz"
    w, ln = aal80()
    np.savez(path, weights=w, lengths=ln)
    return path


def _ratios(model: str, best: dict[tuple, dict[str, Any]], peers: list[str]) -> list[dict[str, Any]]:
    out = []
    for key, rec in best.items():
        if key[0] not in ("explorer", "explorer_before"):
            continue
        _, dtype, batch, noise = key
        for peer in peers:
            p = best.get((peer,))
            if p is None or "skipped" in p:
                continue
            if peer == "cubnm":
                matched = [k for k in best if k[0] == key[0] and k[1:3] == (dtype, batch) and k[3] == p["noise_sigma"]]
                if matched and noise != p["noise_sigma"]:
                    continue  # compared with the explorer run of the same noise
            out.append(dict(kind="ratio", model=model, who=key[0], dtype=dtype, batch=batch, noise_sigma=noise,
                            vs=peer, peer_model=p["peer_model"],
                            ratio=round(rec["sim_s_per_wall_s"] / p["sim_s_per_wall_s"], 2),
                            explorer_sim_s_per_wall_s=rec["sim_s_per_wall_s"],
                            peer_sim_s_per_wall_s=p["sim_s_per_wall_s"]))
        if key[0] == "explorer" and ("explorer_before",) + key[1:] in best:
            old = best[("explorer_before",) + key[1:]]
            out.append(dict(kind="ratio", model=model, who="explorer", dtype=dtype, batch=batch, noise_sigma=noise,
                            vs="explorer_before", ratio=round(rec["sim_s_per_wall_s"] / old["sim_s_per_wall_s"], 2),
                            explorer_sim_s_per_wall_s=rec["sim_s_per_wall_s"],
                            peer_sim_s_per_wall_s=old["sim_s_per_wall_s"]))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["rww_ei", "hopf"])
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8, 32, 64])
    ap.add_argument("--duration-s", type=float, default=60.0)
    ap.add_argument("--dtype", nargs="+", default=["float64", "float32"])
    ap.add_argument("--noise-sigma", type=float, nargs="+", default=[0.0])
    ap.add_argument("--repeat", type=int, default=1, help="runs per explorer process (its fastest counts)")
    ap.add_argument("--rounds", type=int, default=1, help="alternating rounds of explorer and peers; best counts")
    ap.add_argument("--peers", nargs="*", default=["neurolib", "cubnm"], choices=["neurolib", "cubnm"])
    ap.add_argument("--peer-duration-s", type=float, help="simulated seconds per peer run (default --duration-s)")
    ap.add_argument("--peer-python", help="interpreter with the peers installed (default $EXPLORER_PEER_PYTHON "
                                          "or this one)")
    ap.add_argument("--cubnm-sims", type=int, default=4, help="simulations per cuBNM run (one thread)")
    ap.add_argument("--baseline", help="folder holding an earlier explorer package, run as explorer_before")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_peers import PEER_MODELS, best_of, run_peer

    from explorer.sim.bench import bench

    with tempfile.TemporaryDirectory() as tmp:
        path = aal80_file(tmp)
        for model in args.models:
            runs: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
            peers = [p for p in args.peers if model in PEER_MODELS[p]]
            for _ in range(max(1, args.rounds)):
                for dtype in args.dtype:
                    for noise in args.noise_sigma:
                        cfg = dict(model=model, connectome=str(path), duration_s=args.duration_s, transient_s=0.0,
                                   dt_ms=0.1, velocity=20.0, bold_tr_s=2.0, bold_monitor="balloon", noise_sigma=noise,
                                   dtype=dtype, integrator="euler", repeat=args.repeat)
                        for B in args.batch:
                            runs[("explorer", dtype, B, noise)].append(bench(cfg, [B])[0])
                            if args.baseline:
                                runs[("explorer_before", dtype, B, noise)].append(
                                    bench(cfg, [B], pythonpath=args.baseline)[0])
                for peer in peers:
                    if runs[(peer,)] and "skipped" in runs[(peer,)][-1]:
                        continue
                    pcfg = dict(connectome=str(path), model=model, duration_s=args.peer_duration_s or args.duration_s,
                                dt_ms=0.1, velocity=20.0, bold_tr_s=2.0, cubnm_sims=args.cubnm_sims)
                    runs[(peer,)].append(run_peer(peer, pcfg, args.peer_python))
            best = {}
            for key, recs in runs.items():
                if key[0] in ("explorer", "explorer_before"):
                    rec = dict(max(recs, key=lambda r: r["sim_s_per_wall_s"]))
                    rec["all"] = [r["sim_s_per_wall_s"] for r in recs]
                    rec = {"kind": key[0], **rec}
                else:
                    rec = {"kind": "peer", **best_of(recs)}
                best[key] = rec
                print(json.dumps(rec), flush=True)
            for rec in _ratios(model, best, peers):
                print(json.dumps(rec), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
