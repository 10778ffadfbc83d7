"""`explorer bench` prints one JSON object per batch size with the documented keys."""

from __future__ import annotations

import json

import numpy as np

from explorer.cli import main


def test_bench_cli_prints_json_per_batch(tmp_path, capsys):
    w = np.ones((3, 3)) - np.eye(3)
    path = tmp_path / "c.npz"
    np.savez(path, weights=w, lengths=w * 20.0)
    rc = main(["bench", "--model", "hopf", "--connectome", str(path), "--duration-s", "0.2", "--dt-ms", "0.1",
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


def test_bench_cli_reports_missing_file(tmp_path, capsys):
    assert main(["bench", "--connectome", str(tmp_path / "none.npz")]) == 2
    assert "no such file" in capsys.readouterr().err
