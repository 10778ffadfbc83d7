"""A tracker that fails during a real study does not stop it, and does not vanish: status and verify show it."""

from __future__ import annotations

from optuna.trial import TrialState

from explorer.layout import optuna_storage_url
from explorer.runner.driver import run_study
from explorer.search import list_subject_studies, open_storage, open_subject_study

from study_configs import fast_config

DOWN = "tracking server down (test)"


def test_failing_mlflow_logging_surfaces_in_status_and_verify(tmp_path, ray_session, monkeypatch, capsys):
    from explorer.cli import main
    from explorer.study.status import read_runs, status_lines, study_status
    from explorer.study.verify import verify_study
    from explorer.tracking.tracker import Tracker

    cfg = fast_config(tmp_path, name="trackerdown", cohort={"subjects": ["NAP_001"]}, trials=3,
                      ray={"actors": 1, "batch_size": 2})
    calls = []

    def broken_log_trials(self, subject_id, records, **kwargs):
        calls.append((subject_id, [r.number for r in records]))
        raise RuntimeError(DOWN)

    with monkeypatch.context() as m:   # the driver process logs the trials (not the actors): patching works
        m.setattr(Tracker, "log_trials", broken_log_trials)
        result = run_study(cfg)

    # the search went on: every trial ran and was told to Optuna
    assert result.trials_run == 3 and not result.interrupted
    storage = open_storage(optuna_storage_url(cfg, cfg.study_dir))
    study = open_subject_study(storage, cfg, "NAP_001", create=False)
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert sorted(n for _, nums in calls for n in nums) == [0, 1, 2]   # every batch was offered to MLflow

    # ... and the failure is kept: in the result, in runs.jsonl, in status
    assert len(result.hook_failures) == len(calls) >= 2
    assert all(f.startswith("MLflow logging of NAP_001 failed") and DOWN in f for f in result.hook_failures)
    assert read_runs(cfg.study_dir)[-1]["hook_failures"] == result.hook_failures
    st = study_status(cfg.study_dir)
    assert st["hook_failures"] == result.hook_failures
    lines = status_lines(st, 80)
    text = "\n".join(lines)
    assert "hook call(s) failed" in text and "MLflow logging of NAP_001" in text
    assert f"explorer verify {cfg.name} --repair" in text
    assert all(len(line) <= 80 or " " not in line.strip() for line in lines), lines

    # `explorer status` at 80 columns (a pipe) says it too; short paths: run from the studies' parent folder
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["status", cfg.name, "--studies-dir", "studies"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "explorer verify trackerdown --repair" in "\n".join(out)
    assert all(len(line) <= 80 for line in out), [line for line in out if len(line) > 80]

    # verify finds the trials MLflow never got; --repair re-creates them from Optuna
    report = verify_study(cfg.study_dir)
    assert not report.ok and report.checked == 3
    assert {(p.subject, p.number, p.kind) for p in report.problems} == {("NAP_001", n, "missing_mlflow")
                                                                       for n in (0, 1, 2)}
    repaired = verify_study(cfg.study_dir, repair=True)
    assert repaired.ok and len(repaired.repaired) == 3 and repaired.unrepairable == []
    again = verify_study(cfg.study_dir)
    assert again.ok and again.checked == 3

    # the re-created runs carry Optuna's params and scores
    from mlflow import MlflowClient

    from explorer.layout import mlflow_uri

    client = MlflowClient(tracking_uri=mlflow_uri(cfg, cfg.study_dir))
    exp = client.get_experiment_by_name(cfg.name)
    runs = {int(r.data.tags["trial"]): r for r in client.search_runs([exp.experiment_id])
            if r.data.tags.get("explorer.role") == "trial"}
    assert sorted(runs) == [0, 1, 2]
    for t in trials:
        r = runs[t.number]
        assert r.data.tags["state"] == "COMPLETE" and r.info.status == "FINISHED"
        assert float(r.data.params["G"]) == t.params["G"] and float(r.data.params["a"]) == t.params["a"]
        assert r.data.metrics["fc_r"] == t.value
    assert list_subject_studies(storage, cfg.name) == {"NAP_001": f"{cfg.name}/NAP_001"}
