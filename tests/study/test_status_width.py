"""`explorer status` fits an 80-column terminal (or a pipe): long parameter names and objectives included."""

from __future__ import annotations

import re

from explorer.study.status import status_lines

PARAMS = {**{f"w_plus[net{i}]": 1.0 + i / 7 + 1e-5 for i in range(1, 8)},
          "G": 0.000123456, "J_NMDA": 12345.678, "P[cortex_gradient]": -0.5, "n_steps": 3}
REASONS = {"fic did not converge: fixed point unstable": 3, "diverged": 2,
           "error: MemoryError: Unable to allocate": 1}


def _subject(complete, failed, running, aborted, scores, params, reasons):
    return {"complete": complete, "failed": failed, "interrupted": 1, "aborted": aborted, "running": running,
            "waiting": 0, "reasons": reasons, "target": 200, "done": complete + failed,
            "best": {"number": 17, "params": params, "scores": scores, "pareto": 3} if scores else {}}


def _status():
    """A realistic study_status() of a regional model with a combined objective and every column shown."""
    objectives = ["fc_r - fcd_ks", "fcd_ks"]
    subjects = {
        "sub-0001_ses-1": _subject(120, 6, 2, 0, {"fc_r - fcd_ks": 0.456789, "fcd_ks": 0.1234449, "fc_r": 0.58},
                                   PARAMS, REASONS),
        "sub-0002_ses-1": _subject(7, 0, 2, 4, {"fc_r - fcd_ks": -0.12345, "fcd_ks": 0.5}, {**PARAMS, "G": 2.5}, {}),
        "sub-0003_ses-2": _subject(0, 0, 0, 4, {}, {}, {}),
    }
    return {
        "name": "rww_ei_regional_gradient_twins", "study_dir": "/data/studies/rww_ei_regional_gradient_twins",
        "model": "rww_ei", "objective": objectives, "sampler": "tpe", "trials_per_subject": 200,
        "optuna_storage": "postgresql://explorer:***@db.example.org:5432/explorer_optuna",
        "subjects": subjects,
        "totals": {k: sum(s[k] for s in subjects.values())
                   for k in ("complete", "failed", "interrupted", "aborted", "running", "waiting")},
        "utilisation": 0.8734, "last_run": None, "runs": 3,
        "hook_failures": ["MLflow logging of sub-0001_ses-1 failed: MlflowException: API request to "
                          "http://mlflow.example.org:5000/api/2.0/mlflow/runs/log-batch failed with exception "
                          "HTTPConnectionPool(host='mlflow.example.org', port=5000): Max retries exceeded"],
    }


def _flat(lines):
    """The text with its wrapping undone (every run of whitespace one space)."""
    return " ".join(" ".join(lines).split())


def test_status_lines_fit_the_width_and_show_everything():
    width = 80
    st = _status()
    lines = status_lines(st, width)
    assert all(len(line) <= width for line in lines), [line for line in lines if len(line) > width]
    text = "\n".join(lines)
    assert "…" not in text and "..." not in text           # nothing truncated
    flat = _flat(lines)
    # every parameter, named in full, to 3 significant digits
    for i in range(1, 8):
        assert re.search(rf"(^|\s)w_plus\[net{i}\]={1.0 + i / 7:.3g}(\s|$)", text), i
    for part in ("G=0.000123", "G=2.5", "J_NMDA=1.23e+04", "P[cortex_gradient]=-0.5", "n_steps=3"):
        assert re.search(rf"(^|\s){re.escape(part)}(\s|$)", text), part
    assert "1.14286" not in text and "1.143" not in text    # w_plus[net1]: 3 significant digits, no more
    # every fail reason in full, with its count
    for reason, n in REASONS.items():
        assert f"{reason} x{n}" in flat
    # the combined objective is a short column with its legend; scores to 3 decimals
    assert "objective obj1: fc_r - fcd_ks" in lines and "objective: fcd_ks" in lines
    head = next(line for line in lines if line.startswith("subject"))
    assert head.split() == ["subject", "done", "failed", "aborted", "running", "obj1", "fcd_ks"]
    rows = {line.split()[0]: line.split() for line in lines if line.startswith("sub-")}
    assert rows["sub-0001_ses-1"] == ["sub-0001_ses-1", "126/200", "6", "0", "2", "0.457", "0.123"]
    assert rows["sub-0002_ses-1"] == ["sub-0002_ses-1", "7/200", "0", "4", "2", "-0.123", "0.500"]
    assert rows["sub-0003_ses-2"] == ["sub-0003_ses-2", "0/200", "0", "4", "0", "-", "-"]
    # the columns line up (right-aligned): the obj1 cell ends at the same column in the header and every row
    ends = {[m.end() for m in re.finditer(r"\S+", line)][5] for line in lines if line.startswith(("subject", "sub-"))}
    assert len(ends) == 1
    # the tracker failure and what to do about it
    assert "1 tracking/store hook call(s) failed; last: MLflow logging of sub-0001_ses-1 failed:" in flat
    assert "Max retries exceeded" in flat
    assert lines[-1] == "run `explorer verify rww_ei_regional_gradient_twins --repair`"
    assert "actor utilisation: 87.3%" in text
    # a narrower terminal: the table keeps its columns, the parameters and reasons wrap to the width
    narrow = status_lines(st, 50)
    indented = [line for line in narrow if line.startswith("    ")]
    assert len(indented) > len([line for line in lines if line.startswith("    ")])
    assert all(len(line) <= 50 for line in indented) and _flat(narrow) == _flat(lines)


def test_status_without_running_aborted_or_failures_has_no_such_columns():
    st = _status()
    for s in st["subjects"].values():
        s["running"] = s["aborted"] = 0
    st["hook_failures"] = []
    lines = status_lines(st, 80)
    head = next(line for line in lines if line.startswith("subject"))
    assert head.split() == ["subject", "done", "failed", "obj1", "fcd_ks"]
    assert not any("verify" in line for line in lines)


def test_explorer_status_cli_at_80_columns(tmp_path, ray_session, monkeypatch, capsys):
    """A real tiny study with a combined objective, through `explorer status` (stdout a pipe: 80 columns)."""
    from explorer.cli import main
    from explorer.layout import optuna_storage_url
    from explorer.runner.driver import run_study
    from explorer.search import best_summary, open_storage, open_subject_study

    from study_configs import fast_config

    cfg = fast_config(tmp_path, name="status_width_combined_objective", objective="fc_r - fcd_ks",
                      cohort={"subjects": ["NAP_001"]}, trials=2, ray={"actors": 1, "batch_size": 2})
    assert run_study(cfg).trials_run == 2
    study = open_subject_study(open_storage(optuna_storage_url(cfg, cfg.study_dir)), cfg, "NAP_001", create=False)
    best = best_summary(study, cfg.objectives)

    monkeypatch.chdir(tmp_path)                  # relative --studies-dir: the storage path is short
    capsys.readouterr()
    assert main(["status", cfg.name, "--studies-dir", "studies"]) == 0
    out = capsys.readouterr().out.rstrip("\n").splitlines()
    assert all(len(line) <= 80 for line in out), [line for line in out if len(line) > 80]
    assert "…" not in "\n".join(out)
    assert "objective obj1: fc_r - fcd_ks" in out
    row = next(line.split() for line in out if line.startswith("NAP_001"))
    assert row == ["NAP_001", "2/2", "0", f"{best['scores']['fc_r - fcd_ks']:.3f}"]
    params = next(line.split() for line in out if line.startswith("    G="))
    assert params == [f"{k}={v:.3g}" for k, v in best["params"].items()]
    assert out[-1] == "optuna storage: studies/status_width_combined_objective/optuna.log"
