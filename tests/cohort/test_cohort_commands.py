"""`explorer cohort show`: rows per subject, problems, exit status."""

from __future__ import annotations

import argparse
import json

import numpy as np

from explorer.cohort import commands

from cohort_files import make_arrays, manifest_cohort


def run(capsys, *argv: str) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="explorer cohort")
    commands.add_cohort_arguments(parser)
    rc = commands.cohort_command(parser.parse_args(list(argv)))
    return rc, capsys.readouterr().out


def test_parse_drop():
    assert commands.parse_drop(["40-42", "74,75", "Thalamus_L"]) == [40, 41, 42, 74, 75, "Thalamus_L"]
    assert commands.parse_drop(None) is None


def test_show_json_ok(tmp_path, capsys):
    path = manifest_cohort(tmp_path, 2, "npy")
    rc, out = run(capsys, "show", str(path), "--json")
    rows = json.loads(out)
    assert rc == 0
    assert [r["id"] for r in rows] == ["sub-01", "sub-02"]
    assert rows[0]["n_regions"] == 6 and rows[0]["n_time"] == 60 and rows[0]["tr_s"] == 2.0
    assert 0 < rows[0]["sc_density"] <= 1 and -1 < rows[0]["mean_fc"] < 1
    assert rows[0]["problems"] == [] and rows[0]["status"] == "ok"


def test_show_bad_subject_exit_1_then_skip_bad(tmp_path, capsys):
    path = manifest_cohort(tmp_path, 2, "npy")
    w = make_arrays(11)["weights"]
    w[2, 3] = np.nan
    np.save(tmp_path / "data" / "sub-02_weights.npy", w)
    rc, out = run(capsys, "show", str(path), "--json")
    rows = {r["id"]: r for r in json.loads(out)}
    assert rc == 1
    assert rows["sub-02"]["status"] == "refused"
    assert "sub-02_weights.npy" in rows["sub-02"]["problems"][0]
    rc, out = run(capsys, "show", str(path), "--skip-bad")
    assert rc == 0
    assert "sub-01" in out and "sub-02" in out and "NaN/inf" in out and "skipped" in out


def test_show_table_demo_drop(capsys):
    rc, out = run(capsys, "show", "demo", "--drop", "0-9")
    assert rc == 0
    assert "NAP_013" in out and " 84 " in out  # 94 - 10 regions
