"""benchmarks/scale_projection.py: known per-trial costs give the hand-computed projection; figures move the
right way with the cluster's size; the limit passes from the actors to the driver where the arithmetic says;
bad input is refused; the committed bench_scale.json's projection is what the code computes from its inputs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from explorer.tracking import resolve_children
from scale_projection import (REFERENCE_MODELS, StudyShape, cluster_trials_per_s, driver_cost, projection,
                              study_rate, trial_core_s)

COMMITTED = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "bench_scale.json"

# one model whose trial costs 8 / 2 = 4.0 core-seconds
MODEL = {"rww_ei_defaults": {"sim_s_per_trial": 8.0, "sim_s_per_wall_s_per_core": 2.0}}
# 10 subjects x 500 trials on 2 nodes x 8 cores: 16 cores, 5000 trials
SHAPE = StudyShape(subjects=10, trials=500, nodes=2, cores_per_node=8)


def _measured(ask_tell_ms: dict[int, float] | None = None, server_ms: float = 50.0, sqlite_ms: float = 30.0,
              pack_ms: float = 10.0) -> dict:
    """A bench_scale result with known costs: TPE ask+tell on PostgreSQL per history size, MLflow logging
    through the server and on SQLite, the zarr pack, and Optuna's statements per trial."""
    ask_tell_ms = ask_tell_ms or {500: 40.0, 10000: 100.0}
    return {
        "optuna": {"n_finished": sorted(ask_tell_ms),
                   "storages": {"postgresql": {"cells": {f"tpe@{n}": {"ask_tell": {"median_ms": ms}}
                                                         for n, ms in ask_tell_ms.items()}}}},
        "mlflow": {"log": {"server_postgresql": {"ms_per_trial": server_ms, "trials_table_500_rows_s": 0.5},
                           "sqlite": {"ms_per_trial": sqlite_ms, "trials_table_500_rows_s": 0.5}}},
        "zarr": {"pack_ms_per_trial": pack_ms},
        "optuna_calls": {"postgresql": {"per_ask_tell": {"commits": 5, "INSERT": 3, "UPDATE": 2},
                                        "bytes_per_trial": 2000}},
    }


def test_known_costs_give_the_hand_computed_projection():
    out = projection(_measured(), "all", SHAPE, MODEL)

    assert out["study"] == {"subjects": 10, "trials_per_subject": 500, "total_trials": 5000, "nodes": 2,
                            "cores_per_node": 8, "cores": 16}
    m = out["models"]["rww_ei_defaults"]
    assert m["trial_core_s"] == 4.0
    assert m["cluster_trials_per_s"] == 4.0                 # 16 cores / 4 s
    assert m["wall_s"] == 1250.0                            # 5000 trials / 4 per s
    assert m["wall_h"] == 0.35 and m["node_hours"] == 0.7   # 1250 / 3600, rounded; x 2 nodes

    # the driver: ask+tell + MLflow through the server (the SQL storage's pair) + pack
    d = out["driver"]["postgresql@n=500"]
    assert (d["optuna_tpe_ask_tell_ms"], d["mlflow_backend"], d["mlflow_log_ms"], d["zarr_driver_ms"]) == \
        (40.0, "server_postgresql", 50.0, 10.0)
    assert d["driver_ms_per_trial"] == 100.0 and d["driver_trials_per_s"] == 10.0
    assert d["driver_trials_per_s_if_mlflow_fully_overlapped"] == 16.7      # 1000 / max(40, 50 + 10)
    assert d["driver_ms_per_trial_by_children_mode"] is None                # no per-mode measurement given
    assert out["driver"]["postgresql@n=10000"]["driver_ms_per_trial"] == 160.0
    assert set(out["driver"]) == {"postgresql@n=500", "postgresql@n=10000"}

    c = out["drivers_and_overhead"]["rww_ei_defaults / postgresql@n=500"]
    assert c["drivers_needed_exact"] == 0.4 and c["drivers_needed"] == 1    # 4 trials/s x 0.1 s
    assert c["overhead_fraction_of_trial"] == 0.025 and c["below_5pct"] is True

    # overhead vs history is against SQLite's MLflow figure (no per-mode measurement): 100 * ms / 4000 ms
    h = out["overhead_pct_vs_history"]
    assert h["five_pct_ms"] == 200.0
    assert h["cells"] == {"postgresql@500": {"all": 2.0}, "postgresql@10000": {"all": 3.5}}

    b = out["bottleneck"]
    assert b["driver_case"] == "postgresql@n=500"
    one = b["rww_ei_defaults"]
    assert one["one_driver_trials_per_s"] == 10.0
    assert one["one_driver_wall_h"] == 0.3        # the actors (4/s) limit, not the driver (10/s): 5000 / 4 / 3600
    assert one["drivers_for_full_cluster"] == 1 and one["subjects_per_driver"] == 10
    assert one["cores_one_driver_keeps_busy"] == 40.0
    assert b["default_children_mode"]["mode"] == "all" and b["default_children_mode"]["driver_ms_per_trial"] == 100.0

    w = out["db_writes"]
    assert w["optuna_commits_per_s"] == 20 and w["optuna_inserts_updates_per_s"] == 20   # 4/s x 5
    assert w["mlflow_requests_per_s_children_all"] == 12
    assert out["storage"]["optuna_postgresql"]["GB"] == 0.01                           # 2000 B x 5000 trials
    # no per-mode measurement: best_k and none derived from the server's `all` and the trials table's 0.5 s
    modes = out["mlflow_modes"]
    assert (modes["backend"], modes["all_ms_per_trial"]) == ("server_postgresql", 50.0)
    assert modes["best_k5_ms_per_trial"] == 1.5 and modes["none_ms_per_trial"] == 1.0   # 50*5/500 + 500/500


def test_the_driver_history_size_follows_the_study_and_the_nearest_measurement_is_used():
    out = projection(_measured({200: 20.0, 10000: 100.0}), "all", StudyShape(trials=300), MODEL)
    d = out["driver"]["postgresql@n=300"]          # a subject's last trial: n = trials per subject
    assert d["optuna_measured_at_n"] == 200 and d["optuna_tpe_ask_tell_ms"] == 20.0
    assert out["bottleneck"]["driver_case"] == "postgresql@n=300"


def test_driver_limits_once_the_cluster_outruns_it():
    # 5 core-s per trial on 16-core nodes: 3.2 trials/s per node; a 100 ms driver takes 10 trials/s,
    # so the actors limit up to 3 nodes (9.6/s) and the driver from 4 (12.8/s)
    core_s = trial_core_s({"sim_s_per_trial": 10.0, "sim_s_per_wall_s_per_core": 2.0})[0]
    assert core_s == 5.0
    got = {n: study_rate(cluster_trials_per_s(16 * n, core_s), 100.0) for n in range(1, 9)}
    assert {n: limit for n, (_, limit) in got.items()} == {n: "actors" if n <= 3 else "driver" for n in range(1, 9)}
    assert got[3][0] == 9.6 and got[4][0] == 10.0 and got[8][0] == 10.0
    # two drivers take 20/s: the switch moves to 7 nodes (6 nodes: 19.2/s; 7: 22.4/s)
    two = [study_rate(cluster_trials_per_s(16 * n, core_s), 100.0, drivers=2)[1] for n in (6, 7)]
    assert two == ["actors", "driver"]

    # the projection's one-driver wall time follows the same switch
    model = {"rww_ei_defaults": {"sim_s_per_trial": 10.0, "sim_s_per_wall_s_per_core": 2.0}}
    res = _measured({500: 40.0}, server_ms=50.0, pack_ms=10.0)            # a 100 ms driver
    wall = {n: projection(res, "all", StudyShape(subjects=36, trials=500, nodes=n), model)
            ["bottleneck"]["rww_ei_defaults"]["one_driver_wall_h"] for n in (3, 4, 8)}
    assert wall == {3: round(18000 / 9.6 / 3600, 1), 4: 0.5, 8: 0.5}       # 18000 trials at 9.6/s, then 10/s


@pytest.mark.parametrize("source", ["hand", "committed"])
def test_more_nodes_never_slow_the_study(source):
    res = _measured() if source == "hand" else json.loads(COMMITTED.read_text())
    models = MODEL if source == "hand" else REFERENCE_MODELS
    outs = [projection(res, "best_k", StudyShape(nodes=n), models) for n in (1, 2, 5, 10, 50, 100, 400)]
    for name in models:
        rate = [o["models"][name]["cluster_trials_per_s"] for o in outs]
        wall = [o["models"][name]["wall_s"] for o in outs]
        one_driver = [o["bottleneck"][name]["one_driver_wall_h"] for o in outs]
        need = [o["drivers_and_overhead"][f"{name} / postgresql@n=500"]["drivers_needed"] for o in outs]
        assert rate == sorted(rate) and len(set(rate)) == len(rate), rate     # strictly more trials per s
        assert wall == sorted(wall, reverse=True), wall
        assert one_driver == sorted(one_driver, reverse=True), one_driver
        assert need == sorted(need), need
        assert need[-1] > need[0]


def test_the_committed_projection_is_what_the_code_computes_from_its_inputs():
    res = json.loads(COMMITTED.read_text())
    shape = StudyShape()
    assert projection(res, resolve_children("auto", shape.subjects, shape.trials), shape) == res["projection"]


@pytest.mark.parametrize("field", ["subjects", "trials", "nodes", "cores_per_node"])
@pytest.mark.parametrize("value", [0, -3, 2.5, True, None])
def test_a_study_shape_must_be_positive_integers(field, value):
    with pytest.raises(ValueError, match=f"StudyShape.{field} must be a positive integer"):
        StudyShape(**{field: value})


def test_bad_costs_are_refused():
    with pytest.raises(ValueError, match="sim_s_per_wall_s_per_core must be a finite number > 0"):
        projection(_measured(), "all", SHAPE, {"rww_ei_defaults": {"sim_s_per_trial": 8.0,
                                                                   "sim_s_per_wall_s_per_core": 0.0}})
    with pytest.raises(ValueError, match="trials_per_s_per_core"):
        trial_core_s({"what": "no cost given"})
    with pytest.raises(ValueError, match="optuna_ms must be a finite number >= 0"):
        projection(_measured({500: -1.0}), "all", SHAPE, MODEL)
    with pytest.raises(ValueError, match="mlflow_ms"):
        driver_cost(1.0, 500, "sqlite", math.nan, 0.0, None)
    with pytest.raises(ValueError, match="driver_ms_per_trial must be a finite number > 0"):
        study_rate(10.0, 0.0)
    with pytest.raises(ValueError, match="drivers must be a positive integer"):
        study_rate(10.0, 100.0, drivers=0)
    with pytest.raises(ValueError, match="must include 'rww_ei_defaults'"):
        projection(_measured(), "all", SHAPE, {"hopf": {"trials_per_s_per_core": 30.0}})
