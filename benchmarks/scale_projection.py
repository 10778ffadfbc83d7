"""The projection of benchmarks/bench_scale.py: from the per-trial costs that bench_scale measured (its
result dict) to a study of N subjects x T trials on M nodes. Every figure names what it multiplies in
its ``formula``.

Pure: no I/O and no explorer import (the caller resolves the study's ``tracking.children`` mode), so
tests/benchmarks/test_scale_projection.py checks it on hand-computed inputs.

Units: ``*_ms`` milliseconds per trial, ``*_s`` seconds, ``*_per_s`` trials per second, ``*_GB`` 1e9 bytes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

REFERENCE = "rww_ei_defaults"     # the model that the overhead, driver-count and database-write figures use
SQL_STORAGES = ("postgresql", "grpc_proxy")     # Optuna storages whose study pairs with the MLflow server
README_MLFLOW_MS = 16.5           # README 'Overhead' (bench_tracking.py, SQLite): MLflow ms per trial

# trial cost of each model: README 'Measured figures' (simulated s per wall s per core), default settings
REFERENCE_MODELS: dict[str, dict[str, Any]] = {
    "rww_ei_defaults": {
        "what": "rww_ei, explorer's default run settings (300 s + 20 s transient, dt 0.1 ms, float64, "
                "noise 0.01, batch up to 64), 80 regions",
        "sim_s_per_trial": 320.0, "sim_s_per_wall_s_per_core": 62.0,
        "source": "README 'Simulator speed' after tiling: rww_ei float64, batch 64, noise 0.01: 61-64 sim-s/s "
                  "on one core (2-core AMD EPYC, shared)"},
    "hopf_quickstart": {
        "what": "hopf at the BOLD time scale (experiments/quickstart.yaml: 700 s + 60 s at dt 100 ms)",
        "trials_per_s_per_core": 2040 / 60 / 2 * 1400 / 760,
        "source": "README 'Overhead': gw_fit (1400 s at dt 100 ms) 2040 trials/min on 2 actors, scaled by "
                  "1400/760 simulated s for quickstart's 760 s"},
}


@dataclass(frozen=True)
class StudyShape:
    """The projected study: ``subjects`` x ``trials`` per subject on ``nodes`` nodes of ``cores_per_node``."""

    subjects: int = 1000
    trials: int = 500
    nodes: int = 100
    cores_per_node: int = 16

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"StudyShape.{f.name} must be a positive integer, got {v!r}")

    @property
    def cores(self) -> int:
        return self.nodes * self.cores_per_node

    @property
    def total_trials(self) -> int:
        return self.subjects * self.trials

    def as_dict(self) -> dict[str, int]:
        return {"subjects": self.subjects, "trials_per_subject": self.trials, "total_trials": self.total_trials,
                "nodes": self.nodes, "cores_per_node": self.cores_per_node, "cores": self.cores}


# -- arithmetic on numbers ---------------------------------------------------------------------
def _positive(name: str, value: float) -> float:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return value


def _non_negative(name: str, value: float) -> float:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0 (a measured cost), got {value!r}")
    return value


def trial_core_s(model: Mapping[str, Any]) -> tuple[float, str]:
    """Core-seconds of one trial of ``model`` and how: from ``sim_s_per_trial`` / ``sim_s_per_wall_s_per_core``
    (3 decimals), else 1 / ``trials_per_s_per_core`` (4 decimals)."""
    if "sim_s_per_trial" in model:
        value = (_positive("sim_s_per_trial", model["sim_s_per_trial"])
                 / _positive("sim_s_per_wall_s_per_core", model["sim_s_per_wall_s_per_core"]))
        return round(value, 3), "sim_s_per_trial / sim_s_per_wall_s_per_core"
    if "trials_per_s_per_core" in model:
        return (round(1 / _positive("trials_per_s_per_core", model["trials_per_s_per_core"]), 4),
                "1 / trials_per_s_per_core (measured with explorer's own overhead in it)")
    raise ValueError("a model needs sim_s_per_trial and sim_s_per_wall_s_per_core, or trials_per_s_per_core")


def cluster_trials_per_s(cores: int, core_s_per_trial: float) -> float:
    """Trials per second that ``cores`` actors finish, each trial taking ``core_s_per_trial`` (1 decimal)."""
    return round(cores / _positive("trial_core_s", core_s_per_trial), 1)


def study_rate(actors_trials_per_s: float, driver_ms_per_trial: float, drivers: int = 1) -> tuple[float, str]:
    """Trials per second of a study and what limits it: ``"actors"`` (the cores simulate no faster) or
    ``"driver"`` (``drivers`` drivers, each paying ``driver_ms_per_trial`` of serial database round trips
    and sampling per trial, take no faster). Ties go to the actors."""
    if isinstance(drivers, bool) or not isinstance(drivers, int) or drivers < 1:
        raise ValueError(f"drivers must be a positive integer, got {drivers!r}")
    actors = _positive("actors_trials_per_s", actors_trials_per_s)
    driver = drivers * 1000 / _positive("driver_ms_per_trial", driver_ms_per_trial)
    return (actors, "actors") if actors <= driver else (driver, "driver")


def model_figures(model: Mapping[str, Any], shape: StudyShape) -> dict[str, Any]:
    """``model`` plus its trial cost, the cluster's trials per second, and the study's wall time and node
    hours when the simulation alone limits (each figure rounded, and the next computed from the rounded one)."""
    m = dict(model)
    m["trial_core_s"], m["formula_trial_core_s"] = trial_core_s(model)
    m["cluster_trials_per_s"] = cluster_trials_per_s(shape.cores, m["trial_core_s"])
    m["wall_s"] = round(shape.total_trials / m["cluster_trials_per_s"], 0)
    m["wall_h"] = round(m["wall_s"] / 3600, 2)
    m["node_hours"] = round(m["wall_h"] * shape.nodes, 1)
    m["formula"] = ("cluster_trials_per_s = cores / trial_core_s; wall_s = subjects*trials / "
                    "cluster_trials_per_s; node_hours = wall_h * nodes (simulation only, driver not limiting)")
    return m


def driver_cost(optuna_ms: float, measured_at_n: int, mlflow_backend: str, mlflow_ms: float, zarr_ms: float,
                mlflow_ms_by_mode: Mapping[str, float] | None) -> dict[str, Any]:
    """The driver's serial cost per trial: Optuna ask+tell + MLflow logging + zarr pack, in ms; per
    ``tracking.children`` mode when ``mlflow_ms_by_mode`` (all, best_k, none) was measured."""
    for name, v in (("optuna_ms", optuna_ms), ("mlflow_ms", mlflow_ms), ("zarr_ms", zarr_ms),
                    *((f"mlflow_ms_by_mode[{k}]", x) for k, x in (mlflow_ms_by_mode or {}).items())):
        _non_negative(name, v)
    per = optuna_ms + mlflow_ms + zarr_ms
    overlapped = max(optuna_ms, mlflow_ms + zarr_ms)   # MLflow runs in the driver's background thread
    return {
        "optuna_tpe_ask_tell_ms": optuna_ms, "optuna_measured_at_n": measured_at_n, "mlflow_backend": mlflow_backend,
        "mlflow_log_ms": mlflow_ms, "zarr_driver_ms": zarr_ms,
        "driver_ms_per_trial": round(per, 2),
        "driver_ms_per_trial_by_children_mode": (
            {m: round(optuna_ms + mlflow_ms_by_mode[m] + zarr_ms, 2) for m in ("all", "best_k", "none")}
            if mlflow_ms_by_mode else None),
        "driver_trials_per_s": round(1000 / per, 1) if per > 0 else None,
        "driver_trials_per_s_if_mlflow_fully_overlapped": round(1000 / overlapped, 1) if overlapped > 0 else None,
        "formula": "optuna tpe ask+tell(+attrs) median + MLflow log_trials ms/trial + zarr pack ms/trial "
                   "(store: all, the default: the driver packs each finished subject; actors write the "
                   "signals themselves, so write_trials is actor time)"}


def drivers_and_overhead(model: Mapping[str, Any], driver_ms_per_trial: float) -> dict[str, Any]:
    """Drivers that keep ``model``'s cluster busy, and one driver's cost as a fraction of one trial."""
    per_s = _non_negative("driver_ms_per_trial", driver_ms_per_trial) / 1000
    need = model["cluster_trials_per_s"] * per_s
    frac = per_s / model["trial_core_s"]
    return {"drivers_needed": math.ceil(need), "drivers_needed_exact": round(need, 2),
            "overhead_fraction_of_trial": round(frac, 4), "below_5pct": frac < 0.05,
            "formula": "drivers = cluster_trials_per_s * driver_s_per_trial; overhead = driver_s_per_trial / "
                       "trial_core_s"}


def overhead_pct(optuna_ms: float, mlflow_ms: float, zarr_ms: float, core_s_per_trial: float) -> float:
    """The driver's per-trial cost in percent of one trial's core time (1 decimal)."""
    return round(100 * (optuna_ms + mlflow_ms + zarr_ms) / (1000 * _positive("trial_core_s", core_s_per_trial)), 1)


def driver_bottleneck(model: Mapping[str, Any], driver_ms_per_trial: float, shape: StudyShape) -> dict[str, Any]:
    """One driver against ``model``'s cluster: its rate, the study's wall time with it alone, the cores it
    keeps busy, and the drivers (and subjects each) for the whole cluster."""
    one = 1000 / _positive("driver_ms_per_trial", driver_ms_per_trial)
    rate, _ = study_rate(model["cluster_trials_per_s"], driver_ms_per_trial)
    need = math.ceil(model["cluster_trials_per_s"] / one)
    return {
        "one_driver_trials_per_s": round(one, 1), "cluster_trials_per_s": model["cluster_trials_per_s"],
        "one_driver_wall_h": round(shape.total_trials / rate / 3600, 1),
        "cores_one_driver_keeps_busy": round(one * model["trial_core_s"], 1),
        "drivers_for_full_cluster": need, "subjects_per_driver": math.ceil(shape.subjects / need),
        "formula": "one_driver_trials_per_s = 1000 / driver_ms_per_trial; cores kept busy = that * "
                   "trial_core_s; drivers = ceil(cluster_trials_per_s / one_driver_trials_per_s)"}


# -- reading bench_scale's result --------------------------------------------------------------
def _cell(opt: Mapping[str, Any], storage: str, sampler: str, n: int) -> dict | None:
    c = opt.get("storages", {}).get(storage, {}).get("cells", {}).get(f"{sampler}@{n}")
    return c if c and "ask_tell" in c else None


def _nearest_cell(opt: Mapping[str, Any], storage: str, sampler: str, n: int) -> tuple[int, dict] | None:
    """The measured cell whose history size is nearest ``n`` on a log scale, with that size."""
    ns = [m for m in opt.get("n_finished", []) if _cell(opt, storage, sampler, m)]
    if not ns:
        return None
    m = min(ns, key=lambda m: abs(math.log(m / n)))
    return m, _cell(opt, storage, sampler, m)


def _modes_ms(res: Mapping[str, Any], backend: str) -> dict[str, float] | None:
    """MLflow ms per trial (with the trials table) per children mode, measured on ``backend``, or None."""
    here = res.get("mlflow_modes", {}).get(backend, {})
    return {m: here[m]["ms_per_trial_with_table"] for m in ("all", "best_k", "none")} if "all" in here else None


def _mlflow_cost(res: Mapping[str, Any], storage: str) -> tuple[str, float, dict[str, float] | None]:
    """The MLflow backend paired with Optuna ``storage``, its ms per trial (children=all) and per mode:
    the server on PostgreSQL for the SQL storages when measured, else SQLite, else the README's figure."""
    ml_log = res.get("mlflow", {}).get("log", {})
    backend = ("server_postgresql" if storage in SQL_STORAGES and "ms_per_trial" in
               ml_log.get("server_postgresql", {}) else "sqlite")
    by_mode = _modes_ms(res, backend)
    ms = by_mode["all"] if by_mode else ml_log.get(backend, {}).get("ms_per_trial")
    if ms is None:
        return "README 'Overhead' (bench_tracking.py, SQLite; not measured in this run)", README_MLFLOW_MS, None
    return backend, ms, by_mode


def driver_section(res: Mapping[str, Any], shape: StudyShape) -> dict[str, Any]:
    """``driver_cost`` for each storage measured, at a subject's last trial (``shape.trials``) and at 10000."""
    opt, zarr_ms = res.get("optuna", {}), res.get("zarr", {}).get("pack_ms_per_trial", 0.0)
    drv: dict[str, Any] = {}
    for storage in ("postgresql", "grpc_proxy", "journal", "sqlite"):
        for n in dict.fromkeys((shape.trials, 10000)):
            got = _nearest_cell(opt, storage, "tpe", n)
            if not got:
                continue
            m, cell = got
            backend, ml_ms, by_mode = _mlflow_cost(res, storage)
            drv[f"{storage}@n={n}"] = driver_cost(cell["ask_tell"]["median_ms"], m, backend, ml_ms, zarr_ms, by_mode)
    return drv


def history_section(res: Mapping[str, Any], core_s_per_trial: float) -> dict[str, Any]:
    """Overhead % of one trial at each measured history size (TPE ask+tell per storage, MLflow per mode,
    zarr pack); 5% of the trial is ``five_pct_ms``."""
    opt, zr = res.get("optuna", {}), res.get("zarr", {})
    mlb = next((b for b in ("server_postgresql", "sqlite") if _modes_ms(res, b)), None)
    mode_ms = (_modes_ms(res, mlb) if mlb else
               {"all": res.get("mlflow", {}).get("log", {}).get("sqlite", {}).get("ms_per_trial", README_MLFLOW_MS)})
    hist: dict[str, Any] = {"trial_core_s": core_s_per_trial, "five_pct_ms": round(50 * core_s_per_trial, 1),
                            "mlflow_backend": mlb, "mlflow_ms_per_mode": mode_ms,
                            "zarr_pack_ms": zr.get("pack_ms_per_trial", 0.0),
                            "formula": "overhead % = 100 * (tpe ask+tell(+attrs) median ms at n + MLflow ms/trial of "
                                       "the mode + zarr pack ms/trial) / (1000 * trial_core_s)", "cells": {}}
    for storage in ("journal", "sqlite", "postgresql", "grpc_proxy"):
        for n in opt.get("n_finished", []):
            c = _cell(opt, storage, "tpe", n)
            if c:
                hist["cells"][f"{storage}@{n}"] = {
                    m: overhead_pct(c["ask_tell"]["median_ms"], v, hist["zarr_pack_ms"], core_s_per_trial)
                    for m, v in mode_ms.items()}
    return hist


def bottleneck_section(drv: Mapping[str, Any], models: Mapping[str, Any], shape: StudyShape,
                       children_mode: str) -> dict[str, Any] | None:
    """One driver against the cluster (the cluster's storage: PostgreSQL + MLflow server, else journal or
    SQLite) at a subject's last trial; ``children_mode`` is what ``tracking.children: auto`` resolves to."""
    key = next((k for k in (f"postgresql@n={shape.trials}", f"journal@n={shape.trials}",
                            f"sqlite@n={shape.trials}") if k in drv), None)
    if key is None:
        return None
    d = drv[key]
    by_mode = d.get("driver_ms_per_trial_by_children_mode") or {"all": d["driver_ms_per_trial"]}
    bn: dict[str, Any] = {"driver_case": key, "driver_ms_per_trial": d["driver_ms_per_trial"]}
    for mname, m in models.items():
        bn[f"{mname}_drivers_by_children_mode"] = {
            mode: math.ceil(m["cluster_trials_per_s"] * ms / 1000) for mode, ms in by_mode.items()}
        bn[mname] = driver_bottleneck(m, d["driver_ms_per_trial"], shape)
    ref = models[REFERENCE]
    dm = by_mode.get(children_mode, d["driver_ms_per_trial"])
    bn["default_children_mode"] = {
        "mode": children_mode, "why": "tracking.children: auto resolves by subjects x trials of the study "
                                      "(explorer.tracking.modes.resolve_children)",
        "driver_ms_per_trial": dm, "one_driver_trials_per_s": round(1000 / dm, 1),
        "cores_one_driver_keeps_busy": round(1000 / dm * ref["trial_core_s"], 1),
        "drivers_for_full_cluster_rww_ei": math.ceil(ref["cluster_trials_per_s"] * dm / 1000)}
    bn["answer"] = ("the driver is the first bottleneck: its serial per-trial cost (Optuna ask+tell with one "
                    "commit per user attribute; with children=all also an MLflow child run) caps one driver far "
                    f"below what {shape.cores} cores produce. Answer: per-subject leases in the shared Optuna "
                    "storage, so `explorer run CONFIG --shard i/n` runs n drivers on disjoint subjects "
                    "(default_children_mode.drivers_for_full_cluster_rww_ei of them at the default, "
                    "<model>_drivers_by_children_mode otherwise), and tracking.children (auto -> best_k for this "
                    "study) to cut the MLflow part (see mlflow_modes). Next limit: Optuna commits/s on the one "
                    "PostgreSQL (db_writes).")
    return bn


def storage_section(res: Mapping[str, Any], shape: StudyShape) -> dict[str, Any]:
    """Bytes the study leaves: zarr signals, MLflow runs, Optuna trials, each from a measured bytes-per-unit."""
    zr, ml, calls = res.get("zarr", {}), res.get("mlflow", {}), res.get("optuna_calls", {})
    subjects, total = shape.subjects, shape.total_trials
    st: dict[str, Any] = {}
    zb = zr.get("packed_bytes_per_trial")
    if zb:
        st["zarr"] = {"bytes_per_trial_measured": zb, "measured_trs": zr.get("trs"), "regions": zr.get("regions"),
                      "store_all_GB": round(zb * total / 1e9, 1),
                      "store_best_k5_GB": round(zb * subjects * 5 / 1e9, 2),
                      "formula": "packed_bytes_per_trial * trials (store: all) or * subjects * 5 (store: best, k=5); "
                                 "random data, so an upper bound (BOLD compresses to ~68%, README)"}
    for b in ("server_postgresql", "sqlite"):
        s = ml.get("search", {}).get(b, {})
        if s.get("db_bytes_per_run"):
            runs = total + subjects
            st[f"mlflow_{b}"] = {"bytes_per_run": s["db_bytes_per_run"], "runs_children_all": runs,
                                 "GB_children_all": round(s["db_bytes_per_run"] * runs / 1e9, 2),
                                 "GB_children_best_k10": round(s["db_bytes_per_run"] * subjects * 11 / 1e9, 3),
                                 "formula": "bytes_per_run * (trials + subjects) for children=all; "
                                            "* subjects*(10+1) for best_k=10 (deleted runs purged)"}
    for storage in ("postgresql", "sqlite", "journal"):
        b = calls.get(storage, {}).get("bytes_per_trial")
        if b:
            st[f"optuna_{storage}"] = {"bytes_per_trial": b, "GB": round(b * total / 1e9, 2),
                                       "formula": "bytes_per_trial (growth over 1000 added trials, with explorer's "
                                                  "user attributes) * total trials"}
    return st


def search_section(res: Mapping[str, Any]) -> dict[str, Any]:
    """MLflow search_runs at the largest measured experiment (50000 runs) per backend."""
    srch: dict[str, Any] = {}
    for b in ("sqlite", "server_postgresql"):
        sz = res.get("mlflow", {}).get("search", {}).get(b, {}).get("sizes", {})
        big = sz.get("50000", {}).get("all_pages")
        if big:
            pages = math.ceil(50000 / 1000)
            srch[b] = {"s_per_page_at_50k": big["s_per_page"], "pages_fetched": big["pages"],
                       "complete": big["complete"],
                       "all_pages_50k_s": big["s"] if big["complete"] else round(pages * big["s_per_page"], 0),
                       "first_page_s": {k: v["first_page_1000"]["median_s"] for k, v in sz.items()},
                       "subject_filter_s": {k: v["filter_subject_S0001"]["median_s"] for k, v in sz.items()},
                       "formula": "all pages = 50 pages x measured s_per_page (a fitted slope of time per page over "
                                  "the pages fetched) where the fetch was cut at the cap"}
    return srch


def db_writes_section(res: Mapping[str, Any], rate: float, trials: int) -> dict[str, Any] | None:
    """Database writes per second with the cluster flat out at ``rate`` trials/s, ``trials`` per subject."""
    calls = res.get("optuna_calls", {})
    cb = next((k for k in ("postgresql", "sqlite") if k in calls), None)
    if cb is None:
        return None
    per = calls[cb]["per_ask_tell"]
    return {
        "cluster_trials_per_s (rww_ei defaults)": rate, "optuna_backend": cb,
        "optuna_per_trial_measured": per,
        "optuna_commits_per_s": round(rate * per.get("commits", 0)),
        "optuna_inserts_updates_per_s": round(rate * (per.get("INSERT", 0) + per.get("UPDATE", 0))),
        "journal_appends_per_trial": calls.get("journal", {}).get("per_ask_tell", {}).get("appends"),
        "mlflow_requests_per_trial": 3, "mlflow_requests_per_s_children_all": round(rate * 3),
        "mlflow_best_k10_child_runs_logged_per_subject": round(10 * (1 + math.log(trials / 10)), 1),
        "mlflow_requests_per_s_best_k10": round(rate * 4 * 10 * (1 + math.log(trials / 10)) / trials, 1),
        "formula": "cluster_trials_per_s * per-trial commits/statements counted at the database for one "
                   "explorer ask+tell; MLflow: create_run + log_batch + set_terminated per child run; best_k: "
                   "a trial enters the best k about k*(1 + ln(trials/k)) times in random order, 3 requests each "
                   "+ 1 delete of the run it pushes out"}


def mlflow_modes_section(res: Mapping[str, Any], trials: int) -> dict[str, Any] | None:
    """MLflow ms per trial per children mode: measured (section mlflow_modes), else derived from ``all``."""
    mm = res.get("mlflow_modes", {})
    mb = next((b for b in ("server_postgresql", "sqlite") if "all" in mm.get(b, {})), None)
    if mb:
        return {"backend": mb, "measured": True,
                **{f"{m}_ms_per_trial": mm[mb][m]["ms_per_trial_with_table"] for m in ("all", "best_k", "none")},
                "best_k": 10, "trials_logged": mm[mb]["trials"],
                "formula": "(log_trials wall + log_trial_table once) / trials, measured per mode "
                           "through Tracker(children=...)"}
    ml_log = res.get("mlflow", {}).get("log", {})
    if not ml_log:
        return None
    b = "server_postgresql" if "ms_per_trial" in ml_log.get("server_postgresql", {}) else "sqlite"
    a = ml_log[b]
    return {"backend": b, "all_ms_per_trial": a["ms_per_trial"],
            "best_k5_ms_per_trial": round(a["ms_per_trial"] * 5 / trials
                                          + 1000 * a["trials_table_500_rows_s"] / trials, 2),
            "none_ms_per_trial": round(1000 * a["trials_table_500_rows_s"] / trials, 2),
            "formula": "best_k: all_ms * k/trials + table_s/trials; none: table_s/trials (derived, not measured "
                       "through a Tracker option)"}


# -- the whole projection ----------------------------------------------------------------------
def projection(res: Mapping[str, Any], children_mode: str, shape: StudyShape = StudyShape(),
               models: Mapping[str, Mapping[str, Any]] = REFERENCE_MODELS) -> dict[str, Any]:
    """The study ``shape`` (default 1000 subjects x 500 trials on 100 nodes x 16 cores) projected from
    bench_scale's measurements ``res``; ``children_mode``: what ``tracking.children: auto`` resolves to for
    it. A section whose measurements are missing from ``res`` is left out."""
    if REFERENCE not in models:
        raise ValueError(f"models must include {REFERENCE!r} (the overhead and database figures use it), "
                         f"got {sorted(models)}")
    projected = {name: model_figures(m, shape) for name, m in models.items()}
    out: dict[str, Any] = {"study": shape.as_dict(), "models": projected}
    drv = driver_section(res, shape)
    out["driver"] = drv
    out["drivers_and_overhead"] = {f"{mname} / {key}": drivers_and_overhead(m, d["driver_ms_per_trial"])
                                   for mname, m in projected.items() for key, d in drv.items()}
    out["overhead_pct_vs_history"] = history_section(res, projected[REFERENCE]["trial_core_s"])
    bn = bottleneck_section(drv, projected, shape, children_mode)
    if bn is not None:
        out["bottleneck"] = bn
    out["storage"] = storage_section(res, shape)
    out["mlflow_search"] = search_section(res)
    writes = db_writes_section(res, projected[REFERENCE]["cluster_trials_per_s"], shape.trials)
    if writes is not None:
        out["db_writes"] = writes
    modes = mlflow_modes_section(res, shape.trials)
    if modes is not None:
        out["mlflow_modes"] = modes
    return out
