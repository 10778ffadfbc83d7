"""`explorer ui`: artifact locations repaired after a move, a light MLflow server on a moved study,
its runs, figures and runs view (headless Chromium), optuna-dashboard, and a clean stop."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from argparse import Namespace
from pathlib import Path

import pytest

from browser import PNG_MAGIC, chromium
from explorer.errors import TrackingError
from explorer.study.commands import ui_command
from explorer.study.frozen import load_frozen, save_frozen
from explorer.tracking import ui
from explorer.tracking.relocate import repair_artifact_locations
from study_configs import fast_config

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, payload: dict | None = None) -> bytes:
    req = urllib.request.Request(url, data=json.dumps(payload).encode() if payload is not None else None,
                                 headers={"Content-Type": "application/json"} if payload is not None else {})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=30) as resp:
        return resp.read()


def _api(base: str, path: str, payload: dict | None = None) -> dict:
    return json.loads(_get(base + path, payload))


# ---- artifact-location repair on a hand-made store (fast) -----------------------------------------
def _store_with_artifact(folder: Path) -> tuple[str, bytes]:
    from mlflow import MlflowClient

    folder.mkdir(parents=True)
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    exp = client.create_experiment("moved", artifact_location=(folder / "mlartifacts").as_uri())
    run = client.create_run(exp, run_name="NAP_001")
    fig = folder / "convergence.png"
    data = PNG_MAGIC + os.urandom(64)
    fig.write_bytes(data)
    client.log_artifact(run.info.run_id, str(fig))
    client.set_terminated(run.info.run_id)
    fig.unlink()
    return run.info.run_id, data


def test_repair_artifact_locations_after_a_move(tmp_path, caplog):
    from mlflow import MlflowClient

    run_id, data = _store_with_artifact(tmp_path / "a" / "study")
    shutil.move(tmp_path / "a", tmp_path / "b")            # the original is gone
    new = tmp_path / "b" / "study"
    with caplog.at_level("WARNING", logger="explorer.tracking.relocate"):
        done = repair_artifact_locations(new)
    assert len(done) == 1
    assert done[0].old == (tmp_path / "a" / "study" / "mlartifacts").as_uri()
    assert done[0].new == (new / "mlartifacts").as_uri()
    assert done[0].rows["experiments"] == 1 and done[0].rows["runs"] == 1
    assert "was moved: rewrote MLflow artifact locations" in caplog.text and done[0].old in caplog.text

    client = MlflowClient(f"sqlite:///{new / 'mlflow.db'}")
    assert client.get_experiment_by_name("moved").artifact_location == (new / "mlartifacts").as_uri()
    run = client.get_run(run_id)
    assert run.info.artifact_uri == f"{(new / 'mlartifacts').as_uri()}/{run_id}/artifacts"
    got = Path(client.download_artifacts(run_id, "convergence.png", str(tmp_path / "dl")))
    assert got.read_bytes() == data
    assert repair_artifact_locations(new) == []            # idempotent


def test_repair_points_a_copy_at_its_own_files_and_leaves_other_locations(tmp_path):
    import sqlite3

    _store_with_artifact(tmp_path / "orig")
    shutil.copytree(tmp_path / "orig", tmp_path / "copy")  # original still there: must not be served
    con = sqlite3.connect(tmp_path / "copy" / "mlflow.db")
    with con:
        con.execute("INSERT INTO experiments (name, artifact_location, lifecycle_stage, creation_time, "
                    "last_update_time) VALUES ('remote', 's3://bucket/mlartifacts', 'active', 0, 0)")
    con.close()
    done = repair_artifact_locations(tmp_path / "copy")
    assert [d.old for d in done] == [(tmp_path / "orig" / "mlartifacts").as_uri()]
    con = sqlite3.connect(tmp_path / "copy" / "mlflow.db")
    locs = dict(con.execute("SELECT name, artifact_location FROM experiments"))
    uris = [r[0] for r in con.execute("SELECT artifact_uri FROM runs")]
    con.close()
    assert locs["remote"] == "s3://bucket/mlartifacts"
    assert locs["moved"] == (tmp_path / "copy" / "mlartifacts").as_uri()
    assert uris and all(u.startswith((tmp_path / "copy" / "mlartifacts").as_uri() + "/") for u in uris)
    # the original is untouched
    assert repair_artifact_locations(tmp_path / "orig") == []


def test_repair_leaves_a_folder_without_its_artifacts_alone(tmp_path, caplog):
    _store_with_artifact(tmp_path / "a")
    (tmp_path / "b").mkdir()
    shutil.copy(tmp_path / "a" / "mlflow.db", tmp_path / "b" / "mlflow.db")
    with caplog.at_level("WARNING"):
        assert repair_artifact_locations(tmp_path / "b") == []
    assert "does not exist" in caplog.text


# ---- small pieces (fast) ---------------------------------------------------------------------------
def test_runs_url_opens_the_model_training_view():
    assert ui.runs_url("http://h:1/", "7") == "http://h:1/#/experiments/7/runs?workflowType=machine_learning"
    assert ui.run_url("http://h:1", "7", "abc").endswith("/#/experiments/7/runs/abc?workflowType=machine_learning")


def _parent(subject, value, g, *, old=False, latest=None):
    """A parent run as MLflow's REST API returns it; ``old``: the schema of studies logged before the
    parent shared the children's metric and param names (``best_<score>``, ``best.<param>``)."""
    m, p = ("best_", "best.") if old else ("", "")
    tags = [{"key": "subject", "value": subject}, {"key": "explorer.role", "value": "subject"}]
    if latest is not None:
        tags.append({"key": "best.G.latest", "value": latest})
    if not old:
        tags += [{"key": "best_params", "value": json.dumps({"G": float(g), "a": 0.01})},
                 {"key": "best_trial", "value": "3"}]
    metrics = [{"key": f"{m}fcd_ks", "value": value}, {"key": f"{m}fc_r", "value": 0.5}]
    if not old:
        metrics.append({"key": "best_so_far_fcd_ks", "value": value})
    return {"info": {"run_id": f"r-{subject}", "run_name": subject},
            "data": {"metrics": metrics, "params": [{"key": f"{p}G", "value": g}, {"key": f"{p}a", "value": "0.01"}],
                     "tags": tags}}


@pytest.mark.parametrize("old", [False, True])
def test_best_subject_follows_the_direction(old):
    runs = [_parent("A", 0.3, "1.0", old=old), _parent("B", 0.1, "2.0", old=old), _parent("C", 0.2, "3.0", old=old)]
    assert ui.best_subject(runs, "fcd_ks", "minimize").subject == "B"
    best = ui.best_subject(runs, "fcd_ks", "maximize")
    assert best.subject == "A" and best.run_id == "r-A" and best.metric == ("best_fcd_ks" if old else "fcd_ks")
    assert {k: float(v) for k, v in best.params.items()} == {"G": 1.0, "a": 0.01}
    assert ui.best_subject(runs, "fc_rmse", "minimize") is None
    assert best.describe() == f"A: {best.metric}=0.3000 (G=1, a=0.01)"


def test_best_parameters_after_extend_come_from_the_tags():
    new = _parent("C", 0.2, "3.0")
    new["data"]["tags"] = [t if t["key"] != "best_params" else {"key": "best_params", "value": '{"G": 9.0}'}
                           for t in new["data"]["tags"]]
    assert ui.best_subject([new], "fcd_ks", "maximize").params == {"G": "9.0"}
    old = _parent("C", 0.2, "3.0", old=True, latest="9")
    assert ui.best_subject([old], "fcd_ks", "maximize").params == {"G": "9", "a": "0.01"}


def test_best_fit_view_lists_parents_best_first_with_their_scores_and_parameters():
    view = ui.best_fit_view([_parent("A", 0.3, "1.0")], ["fcd_ks", "fc_r"], "minimize")
    assert view == {"searchFilter": "tags.`explorer.role` = 'subject'", "orderByKey": "metrics.`fcd_ks`",
                    "orderByAsc": True,
                    "selectedColumns": ["metrics.`fcd_ks`", "metrics.`fc_r`", "params.`G`", "params.`a`",
                                        "tags.`best_trial`"]}
    old = ui.best_fit_view([_parent("A", 0.3, "1.0", old=True)], ["fc_r"], "maximize")
    assert old["orderByKey"] == "metrics.`best_fc_r`" and old["orderByAsc"] is False
    assert old["selectedColumns"] == ["metrics.`best_fc_r`", "params.`best.G`", "params.`best.a`"]


def test_port_in_use_names_the_port_and_the_flag():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(TrackingError, match=rf"port {port} .*--port"):
            ui._check_port(port, "--port")


@pytest.fixture
def unrun_study(tmp_path):
    cfg = fast_config(tmp_path, name="unrun")
    save_frozen(cfg)
    return cfg.study_dir


def test_a_server_that_dies_early_is_reported_with_its_output(unrun_study, monkeypatch, capsys):
    boom = [sys.executable, "-c", "import sys; print('boom: no store', file=sys.stderr); sys.exit(3)"]
    monkeypatch.setattr(ui, "_mlflow_cmd", lambda uri, root, port: (boom, {}))
    with pytest.raises(ui.ServerExited, match=r"(?s)exited with status 3.*boom: no store"):
        ui.start_ui(load_frozen(unrun_study), unrun_study, port=_free_port())
    args = Namespace(name=str(unrun_study), studies_dir=None, port=_free_port(), optuna=False,
                     optuna_port=_free_port(), no_browser_hint=True)
    assert ui_command(args) == 1
    assert "boom: no store" in capsys.readouterr().err


def test_a_remote_tracking_server_is_linked_not_started(unrun_study, monkeypatch):
    monkeypatch.setenv("EXPLORER_MLFLOW_URI", "http://me:pa55word@mlflow.example:5000/")
    monkeypatch.setattr(ui, "_request", lambda base, path, payload=None, **k:
                        {"experiment": {"experiment_id": "42"}} if "get-by-name" in path else {"runs": []})
    servers = ui.start_ui(load_frozen(unrun_study), unrun_study, port=_free_port())
    servers.stop()
    assert servers.children == [] and "subjects" not in servers.urls    # nothing written to a server
    assert servers.urls["runs"] == "http://mlflow.example:5000/#/experiments/42/runs?workflowType=machine_learning"


# ---- a real finished study, moved, served (slow) ------------------------------------------------------
@pytest.fixture(scope="module")
def moved_study(tmp_path_factory, ray_session):
    """A 2-subject x 3-trial study, copied to another folder; the original deleted."""
    from explorer.runner.driver import run_study

    tmp = tmp_path_factory.mktemp("ui")
    cfg = fast_config(tmp / "orig", name="uitour", trials=3)
    save_frozen(cfg)
    run_study(cfg)
    moved = tmp / "elsewhere" / "uitour"
    shutil.copytree(cfg.study_dir, moved)
    shutil.rmtree(cfg.study_dir)
    return cfg, moved


@pytest.fixture(scope="module")
def served(moved_study):
    cfg, moved = moved_study
    t0 = time.perf_counter()
    servers = ui.start_ui(load_frozen(moved), moved, port=_free_port(), optuna=True, optuna_port=_free_port())
    servers.start_s = time.perf_counter() - t0
    yield cfg, moved, servers
    servers.stop()


@pytest.mark.slow
def test_moved_study_is_served_with_runs_tags_and_metrics(served):
    cfg, moved, servers = served
    base = servers.urls["mlflow"]
    print(f"UI answered {servers.start_s:.1f} s after start; {servers.urls}")
    assert [r.old for r in servers.relocations] and all(str(moved) in r.new for r in servers.relocations)
    exp = _api(base, "/api/2.0/mlflow/experiments/get-by-name?experiment_name=uitour")["experiment"]
    assert exp["artifact_location"] == (moved.resolve() / "mlartifacts").as_uri()
    assert servers.urls["runs"] == f"{base}/#/experiments/{exp['experiment_id']}/runs?workflowType=machine_learning"
    runs = _api(base, "/api/2.0/mlflow/runs/search", {"experiment_ids": [exp["experiment_id"]],
                                                      "max_results": 1000})["runs"]
    tags = [{t["key"]: t["value"] for t in r["data"].get("tags", [])} for r in runs]
    parents = {t["subject"]: r for r, t in zip(runs, tags) if t.get("explorer.role") == "subject"}
    children = [t for t in tags if t.get("explorer.role") == "trial"]
    assert sorted(parents) == ["NAP_001", "NAP_002"]
    assert len(children) == 6 and {t["mlflow.parentRunId"] for t in children} == \
        {r["info"]["run_id"] for r in parents.values()}
    objective = cfg.objectives[0]                 # the parent row shares the children's columns
    best_values = {}
    for sid, run in parents.items():
        metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
        params = {p["key"] for p in run["data"]["params"]}
        ptags = {t["key"]: t["value"] for t in run["data"]["tags"]}
        assert objective in metrics and {"G", "a"} <= params and set(json.loads(ptags["best_params"])) == {"G", "a"}
        assert run["info"]["status"] == "FINISHED"
        assert run["info"]["artifact_uri"].startswith((moved.resolve() / "mlartifacts").as_uri() + "/")
        best_values[sid] = metrics[objective]
    want = max(best_values, key=best_values.get) if cfg.directions[0] == "maximize" else \
        min(best_values, key=best_values.get)
    assert servers.best.subject == want and servers.best.value == pytest.approx(best_values[want])
    assert servers.urls["best"].endswith(f"/runs/{parents[want]['info']['run_id']}?workflowType=machine_learning")
    # the saved "Best fit per subject" view
    assert servers.urls["subjects"] == servers.urls["runs"] + "&viewStateShareKey=explorer-best-fit"
    exp = _api(base, "/api/2.0/mlflow/experiments/get-by-name?experiment_name=uitour")["experiment"]
    tag = {t["key"]: t["value"] for t in exp["tags"]}["mlflow.sharedViewState.explorer-best-fit"]
    envelope = json.loads(tag)
    state = json.loads(envelope["state"])
    assert envelope["name"] == "Best fit per subject" and isinstance(envelope["createdAt"], int)
    assert state["orderByKey"] == f"metrics.`{objective}`" and state["orderByAsc"] is (cfg.directions[0] == "minimize")
    assert {f"metrics.`{objective}`", "params.`G`", "params.`a`"} <= set(state["selectedColumns"])


@pytest.mark.slow
def test_moved_study_serves_its_figures_from_the_copy(served):
    _cfg, moved, servers = served
    base = servers.urls["mlflow"]
    rid = servers.best.run_id
    files = {f["path"] for f in _api(base, f"/api/2.0/mlflow/artifacts/list?run_id={rid}").get("files", [])}
    assert {"convergence.png", "study.yaml"} <= files
    q = urllib.parse.urlencode({"path": "convergence.png", "run_uuid": rid})
    png = _get(f"{base}/get-artifact?{q}")
    assert png.startswith(PNG_MAGIC)
    on_disk = moved / "mlartifacts" / rid / "artifacts" / "convergence.png"
    assert png == on_disk.read_bytes()


@pytest.mark.slow
def test_optuna_dashboard_serves_the_journal(served):
    _cfg, _moved, servers = served
    studies = json.loads(_get(servers.urls["optuna"].replace("/dashboard", "/api/studies")))
    names = {s["study_name"] for s in studies["study_summaries"]}
    assert names == {"uitour/NAP_001", "uitour/NAP_002"}


def _browse(url: str, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    return chromium("--virtual-time-budget=15000", "--window-size=1600,900", *args, url, tmp=tmp, timeout=240)


@pytest.mark.slow
def test_printed_urls_show_the_runs_table_in_a_browser(served, tmp_path):
    """A fresh browser profile (no localStorage): the links alone must open the model-training views."""
    _cfg, _moved, servers = served
    dom = _browse(servers.urls["runs"], tmp_path, "--dump-dom").stdout
    assert "NAP_001" in dom and "NAP_002" in dom, dom[-3000:]
    assert "Detect Issues" not in dom                     # not MLflow's GenAI overview
    dom = _browse(servers.urls["subjects"], tmp_path, "--dump-dom").stdout
    assert "NAP_001" in dom and "NAP_002" in dom and "NAP_001-t0" not in dom, dom[-3000:]   # parents only
    assert "Best fit per subject" in dom and "Parameters" in dom and "fc_r" in dom
    shots = Path(os.environ.get("EXPLORER_UI_SCREENSHOTS", tmp_path))
    for key in ("subjects", "runs"):
        shot = shots / f"ui_{key}.png"
        _browse(servers.urls[key], tmp_path, f"--screenshot={shot}", "--hide-scrollbars")
        assert shot.read_bytes().startswith(PNG_MAGIC) and shot.stat().st_size > 10000
        print(f"screenshot of the {key} view: {shot}")


def _read_until(proc: subprocess.Popen, done, timeout_s: float) -> str:
    """``proc``'s stdout so far, once ``done(text)`` holds or ``timeout_s`` (s) passed."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not done("".join(lines)) and proc.poll() is None:
        time.sleep(0.2)
    return "".join(lines)


@pytest.mark.slow
def test_cli_prints_the_urls_and_stops_on_sigterm(moved_study):
    _cfg, moved = moved_study
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "explorer.cli", "ui", str(moved), "--port", str(port),
                             "--no-browser-hint"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=ROOT)
    try:
        out = _read_until(proc, lambda text: "best subject:" in text and text.rstrip().endswith("machine_learning"),
                          180)
        assert f"all runs:      http://127.0.0.1:{port}/#/experiments/" in out, out
        assert "per subject:   http" in out and "viewStateShareKey=explorer-best-fit" in out
        assert "best subject:  NAP_00" in out
        t0 = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        stop_s = time.perf_counter() - t0
        print(f"`explorer ui` stopped {stop_s:.1f} s after SIGTERM")
        with socket.socket() as s:                    # the server is gone: its port is free again
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_servers_end_with_a_killed_parent(moved_study, tmp_path):
    """``explorer ui`` killed by SIGKILL (no clean-up runs): its servers still end."""
    _cfg, moved = moved_study
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "explorer.cli", "ui", str(moved), "--port", str(port),
                             "--no-browser-hint"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            cwd=ROOT)
    try:
        out = _read_until(proc, lambda text: "all runs:" in text, 180)
        assert "all runs:" in out
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                time.sleep(0.5)
        except OSError:
            return                                     # nothing listens any more
    pytest.fail(f"the MLflow server on port {port} outlived its killed `explorer ui`")


@pytest.mark.slow
def test_stop_ends_every_server_process(served):
    _cfg, _moved, servers = served
    pids = [c.proc.pid for c in servers.children]
    t0 = time.perf_counter()
    servers.stop()
    assert time.perf_counter() - t0 < 15
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)
