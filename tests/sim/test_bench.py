"""`explorer bench` prints one JSON object per batch size with the documented keys."""

from __future__ import annotations

import json

import numpy as np

from explorer.cli import main


def test_bench_cli_prints_json_per_batch(tmp_path, capsys):
    w = np.ones((3, 3)) - np.eye(3)
    path = tmp_path / "c.npz"
    np.savez(path, weights=w, lengths=w * 20.0)
    rc = main(["bench", "--model", "hopf", "--connectome", str(path), "--duration-s", "0.2", "--transient-s", "0", "--dt-ms", "0.1",
               "--velocity", "20", "--bold-tr-s", "0.1", "--batch", "1", "2", "--json"])
    assert rc == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()]
    assert [r["batch"] for r in lines] == [1, 2]
    for r in lines:
        for key in ("model", "n_regions", "batch", "duration_s", "dt_ms", "wall_s", "compile_s",
                    "sim_s_per_wall_s", "peak_rss_mb"):
            assert key in r
        assert r["model"] == "hopf" and r["n_regions"] == 3
        assert r["sim_s_per_wall_s"] > 0 and r["peak_rss_mb"] > 0
        assert r["duration_s"] == 0.2 and r["transient_s"] == 0.0
        # the machine and the batch tiling
        assert r["cores"] >= 1 and r["cpu_model"] and r["isa"] in ("AVX-512", "AVX2", "AVX", "SSE", "unknown")
        assert r["l2_per_core_kib"] > 0 and r["tile"] == min(r["batch"], 32) and r["tiles"] == 1
        assert r["tile_buffer_kib"] > 0 and r["buffer_fits_l2"] is True


def test_bench_cli_defaults_are_the_run_settings_and_bad_ones_are_refused(tmp_path, capsys):
    import argparse

    from explorer.sim import RunSettings
    from explorer.sim.commands import add_bench_arguments

    parser = argparse.ArgumentParser()
    add_bench_arguments(parser)
    args = parser.parse_args(["--connectome", "x.npz"])
    d = RunSettings()
    assert (args.duration_s, args.transient_s, args.dt_ms, args.velocity, args.noise_sigma, args.dtype,
            args.integrator, args.bold_monitor) == (d.duration_s, d.transient_s, d.dt_ms, d.velocity,
                                                    d.noise_sigma, d.dtype, d.integrator, d.bold_monitor)
    w = np.ones((3, 3)) - np.eye(3)
    path = tmp_path / "c.npz"
    np.savez(path, weights=w, lengths=w * 20.0)
    assert main(["bench", "--model", "hopf", "--connectome", str(path), "--dt-ms", "0.3", "--json"]) == 2
    err = capsys.readouterr().err
    assert "--dt-ms: transient_s (20 s) and bold_tr_s (2 s) are not whole multiples of dt = 0.3 ms" in err


def test_bench_cli_reports_missing_file(tmp_path, capsys):
    assert main(["bench", "--connectome", str(tmp_path / "none.npz")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_peer_benchmark_skips_a_missing_peer_with_the_reason(tmp_path):
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_peers.py"
    spec = importlib.util.spec_from_file_location("bench_peers", path)
    peers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(peers)
    w = np.ones((3, 3)) - np.eye(3)
    np.savez(tmp_path / "c.npz", weights=w, lengths=w * 20.0)
    cfg = dict(connectome=str(tmp_path / "c.npz"), model="rww_ei", duration_s=2.0, dt_ms=0.1, velocity=20.0,
               bold_tr_s=2.0)
    rec = peers.run_peer("cubnm", cfg, python=str(tmp_path / "no-python"))
    assert rec["peer"] == "cubnm" and "cannot start" in rec["skipped"]
    assert "no hopf model" in peers.run_peer("cubnm", {**cfg, "model": "hopf"})["skipped"]
    if importlib.util.find_spec("neurolib") is None:  # the usual case: the peers live in their own venv
        rec = peers.run_peer("neurolib", cfg, python=sys.executable)
        assert "neurolib is not importable" in rec["skipped"]
