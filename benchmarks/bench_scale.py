"""How explorer's orchestration scales: Optuna ask+tell vs study history, MLflow logging and
search_runs vs runs held, zarr write/pack/read, and a projection to a 1000-subject x 500-trial study
on 100 nodes of 16 cores. Prints JSON (``--out`` also writes it).

    python benchmarks/bench_scale.py --quick          # smoke run: ~3 min with PostgreSQL, ~25 s without
    python benchmarks/bench_scale.py --out benchmarks/results/bench_scale.json   # full, ~20 min

PostgreSQL (and the gRPC storage proxy and an ``mlflow server`` in front of it) runs on a
throw-away server (``cluster/start_postgres.sh``, ``cluster/stop_postgres.sh``) started by
tests/services.py, the helpers the tests use; without the server installed (no pg_ctl) that backend
is skipped with a message. ``--no-postgres`` skips it on purpose. The projection's arithmetic is
benchmarks/scale_projection.py.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import inspect
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np

from explorer.tracking import resolve_children

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT / "benchmarks", ROOT / "tests"):   # scale_projection.py; services.py (shared with the tests)
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))
from scale_projection import StudyShape, projection  # noqa: E402
from services import (Postgres, grpc_proxy, postgres_missing, postgres_version, running_mlflow,  # noqa: E402
                      throwaway_postgres)

PARAMS = ("G", "J_NMDA", "w_p", "sigma")          # 4 free float parameters
ALL_STORAGES = ("journal", "sqlite", "postgresql")
ASK_LIMIT_S = 5.0                                 # a sampler whose ask takes longer is stopped at larger n


def log(msg: str) -> None:
    print(f"[bench_scale {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _stats_ms(xs: list[float]) -> dict[str, float]:
    if not xs:
        return {}
    ms = sorted(1000 * x for x in xs)
    p90 = ms[min(len(ms) - 1, int(math.ceil(0.9 * len(ms))) - 1)]
    return {"median_ms": round(statistics.median(ms), 2), "p90_ms": round(p90, 2), "n": len(ms)}


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _record(subject: str, number: int, rng: np.random.Generator, signals: str = ""):
    """A TrialRecord as an actor returns it (4 params, 3 scores, the timings, actor/node, signals)."""
    from explorer.records import TrialRecord

    now = time.time()
    return TrialRecord(subject=subject, number=number,
                       params={p: float(v) for p, v in zip(PARAMS, rng.uniform(0, 1, len(PARAMS)))},
                       seed=int(rng.integers(1 << 30)), state="COMPLETE",
                       scores={"fc_r": float(rng.uniform(0, .7)), "fc_rmse": float(rng.uniform(0, .3)),
                               "fcd_ks": float(rng.uniform(0, 1))},
                       sim_seconds=300.0, wall_seconds=5.1, simulate_wall_seconds=5.0, score_wall_seconds=0.08,
                       store_wall_seconds=0.02, started_at=now - 5.1, ended_at=now, actor="actor-12",
                       node="10.0.0.17", signals=signals or f"file:///data/signals.zarr#subject={subject}&trial={number}")


# ---------------------------------------------------------------------------------------------
# 1. Optuna ask + tell vs history
# ---------------------------------------------------------------------------------------------
def _sampler(name: str, seed: int):
    """explorer's own sampler factory (explorer.search.samplers.make_sampler), default options."""
    from explorer.search.samplers import make_sampler

    cfg = SimpleNamespace(sampler=SimpleNamespace(name=name, options={}), objectives=["fc_r"])
    return make_sampler(cfg, seed)


def _distributions():
    from optuna.distributions import FloatDistribution

    return {p: FloatDistribution(0.0, 1.0) for p in PARAMS}


def _history(n0: int, n1: int, rng: np.random.Generator) -> list:
    """Finished trials n0..n1-1 as explorer leaves them: 4 params, one value, explorer's user attributes."""
    import optuna

    from explorer.search.records import to_user_attrs

    dists = _distributions()
    out = []
    for i in range(n0, n1):
        rec = _record("S0001", i, rng)
        out.append(optuna.trial.create_trial(params=dict(rec.params), distributions=dists,
                                             value=rec.scores["fc_r"], user_attrs=to_user_attrs(rec)))
    return out


def _bulk_history_rdb(storage, study_id: int, trials: list) -> None:
    """Insert finished trials into an RDBStorage in one transaction, with the rows Optuna's own
    ``create_new_trial`` writes (trials, trial_params, trial_values, trial_user_attributes). One
    ``add_trials`` call per trial costs ~35 ms here (a transaction each), too slow for 10k trials."""
    import sqlalchemy as sa
    from optuna.distributions import distribution_to_json

    eng = storage.engine
    meta = sa.MetaData()
    meta.reflect(eng, only=["trials", "trial_params", "trial_values", "trial_user_attributes"])
    T = meta.tables
    with eng.begin() as c:
        first_id = int(c.execute(sa.select(sa.func.coalesce(sa.func.max(T["trials"].c.trial_id), 0))).scalar()) + 1
        number0 = int(c.execute(sa.select(sa.func.count()).select_from(T["trials"])
                                .where(T["trials"].c.study_id == study_id)).scalar())
        now = _dt.datetime.now()
        rows_t, rows_p, rows_v, rows_a = [], [], [], []
        for i, ft in enumerate(trials):
            tid = first_id + i
            rows_t.append({"trial_id": tid, "number": number0 + i, "study_id": study_id, "state": "COMPLETE",
                           "datetime_start": now, "datetime_complete": now})
            for name, value in ft.params.items():
                dist = ft.distributions[name]
                rows_p.append({"trial_id": tid, "param_name": name, "param_value": dist.to_internal_repr(value),
                               "distribution_json": distribution_to_json(dist)})
            rows_v.append({"trial_id": tid, "objective": 0, "value": ft.value, "value_type": "FINITE"})
            rows_a += [{"trial_id": tid, "key": k, "value_json": json.dumps(v)} for k, v in ft.user_attrs.items()]
        c.execute(T["trials"].insert(), rows_t)
        c.execute(T["trial_params"].insert(), rows_p)
        c.execute(T["trial_values"].insert(), rows_v)
        c.execute(T["trial_user_attributes"].insert(), rows_a)
        if eng.dialect.name == "postgresql":
            c.execute(sa.text("SELECT setval(pg_get_serial_sequence('trials', 'trial_id'), "
                              "(SELECT max(trial_id) FROM trials))"))


def _ask_tell_cell(study, sampler_name: str, k: int, budget_s: float, rng: np.random.Generator,
                   seed: int) -> dict[str, Any]:
    """Time up to ``k`` ask + tell (+ explorer's user attributes, one storage call each) pairs."""
    from explorer.search.records import to_user_attrs
    from explorer.search.studies import set_trial_user_attrs

    study.sampler = _sampler(sampler_name, seed)
    dists = _distributions()
    asks, tells, t_start = [], [], time.perf_counter()
    while len(asks) < k:
        t0 = time.perf_counter()
        trial = study.ask(dists)
        t1 = time.perf_counter()
        rec = _record("S0001", trial.number, rng)
        set_trial_user_attrs(study, trial, to_user_attrs(rec))
        study.tell(trial, rec.scores["fc_r"])
        t2 = time.perf_counter()
        asks.append(t1 - t0)
        tells.append(t2 - t1)
        if t1 - t0 > ASK_LIMIT_S or (len(asks) >= 3 and time.perf_counter() - t_start > budget_s):
            break
    total = [a + t for a, t in zip(asks, tells)]
    return {"ask": _stats_ms(asks), "tell_with_attrs": _stats_ms(tells), "ask_tell": _stats_ms(total),
            "max_ask_s": round(max(asks), 3), "cut_by_budget": len(asks) < k}


def bench_optuna(args, base: Path, pg: Postgres | None) -> dict[str, Any]:
    import optuna

    from explorer.search.storage import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    import warnings

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    ns, samplers = args.ns, ["random", "tpe", "cmaes", "gp"]
    storages: list[tuple[str, Callable[[], Any], Callable[[], int] | None]] = [
        ("journal", lambda: open_storage(str(base / "optuna.log")), lambda: _size(base / "optuna.log")),
        ("sqlite", lambda: open_storage(f"sqlite:///{base / 'optuna.db'}"), lambda: _size(base / "optuna.db")),
    ]
    out: dict[str, Any] = {"n_finished": ns, "k_pairs": args.k, "cell_budget_s": args.cell_budget,
                           "ask_limit_s": ASK_LIMIT_S, "samplers": {s: _sampler_desc(s) for s in samplers},
                           "params": len(PARAMS), "user_attrs_per_trial": None, "storages": {},
                           "history": "finished trials with 4 float params, one value and explorer's user attributes "
                                      "(to_user_attrs of a TrialRecord); journal: study.add_trials; SQL: the same "
                                      "rows bulk-inserted in one transaction (one add_trial per trial costs ~35 ms)",
                           "pair": "study.ask(4 float distributions) + explorer.search.studies.set_trial_user_attrs "
                                   "(one storage call per attribute on SQL, one append on the journal) + study.tell"}
    if pg is not None:
        storages.append(("postgresql", lambda: open_storage(pg.optuna_url), lambda: pg.db_bytes(pg.optuna_url)))
    else:
        out["storages"]["postgresql"] = out["storages"]["grpc_proxy"] = {"skipped": args.pg_skip_reason}
    storages = [x for x in storages if x[0] in args.optuna_storages]
    from explorer.search.records import to_user_attrs

    out["user_attrs_per_trial"] = len(to_user_attrs(_record("S", 0, np.random.default_rng(0))))
    skip_n: dict[str, int] = {}           # sampler -> the smallest n not measured
    skipped: dict[str, str] = {}          # sampler -> why (shared: sampler cost does not depend on the storage)
    for sname, opener, sizer in storages:
        cells: dict[str, Any] = {"history_create_s": {}, "cells": {}}
        out["storages"][sname] = cells
        views = [(sname, None)]
        proxy_ctx = grpc_proxy(pg.optuna_url, base) if sname == "postgresql" else contextlib.nullcontext()
        with proxy_ctx as proxy:
            if proxy is not None:
                views.append(("grpc_proxy", proxy))
                out["storages"]["grpc_proxy"] = {"backend": "postgresql", "cells": {}}
            storage = opener()
            study = optuna.create_study(storage=storage, study_name="bench/S0001", direction="maximize",
                                        load_if_exists=True)
            rng, have = np.random.default_rng(1), 0
            for n in ns:
                t0 = time.perf_counter()
                for i in range(have, n, 1000):
                    hist = _history(i, min(n, i + 1000), rng)
                    if sname == "journal":
                        study.add_trials(hist)
                    else:
                        _bulk_history_rdb(storage, study._study_id, hist)
                cells["history_create_s"][str(n)] = round(time.perf_counter() - t0, 2)
                have = n
                log(f"optuna {sname}: history at n={n} ({cells['history_create_s'][str(n)]} s)")
                for view, px in views:
                    if px is None:
                        vstudy = study
                    else:
                        from optuna.storages import GrpcStorageProxy

                        vstudy = optuna.load_study(study_name="bench/S0001",
                                                   storage=GrpcStorageProxy(host=px[0], port=px[1]))
                    vcells = out["storages"][view]["cells"]
                    for smp in samplers:
                        key = f"{smp}@{n}"
                        sk = smp if smp == "gp" else f"{smp}@{view}"   # GP's cost is the sampler's, shared
                        if sk in skip_n and n >= skip_n[sk]:
                            vcells[key] = {"skipped": skipped[sk]}
                            continue
                        if smp == "gp" and "gp" in _gp_prev and _gp_predict(_gp_prev["gp"], n) > 6 * ASK_LIMIT_S:
                            pn, pt = _gp_prev["gp"]
                            skip_n[smp] = n
                            skipped[smp] = (f"predicted ask > {6 * ASK_LIMIT_S:.0f} s at n={n}: measured {pt:.2f} s "
                                            f"at n={pn}, scaled by (n/{pn})^{_gp_exp(n)} (never run, to never hang)")
                            vcells[key] = {"skipped": skipped[smp]}
                            continue
                        n_now = len(vstudy.get_trials(deepcopy=False))
                        cell = _ask_tell_cell(vstudy, smp, args.k, args.cell_budget, rng, seed=n)
                        cell["n_in_study"] = n_now
                        vcells[key] = cell
                        log(f"optuna {view} {key}: ask+tell {cell['ask_tell']['median_ms']} ms "
                            f"(ask {cell['ask']['median_ms']}, tell {cell['tell_with_attrs']['median_ms']})")
                        if smp == "gp":
                            _gp_prev["gp"] = (n, cell["ask"]["median_ms"] / 1000)
                        if cell["max_ask_s"] > ASK_LIMIT_S:
                            skip_n[sk] = next((m for m in ns if m > n), n + 1)
                            skipped[sk] = f"ask > {ASK_LIMIT_S:.0f} s at n={n} ({view})"
            total = len(study.get_trials(deepcopy=False))
            if sizer is not None:
                with contextlib.suppress(Exception):
                    size = sizer()
                    cells["bytes"] = size
                    cells["trials_in_storage"] = total
                    cells["bytes_per_trial"] = round(size / total)
            with contextlib.suppress(Exception):
                storage.remove_session()
            with contextlib.suppress(Exception):
                storage.engine.dispose()
        _gp_prev.clear()
    out["skipped"] = skipped
    return out


_gp_prev: dict[str, tuple[int, float]] = {}


def bench_optuna_calls(args, base: Path, pg: Postgres | None) -> dict[str, Any]:
    """Database round trips of one explorer ask+tell (RandomSampler, so no sampler reads), counted at
    the database: SQL commits and statements (SQLAlchemy engine events) or journal appends; and the
    storage's bytes per trial (size growth over 1000 added trials)."""
    import optuna
    import sqlalchemy as sa

    from explorer.search.storage import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    d = base / "calls"
    d.mkdir(exist_ok=True)
    kinds = [("journal", str(d / "optuna.log"), lambda: _size(d / "optuna.log")),
             ("sqlite", f"sqlite:///{d / 'optuna.db'}", lambda: _size(d / "optuna.db"))]
    if pg is not None:
        kinds.append(("postgresql", pg.optuna_url, lambda: pg.db_bytes(pg.optuna_url)))
    out: dict[str, Any] = {}
    rng = np.random.default_rng(5)
    for name, url, sizer in kinds:
        storage = open_storage(url)
        study = optuna.create_study(storage=storage, study_name=f"calls/{name}", direction="maximize")
        add = (lambda h: study.add_trials(h)) if name == "journal" else \
            (lambda h: _bulk_history_rdb(storage, study._study_id, h))
        add(_history(0, 1000, rng))
        b0 = sizer()
        add(_history(1000, 2000, rng))
        b1 = sizer()
        counts: dict[str, int] = {"commits": 0, "INSERT": 0, "UPDATE": 0, "SELECT": 0, "DELETE": 0, "appends": 0}
        if name == "journal":
            backend = storage._backend
            orig = backend.append_logs

            def counted(logs, __o=orig):
                counts["appends"] += 1
                return __o(logs)

            backend.append_logs = counted
        else:
            def on_commit(conn):
                counts["commits"] += 1

            def on_exec(conn, cursor, statement, params, context, executemany):
                words = statement.split()
                verb = words[0].upper() if words else ""
                if verb in counts:
                    counts[verb] += 1
                if verb == "INSERT" and len(words) > 2:
                    counts[f"INSERT {words[2]}"] = counts.get(f"INSERT {words[2]}", 0) + 1

            sa.event.listen(storage.engine, "commit", on_commit)
            sa.event.listen(storage.engine, "before_cursor_execute", on_exec)
        cell = _ask_tell_cell(study, "random", 10, 60.0, rng, seed=1)
        pairs = cell["ask_tell"]["n"]
        per = {k: round(v / pairs, 1) for k, v in counts.items() if v}
        per["pairs_counted"] = pairs
        out[name] = {"per_ask_tell": per, "bytes_per_trial": round((b1 - b0) / 1000),
                     "random_ask_tell_ms": cell["ask_tell"]["median_ms"]}
        log(f"optuna calls {name}: {out[name]}")
        with contextlib.suppress(Exception):
            storage.engine.dispose()
    return out


def _gp_exp(n: int) -> int:
    """GP's ask is dominated by a constant (hyperparameter fitting restarts) up to ~1000 trials
    (flat from 50 to 200 here), and by its O(n^3) Cholesky beyond."""
    return 1 if n <= 1000 else 3


def _gp_predict(prev: tuple[int, float], n: int) -> float:
    pn, pt = prev
    return pt * (n / pn) ** _gp_exp(n)


def _sampler_desc(name: str) -> str:
    s = _sampler(name, 0)
    extra = ", constant_liar=True (explorer's default)" if name == "tpe" else ""
    return f"{type(s).__name__}{extra}"


# ---------------------------------------------------------------------------------------------
# 2. MLflow
# ---------------------------------------------------------------------------------------------
def _children_modes() -> str | None:
    """Whether explorer's Tracker takes ``children`` (all | best_k | none)."""
    from explorer.tracking import Tracker

    return "children" if "children" in inspect.signature(Tracker.__init__).parameters else None


def _log_cost(uri: str, artifact_location: str | None, trials: int, batch: int, rng) -> dict[str, Any]:
    """ms per trial of Tracker.log_trials (create_run + log_batch + set_terminated per trial), and the
    cost of one per-subject trials table artifact (what every tracking.children mode logs at the end)."""
    from explorer.tracking import Tracker

    t0 = time.perf_counter()
    tr = Tracker(uri, f"log-{uuid.uuid4().hex[:6]}", artifact_location=artifact_location,
                 settings={"dt_ms": 0.1, "duration_s": 300.0})
    open_s = time.perf_counter() - t0
    recs = [_record("S0001", i, rng) for i in range(trials)]
    t0 = time.perf_counter()
    tr.parent_run("S0001")
    tr.log_trials("S0001", [])           # the first call searches the subject's existing runs once
    first_s = time.perf_counter() - t0
    per_call = []
    t0 = time.perf_counter()
    for i in range(0, trials, batch):
        c0 = time.perf_counter()
        tr.log_trials("S0001", recs[i:i + batch])
        per_call.append((time.perf_counter() - c0) / len(recs[i:i + batch]))
    ms = 1000 * (time.perf_counter() - t0) / trials
    # the per-subject trials table (one CSV artifact on the parent run), 500 rows
    rows = ["number,state,fc_r,fc_rmse,fcd_ks," + ",".join(PARAMS) + ",seed,wall_seconds"]
    for i in range(500):
        rows.append(",".join(str(x) for x in (i, "COMPLETE", *rng.uniform(0, 1, 3), *rng.uniform(0, 1, 4), i, 5.1)))
    t0 = time.perf_counter()
    tr.client.log_text(tr.parent_run("S0001"), "\n".join(rows), "trials/trials.csv")
    table_s = time.perf_counter() - t0
    return {"ms_per_trial": round(ms, 2), "ms_per_trial_median_of_calls": round(1000 * statistics.median(per_call), 2),
            "trials": trials, "records_per_call": batch, "tracker_open_s": round(open_s, 3),
            "first_call_search_s": round(first_s, 3), "trials_table_500_rows_s": round(table_s, 3),
            "requests_per_trial": 3}


def _log_cost_modes(uri: str, artifact_location: str | None, trials: int, batch: int, rng) -> dict[str, Any]:
    """Per tracking.children mode: ms per trial of log_trials over ``trials`` trials (random scores, so best_k
    logs a trial entering the best k and deletes the one it pushes out) plus the trials table
    (log_trial_table) once at the end, as the driver does when the subject finishes."""
    from explorer.tracking import Tracker

    out: dict[str, Any] = {"trials": trials, "records_per_call": batch}
    for mode in ("all", "best_k", "none"):
        tr = Tracker(uri, f"modes-{mode}-{uuid.uuid4().hex[:6]}", artifact_location=artifact_location,
                     settings={"dt_ms": 0.1, "duration_s": 300.0}, children=mode, best_k=10)
        recs = [_record("S0001", i, rng) for i in range(trials)]
        tr.parent_run("S0001")
        tr.log_trials("S0001", [])
        t0 = time.perf_counter()
        for i in range(0, trials, batch):
            tr.log_trials("S0001", recs[i:i + batch])
        log_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        tr.log_trial_table("S0001", recs)
        table_s = time.perf_counter() - t0
        out[mode] = {"log_trials_ms_per_trial": round(1000 * log_s / trials, 2),
                     "trials_table_s": round(table_s, 3),
                     "ms_per_trial_with_table": round(1000 * (log_s + table_s) / trials, 2),
                     "child_runs": len(tr.trial_runs("S0001")) if mode != "none" else 0}
        log(f"mlflow modes {uri[:22]} {mode}: {out[mode]}")
    out["best_k"]["k"] = 10
    return out


def bench_mlflow_log(args, base: Path, pg: Postgres | None) -> dict[str, Any]:
    rng = np.random.default_rng(7)
    if not _children_modes():
        return {"skipped": "explorer's Tracker has no `children` option"}
    out = {"sqlite": _log_cost_modes(f"sqlite:///{base / 'mlflow_modes.db'}", str(base / "mlartifacts_m"),
                                     args.modes_trials, args.log_batch, rng)}
    if pg is not None:
        with running_mlflow(pg.mlflow_url) as uri:
            out["server_postgresql"] = _log_cost_modes(uri, None, args.modes_trials, args.log_batch, rng)
    else:
        out["server_postgresql"] = {"skipped": args.pg_skip_reason}
    return out


def _proto_rows(engine, run_ids: list[str]) -> tuple[dict[str, list[dict]], Any]:
    import sqlalchemy as sa

    meta = sa.MetaData()
    meta.reflect(engine, only=["runs", "tags", "params", "metrics", "latest_metrics"])
    out = {}
    with engine.connect() as c:
        for name, table in meta.tables.items():
            if name not in ("runs", "tags", "params", "metrics", "latest_metrics"):
                continue
            out[name] = [dict(r._mapping) for r in c.execute(sa.select(table).where(table.c.run_uuid.in_(run_ids)))]
    return out, meta


def _clone(row: dict, old: str, new: str, tag_values: dict[str, str] | None = None, name: str | None = None,
           dt_ms: int = 0) -> dict:
    r = {}
    for k, v in row.items():
        r[k] = v.replace(old, new) if isinstance(v, str) and old in v else v
    if tag_values and r.get("key") in tag_values and "value" in r:
        r["value"] = tag_values[r["key"]]
    if name is not None and "name" in r and "lifecycle_stage" in r:
        r["name"] = name
    for t in ("start_time", "end_time"):
        if r.get(t) is not None:
            r[t] = r[t] + dt_ms
    return r


class RunFiller:
    """Fills one experiment with runs straight through SQLAlchemy (bulk inserts into MLflow's own tables):
    copies of a prototype parent run and child run that explorer's Tracker logged, one parent per
    subject and ``per_subject`` children each, with each copy's subject, trial, run name and parent
    tags set, as the Tracker would have written them."""

    def __init__(self, db_url: str, tracker, per_subject: int) -> None:
        import sqlalchemy as sa

        self.engine = sa.create_engine(db_url)
        self.per_subject = per_subject
        self.tracker = tracker
        self.parent_id = tracker.parent_run("S0000")
        tracker.log_trials("S0000", [_record("S0000", 0, np.random.default_rng(0))])
        self.child_id = tracker.trial_runs("S0000")[0]["run_id"]
        rows, self.meta = _proto_rows(self.engine, [self.parent_id, self.child_id])
        self.proto = {rid: {t: [r for r in rs if r["run_uuid"] == rid] for t, rs in rows.items()}
                      for rid in (self.parent_id, self.child_id)}
        self.runs = 2            # the prototypes (subject S0000, one trial)
        self.parents: dict[int, str] = {}

    def fill_to(self, total: int, chunk_runs: int = 2000) -> float:
        t0 = time.perf_counter()
        pending: dict[str, list[dict]] = {t: [] for t in self.proto[self.child_id]}
        count = 0
        while self.runs < total:
            i = self.runs - 2                      # child index over all subjects
            s, trial = divmod(i, self.per_subject)
            subject = f"S{s + 1:04d}"
            if trial == 0:
                pid = uuid.uuid4().hex
                self.parents[s] = pid
                for t, rs in self.proto[self.parent_id].items():
                    pending[t] += [_clone(r, self.parent_id, pid, {"subject": subject, "mlflow.runName": subject},
                                          name=subject, dt_ms=i) for r in rs]
                self.runs += 1
                count += 1
            rid = uuid.uuid4().hex
            name = f"{subject}-t{trial:05d}"
            for t, rs in self.proto[self.child_id].items():
                pending[t] += [_clone(r, self.child_id, rid, {"subject": subject, "trial": str(trial),
                                                              "mlflow.runName": name,
                                                              "mlflow.parentRunId": self.parents[s]},
                                      name=name, dt_ms=i) for r in rs]
            self.runs += 1
            count += 1
            if count >= chunk_runs or self.runs >= total:
                self._flush(pending)
                pending = {t: [] for t in self.proto[self.child_id]}
                count = 0
        return time.perf_counter() - t0

    def _flush(self, pending: dict[str, list[dict]]) -> None:
        with self.engine.begin() as c:
            for t in ("runs", "tags", "params", "metrics", "latest_metrics"):
                if pending.get(t):
                    c.execute(self.meta.tables[t].insert(), pending[t])


def _search_times(uri: str, exp_id: str, all_pages_cap_s: float, repeats: int) -> dict[str, Any]:
    from mlflow import MlflowClient

    from explorer.tracking.records import ROLE

    client = MlflowClient(tracking_uri=uri)

    def first():
        return client.search_runs([exp_id], max_results=1000)

    def subject():
        return client.search_runs([exp_id], filter_string=f"tags.`{ROLE}` = 'trial' and tags.subject = 'S0001'",
                                  max_results=1000)

    out: dict[str, Any] = {}
    for name, fn in (("first_page_1000", first), ("filter_subject_S0001", subject)):
        ts, got = [], 0
        for _ in range(repeats):
            t0 = time.perf_counter()
            got = len(fn())
            ts.append(time.perf_counter() - t0)
        out[name] = {"median_s": round(statistics.median(ts), 3), "runs_returned": got, "repeats": repeats}
    t0, token, pages, runs = time.perf_counter(), None, 0, 0
    while True:
        page = client.search_runs([exp_id], max_results=1000, page_token=token)
        pages += 1
        runs += len(page)
        token = page.token
        if not token:
            break
        if time.perf_counter() - t0 > all_pages_cap_s:
            break
    el = time.perf_counter() - t0
    out["all_pages"] = {"s": round(el, 2), "pages": pages, "runs": runs, "complete": not token,
                        "s_per_page": round(el / pages, 3)}
    if token:
        out["all_pages"]["note"] = (f"stopped after {all_pages_cap_s:.0f} s; time for all pages = pages needed x "
                                    "s_per_page")
    return out


def bench_mlflow(args, base: Path, pg: Postgres | None) -> dict[str, Any]:
    from explorer.tracking import Tracker

    rng = np.random.default_rng(2)
    out: dict[str, Any] = {"log": {}, "search": {}}
    modes = _children_modes()
    out["children_modes"] = ("log below is Tracker's default children=all; each mode is measured in section "
                             "mlflow_modes" if modes else
                             "explorer's Tracker has no `children` option yet: `all` measured; best_k and none "
                             "derived (see projection.mlflow_modes)")
    # (a) per-trial logging cost
    sq = base / "mlflow_log.db"
    out["log"]["sqlite"] = _log_cost(f"sqlite:///{sq}", str(base / "mlartifacts"), args.log_trials, args.log_batch, rng)
    log(f"mlflow log sqlite: {out['log']['sqlite']['ms_per_trial']} ms/trial")
    # (b) search_runs vs runs held: SQLite direct
    backends = [("sqlite", f"sqlite:///{base / 'mlflow_search.db'}", None)]
    if pg is not None:
        backends.append(("server_postgresql", pg.mlflow_url, "server"))
    else:
        out["log"]["server_postgresql"] = out["search"]["server_postgresql"] = {"skipped": args.pg_skip_reason}
    server_trials = max(args.log_batch, args.log_trials // 4)
    for name, db_url, via in backends:
        ctx = running_mlflow(db_url) if via == "server" else contextlib.nullcontext(db_url)
        with ctx as uri:
            if via == "server":
                out["log"][name] = _log_cost(uri, None, server_trials, args.log_batch, rng)
                log(f"mlflow log {name}: {out['log'][name]['ms_per_trial']} ms/trial")
            tr = Tracker(uri, "search-bench", artifact_location=None if via else str(base / "mlartifacts_s"),
                         settings={"dt_ms": 0.1, "duration_s": 300.0})
            filler = RunFiller(db_url, tr, per_subject=args.per_subject)
            res: dict[str, Any] = {"runs_per_subject": args.per_subject, "sizes": {}}
            t_fill = 0.0
            for n in args.runs:
                t_fill += filler.fill_to(n)
                cell = _search_times(uri, tr.experiment_id, args.all_pages_cap, args.search_repeats)
                cell["fill_s_cumulative"] = round(t_fill, 1)
                if via == "server":
                    cell["direct_postgresql"] = _search_times(db_url, tr.experiment_id, 0.0, 1)["first_page_1000"]
                res["sizes"][str(n)] = cell
                log(f"mlflow search {name} n={n}: first page {cell['first_page_1000']['median_s']} s, "
                    f"subject {cell['filter_subject_S0001']['median_s']} s, all {cell['all_pages']}")
            res["runs_total"] = filler.runs
            with contextlib.suppress(Exception):
                size = _size(Path(db_url[len("sqlite:///"):])) if name == "sqlite" else pg.db_bytes(db_url)
                res["db_bytes"] = size
                res["db_bytes_per_run"] = round(size / filler.runs)
            filler.engine.dispose()
            out["search"][name] = res
    return out


# ---------------------------------------------------------------------------------------------
# 3. zarr
# ---------------------------------------------------------------------------------------------
def bench_zarr(args, base: Path) -> dict[str, Any]:
    from explorer.store import SignalStore

    rng = np.random.default_rng(3)
    out: dict[str, Any] = {"regions": args.regions, "trs": args.trs, "trials_per_write": 16,
                           "data": "random float32 (incompressible: bytes are an upper bound)"}
    store = SignalStore(str(base / "signals.zarr"))
    bold = rng.standard_normal((args.trs, args.regions)).astype(np.float32)
    fc = np.corrcoef(bold.T).astype(np.float32)
    per, n = [], 0
    for _ in range(args.zarr_writes):
        items = [(_record("S0001", n + j, rng), bold, fc) for j in range(16)]
        t0 = time.perf_counter()
        store.write_trials(items, 2.0)
        per.append((time.perf_counter() - t0) / 16)
        n += 16
    out["write_trials_ms_per_trial"] = _stats_ms(per)
    staged = _size(base / "signals.zarr")
    out["staged_bytes_per_trial"] = round(staged / n)
    t0 = time.perf_counter()
    store.delete_trial("S0001", 3)
    out["delete_trial_ms"] = round(1000 * (time.perf_counter() - t0), 2)
    t0 = time.perf_counter()
    store.pack("S0001")
    out["pack_s"] = round(time.perf_counter() - t0, 3)
    out["pack_ms_per_trial"] = round(1000 * out["pack_s"] / n, 2)
    out["packed_bytes_per_trial"] = round(_size(base / "signals.zarr") / (n - 1))
    t0 = time.perf_counter()
    for i in range(10):
        store.read_trial("S0001", 10 + i)
    out["read_trial_ms"] = round(100 * (time.perf_counter() - t0), 2)
    out["trials"] = n
    out["readme_figures"] = ("README 'Signals store (zarr)': write_trials 1.7-1.8 ms per trial (16 trials of "
                             "700 TRs x 80 regions in one call) vs 8.7-11 ms for one-trial writes; README "
                             "'Overhead': zarr trial write 17 ms, MLflow 16.5 ms per trial (bench_tracking.py, "
                             "1200 TRs x 80 regions, one-trial writes)")
    return out


# ---------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run (small sizes, seconds)")
    ap.add_argument("--postgres", dest="postgres", action="store_true", default=None,
                    help="measure PostgreSQL, the gRPC proxy and an mlflow server (default: when pg_ctl exists)")
    ap.add_argument("--no-postgres", dest="postgres", action="store_false")
    ap.add_argument("--sections", default="optuna,optuna_calls,mlflow_modes,mlflow,zarr")
    ap.add_argument("--out", help="also write the JSON here")
    ap.add_argument("--optuna-storages", default=",".join(ALL_STORAGES),
                    help="storages of the optuna section (with --merge, the others' cells are kept)")
    ap.add_argument("--merge", help="a previous JSON whose sections not run now are kept")
    args = ap.parse_args()
    q = args.quick
    args.ns = [50, 200] if q else [100, 1000, 5000, 10000]
    args.k = 4 if q else 20
    args.cell_budget = 3.0 if q else 10.0
    args.log_trials, args.log_batch = (32, 16) if q else (256, 16)
    args.runs = [200, 1000] if q else [1000, 10000, 50000]
    args.per_subject = 100 if q else 500
    args.all_pages_cap = 10.0 if q else 150.0
    args.search_repeats = 2 if q else 3
    args.regions, args.trs = 80, 150     # default run settings: 300 s recorded at TR 2 s
    args.zarr_writes = 2 if q else 8
    missing = postgres_missing()
    args.pg_skip_reason = "--no-postgres" if args.postgres is False else missing
    args.postgres = args.postgres is not False and missing is None
    sections = set(args.sections.split(","))
    args.optuna_storages = args.optuna_storages.split(",")
    args.modes_trials = 32 if q else 96

    from explorer.sim.kernel import machine_info

    import mlflow
    import optuna

    res: dict[str, Any] = {}
    if args.merge and Path(args.merge).is_file():
        res = json.loads(Path(args.merge).read_text())
    res.update({"benchmark": "bench_scale", "mode": "quick" if q else "full",
                "date": _dt.date.today().isoformat(), "machine": machine_info(),
                "machine_note": "shared machine: other engineers' jobs ran on the same cores; times are upper bounds",
                "versions": {"python": sys.version.split()[0], "optuna": optuna.__version__,
                             "mlflow": mlflow.__version__}})
    if not args.postgres:
        log(f"PostgreSQL skipped: {args.pg_skip_reason}")
    base = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    os.chmod(base, 0o755)
    t_all = time.perf_counter()
    servers = contextlib.ExitStack()
    try:
        pg = (servers.enter_context(throwaway_postgres(("bench_optuna", "bench_mlflow"))) if args.postgres
              else None)
        if pg is not None:
            res["postgresql"] = {"server": "cluster/start_postgres.sh (fsync=off, as the tests)",
                                 "version": postgres_version()}
        for name, fn in (("optuna", lambda: bench_optuna(args, base, pg)),
                         ("mlflow_modes", lambda: bench_mlflow_log(args, base, pg)),
                         ("optuna_calls", lambda: bench_optuna_calls(args, base, pg)),
                         ("mlflow", lambda: bench_mlflow(args, base, pg)),
                         ("zarr", lambda: bench_zarr(args, base))):
            if name not in sections:
                continue
            t0, load0 = time.perf_counter(), os.getloadavg()[0]
            prev = res.get(name)
            with contextlib.redirect_stdout(sys.stderr):    # MLflow prints run links: stdout is the JSON only
                res[name] = fn()
            if name == "optuna" and prev and set(args.optuna_storages) != set(ALL_STORAGES):
                merged = prev
                merged["storages"].update({k: v for k, v in res[name]["storages"].items()
                                           if k in args.optuna_storages or (k == "grpc_proxy" and "postgresql"
                                                                             in args.optuna_storages)})
                merged.setdefault("reruns", []).append({"storages": args.optuna_storages, "date": res["date"],
                                                        "skipped": res[name]["skipped"]})
                res[name] = merged
            res[name]["section_wall_s"] = round(time.perf_counter() - t0, 1)
            res[name]["load_average_1min_start_end"] = [round(load0, 1), round(os.getloadavg()[0], 1)]
            if args.out:
                Path(args.out).write_text(json.dumps(res, indent=1) + "\n")
    finally:
        servers.close()
        shutil.rmtree(base, ignore_errors=True)
    shape = StudyShape()
    res["projection"] = projection(res, resolve_children("auto", shape.subjects, shape.trials), shape)
    res["wall_s"] = round(time.perf_counter() - t_all, 1)
    text = json.dumps(res, indent=1)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
