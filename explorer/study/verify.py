"""Optuna, MLflow and zarr agree on every trial (``explorer verify NAME [--json] [--repair]``).

For every COMPLETE Optuna trial of every subject: its MLflow child run exists (FINISHED, state
COMPLETE) and, unless ``store: none``, its zarr record exists, both with the same parameters and
scores. Which trials must have a child run follows ``tracking.children`` (resolved as the driver
resolves it, :func:`explorer.tracking.modes.tracker_options`): ``all``, every COMPLETE trial;
``best_k``, the subject's best k and its twin (:func:`explorer.tracking.modes.best_children`;
other trials' runs may be there or not); ``none``, none. In ``best_k`` and ``none`` mode every
finished (COMPLETE or FAIL) Optuna trial must also be a row of its subject's MLflow trials table,
with Optuna's state, parameters and scores (``missing_table_row``, ``mismatch_table_row``).
Orphans are reported both ways (an MLflow COMPLETE run or a zarr record with no COMPLETE Optuna
trial). The ``signals`` location each trial recorded (Optuna user attribute, MLflow tag) is
followed too: it must resolve (:meth:`SignalStore.resolve`, staged or packed) to that trial, with
Optuna's parameters, scores and seed (``unresolved_signals``, ``mismatch_signals``). A trial whose
zarr record is missing altogether is reported once, as ``missing_zarr``; with ``store: best`` the
trials pruned on purpose are neither missing nor unresolved. Exit status 1 on any problem.

``--repair`` (holds the study lock, so never beside a running driver): re-creates missing or
mismatched MLflow child runs from the Optuna records (in ``best_k`` mode, deleting runs outside
the best k), re-logs the trials table of a subject whose table is incomplete or wrong, deletes
MLflow and zarr orphans, and reports what cannot be re-created (signals lost from zarr need the
trial to be simulated again).
A recorded location that does not resolve is never rewritten (Optuna keeps a finished trial's
attributes as they are): when the trial's signals are in the store under its number, matching
Optuna, ``--repair`` says so and gives the trial's current location; otherwise the signals must
be simulated again.

The comparison itself is :func:`compare`, a pure function over plain dicts. This module composes
the public APIs of ``explorer.search``, ``explorer.store`` and ``explorer.tracking``; it imports
no optuna, mlflow or zarr itself, and nothing heavy at import.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from explorer.errors import StoreError, StudyError
from explorer.layout import mlflow_artifacts, mlflow_uri, optuna_storage_url, zarr_url
from explorer.records import TrialRecord
from explorer.search import best_summary, from_trial, list_subject_studies, open_storage, open_subject_study
from explorer.search.leases import running_drivers
from explorer.store import SignalStore
from explorer.study.frozen import load_frozen
from explorer.study.lock import StudyLock
from explorer.study.status import REPAIRED, append_run
from explorer.tracking import EcSummary, Tracker
from explorer.tracking.modes import best_children, tracker_options

Trials = Mapping[str, Mapping[int, Mapping[str, Any]]]   # subject -> number -> {params, scores, ...}

KINDS = {
    "missing_mlflow": "COMPLETE Optuna trial has no MLflow run",
    "mismatch_mlflow": "MLflow run differs from Optuna",
    "orphan_mlflow": "MLflow COMPLETE run without a COMPLETE Optuna trial",
    "duplicate_mlflow": "several MLflow runs for one trial",
    "missing_zarr": "COMPLETE Optuna trial has no zarr record",
    "mismatch_zarr": "zarr record differs from Optuna",
    "orphan_zarr": "zarr record without a COMPLETE Optuna trial",
    "unresolved_signals": "recorded signals location does not resolve",
    "mismatch_signals": "recorded signals location holds other data than Optuna's",
    "missing_table_row": "finished Optuna trial missing from its subject's MLflow trials table",
    "mismatch_table_row": "MLflow trials table row differs from Optuna",
    "missing_ec": "finished subject has no EC stored (ec section)",
    "stale_ec": "stored EC was fitted from another trial than the subject's twin",
    "bad_ec": "stored EC is not a finite fit of the right shape",
    "mismatch_ec_mlflow": "MLflow run's EC tags differ from the stored EC",
}
FINISHED = ("COMPLETE", "FAIL")   # the Optuna states a trials table lists


@dataclass
class Problem:
    subject: str
    number: int
    kind: str
    detail: str = ""


@dataclass
class Report:
    problems: list[Problem] = field(default_factory=list)
    checked: int = 0                    # COMPLETE Optuna trials checked
    ec_checked: int = 0                 # finished subjects whose EC was checked (studies with an ec section)
    subjects: int = 0
    repaired: list[str] = field(default_factory=list)
    unrepairable: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for p in self.problems:
            counts[p.kind] = counts.get(p.kind, 0) + 1
        return {"ok": self.ok, "subjects": self.subjects, "checked": self.checked, "ec_checked": self.ec_checked,
                "counts": counts,
                "problems": [asdict(p) for p in self.problems], "repaired": self.repaired,
                "unrepairable": self.unrepairable}


def _same(a: Any, b: Any, rel: float = 1e-9) -> bool:
    try:
        x, y = float(a), float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    return math.isclose(x, y, rel_tol=rel, abs_tol=1e-12)


def _diff(expected: Mapping[str, Any], got: Mapping[str, Any], what: str, required: set[str] | None = None,
          subset: bool = False) -> list[str]:
    """Differences of ``got`` from ``expected``; ``subset``: keys only in ``got`` are fine."""
    out = []
    keys = set(expected) if subset else set(expected) | set(got)
    for k in sorted(keys | (required or set())):
        if k not in got:
            if k in expected:
                out.append(f"{what} {k} missing (expected {expected[k]!r})")
        elif k not in expected:
            if not subset:
                out.append(f"{what} {k}={got[k]!r} unexpected")
        elif not _same(expected[k], got[k]):
            out.append(f"{what} {k}: {got[k]!r} != {expected[k]!r}")
    return out


def _finite(scores: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for k, v in scores.items():
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            out[k] = f
    return out


def compare(optuna_trials: Trials, mlflow_runs: Trials, zarr_trials: Trials | None, *,
            zarr_expected: Mapping[str, set[int]] | None = None, resolved: Trials | None = None,
            mlflow_expected: Mapping[str, set[int]] | None = None, tables: Trials | None = None) -> Report:
    """Check three records of a study against each other.

    ``optuna_trials``: subject -> number -> {"params", "scores", "state" (default COMPLETE)};
    ``mlflow_runs``: subject -> number -> {"params", "scores", "state", "run_id", "duplicates"}
    (``Tracker.trial_runs``); ``zarr_trials``: subject -> number -> {"params", "scores"}
    (``SignalStore.trials``), or None for ``store: none``. ``zarr_expected``: per subject the
    COMPLETE trial numbers that must be in zarr (``store: best`` keeps only some); default all.
    ``resolved``: subject -> number -> what the trial's recorded ``signals`` location resolved to,
    {"ok": bool, "detail": str, "subject", "number", "params", "scores", "seed"} (:func:`resolve_signals`),
    for the trials that recorded a location; None: not checked. A location must resolve to its own
    trial, with Optuna's params, scores and seed (Optuna's ``seed``, or ``record["seed"]``; -1 = unknown).
    It is not checked where the zarr record is absent (already ``missing_zarr``, or pruned on purpose).
    ``mlflow_expected``: per subject the COMPLETE trial numbers that must have a child run
    (``tracking.children: best_k`` or ``none``); default all. ``tables``: subject -> number ->
    {"state", "params", "scores"} of each row of the subject's trials table, or None: not checked;
    where given, every finished (COMPLETE or FAIL) Optuna trial must be a row, with its state,
    params and scores.
    Scores compare on Optuna's finite scores; extra non-finite scores elsewhere are ignored.
    """
    report = Report()
    subjects = sorted(set(optuna_trials) | set(mlflow_runs) | set(zarr_trials or {}))
    report.subjects = len(subjects)
    for sid in subjects:
        opt = optuna_trials.get(sid, {})
        complete = {int(n): t for n, t in opt.items() if t.get("state", "COMPLETE") == "COMPLETE"}
        runs = {int(n): r for n, r in mlflow_runs.get(sid, {}).items()}
        zarr = {int(n): z for n, z in (zarr_trials or {}).get(sid, {}).items()}
        must_zarr = set(complete) if zarr_expected is None or sid not in zarr_expected else set(zarr_expected[sid])
        must_run = set(complete) if mlflow_expected is None or sid not in mlflow_expected else set(mlflow_expected[sid])
        if tables is not None:
            report.problems += _table_problems(sid, opt, tables.get(sid, {}))
        for n, t in sorted(complete.items()):
            report.checked += 1
            params, scores = dict(t.get("params", {})), _finite(t.get("scores", {}))
            run = runs.get(n)
            if run is None:
                if n in must_run:
                    report.problems.append(Problem(sid, n, "missing_mlflow"))
            else:
                d = []
                if run.get("state", "COMPLETE") != "COMPLETE":
                    d.append(f"state {run.get('state')!r}")
                d += _diff(params, run.get("params", {}), "param")
                d += _diff(scores, _finite(run.get("scores", {})), "score", subset=True)
                if d:
                    report.problems.append(Problem(sid, n, "mismatch_mlflow", "; ".join(d)))
                if run.get("duplicates"):
                    report.problems.append(Problem(sid, n, "duplicate_mlflow",
                                                   f"{len(run['duplicates'])} extra run(s)"))
            z = zarr.get(n) if zarr_trials is not None else None
            if zarr_trials is not None:
                if z is None:
                    if n in must_zarr:
                        report.problems.append(Problem(sid, n, "missing_zarr"))
                else:
                    d = _diff(params, z.get("params", {}), "param") + \
                        _diff(scores, _finite(z.get("scores", {})), "score", subset=True)
                    if d:
                        report.problems.append(Problem(sid, n, "mismatch_zarr", "; ".join(d)))
            res = (resolved or {}).get(sid, {}).get(n)
            if res is None or (zarr_trials is not None and z is None):
                continue
            if not res.get("ok"):
                report.problems.append(Problem(sid, n, "unresolved_signals", str(res.get("detail", ""))))
                continue
            d = []
            if "number" in res and (res.get("subject", sid), int(res["number"])) != (sid, n):
                d.append(f"it names subject {res.get('subject', sid)} trial {res['number']}")
            d += _diff(params, res.get("params", {}), "param") + \
                _diff(scores, _finite(res.get("scores", {})), "score", subset=True)
            seed = t.get("seed", t.get("record", {}).get("seed"))
            if seed is not None and int(seed) >= 0 and res.get("seed") is not None and int(res["seed"]) != int(seed):
                d.append(f"seed: {res['seed']!r} != {int(seed)!r}")
            if d:
                report.problems.append(Problem(sid, n, "mismatch_signals", "; ".join(d)))
        for n, run in sorted(runs.items()):
            if n not in complete and run.get("state", "COMPLETE") == "COMPLETE":
                state = opt.get(n, {}).get("state", "absent")
                report.problems.append(Problem(sid, n, "orphan_mlflow", f"Optuna trial is {state}"))
        for n in sorted(zarr):
            if n not in complete:
                state = opt.get(n, {}).get("state", "absent")
                report.problems.append(Problem(sid, n, "orphan_zarr", f"Optuna trial is {state}"))
    return report


def _table_problems(sid: str, opt: Mapping[int, Mapping[str, Any]], rows: Mapping[int, Mapping[str, Any]]
                    ) -> list[Problem]:
    """Finished Optuna trials of ``sid`` missing from its trials table ``rows``, or listed otherwise."""
    out = []
    for n, t in sorted(opt.items()):
        state = t.get("state", "COMPLETE")
        if state not in FINISHED:
            continue
        row = rows.get(int(n))
        if row is None:
            out.append(Problem(sid, int(n), "missing_table_row", f"Optuna trial is {state}"))
            continue
        d = [f"state {row.get('state')!r} != {state!r}"] if row.get("state") != state else []
        d += _diff(dict(t.get("params", {})), row.get("params", {}), "param")
        d += _diff(_finite(t.get("scores", {})), _finite(row.get("scores", {})), "score", subset=True)
        if d:
            out.append(Problem(sid, int(n), "mismatch_table_row", "; ".join(d)))
    return out


# ---- gathering the three records of a study (public APIs of search, store, tracking) -------------
def plain(rec) -> dict[str, Any]:
    """What :func:`compare` reads of a decoded :class:`~explorer.records.TrialRecord`:
    {state, params, scores, record (every field, as a dict)}."""
    return {"state": rec.state, "params": dict(rec.params), "scores": dict(rec.scores), "record": rec.to_dict()}


def optuna_records(cfg, study_dir: Path) -> dict[str, dict[int, dict[str, Any]]]:
    """subject -> number -> :func:`plain` of each trial's record, decoded from the Optuna storage
    (:func:`explorer.search.from_trial`)."""
    storage = open_storage(optuna_storage_url(cfg, study_dir))
    out: dict[str, dict[int, dict[str, Any]]] = {}
    for sid in list_subject_studies(storage, cfg.name):
        study = open_subject_study(storage, cfg, sid, create=False)
        out[sid] = {t.number: plain(from_trial(t, cfg.objectives, sid)) for t in study.get_trials(deepcopy=False)}
    return out


def _open_tracker(cfg, study_dir: Path, subjects: int = 0):
    """The study's tracker, its child-run mode resolved for ``subjects`` subjects as the driver resolves it."""
    return Tracker(mlflow_uri(cfg, study_dir), experiment=cfg.name, artifact_location=mlflow_artifacts(cfg, study_dir),
                   settings=cfg.simulation, **tracker_options(cfg, subjects))


def _open_store(cfg, study_dir: Path):
    try:
        return SignalStore(zarr_url(cfg, study_dir), read_only=True)
    except StoreError:
        return None  # nothing stored yet: every COMPLETE trial is missing


def _twins(cfg, study_dir: Path, subjects) -> dict[str, int | None]:
    """Each subject's twin (its best trial, or the multi-objective compromise): number, or None."""
    storage = open_storage(optuna_storage_url(cfg, study_dir))
    return {sid: best_summary(open_subject_study(storage, cfg, sid, create=False), cfg.objectives).get("number")
            for sid in subjects}


def _best_expected(cfg, opt: Mapping[str, Mapping[int, Mapping[str, Any]]], twins: Mapping[str, int | None],
                   k: int) -> dict[str, set[int]]:
    """Per subject the best ``k`` COMPLETE trials by the first objective, and its twin (``store: best``'s
    signals, ``tracking.children: best_k``'s child runs)."""
    maximise = cfg.directions[0] == "maximize"
    return {sid: best_children({n: t for n, t in trials.items() if t["state"] == "COMPLETE"}, k, cfg.objectives[0],
                               maximise, () if twins.get(sid) is None else (twins[sid],))
            for sid, trials in opt.items()}


def _zarr_expected(cfg, study_dir: Path, opt: Mapping[str, Mapping[int, Mapping[str, Any]]],
                   twins: Mapping[str, int | None] | None = None) -> dict[str, set[int]] | None:
    """``store: best``: only the best k COMPLETE trials of each subject, and its twin, must have signals."""
    if cfg.store.mode != "best":
        return None
    return _best_expected(cfg, opt, twins if twins is not None else _twins(cfg, study_dir, opt), cfg.store.best_k)


def _mlflow_expected(cfg, tracker, opt: Mapping[str, Mapping[int, Mapping[str, Any]]],
                     twins: Mapping[str, int | None]) -> dict[str, set[int]] | None:
    """The COMPLETE trials that must have a child run in the tracker's mode (None: all of them)."""
    if tracker.children == "all":
        return None
    if tracker.children == "none":
        return {sid: set() for sid in opt}
    return _best_expected(cfg, opt, twins, tracker.best_k)


def resolve_signals(store, opt: Mapping[str, Mapping[int, Mapping[str, Any]]]) -> dict[str, dict[int, dict]]:
    """Follow the ``signals`` location every COMPLETE trial of ``opt`` (:func:`optuna_records`)
    recorded: subject -> number -> {"ok", "detail", "location", and where it resolved "subject",
    "number", "params", "scores", "seed", "resolved_by"}. ``store``: the study's read-only
    ``SignalStore`` (None: no store yet). Reads no arrays; lists each subject once; no Ray."""
    locs = {(sid, int(n)): str(t.get("record", {}).get("signals", "") or "")
            for sid, trials in opt.items() for n, t in trials.items() if t.get("state") == "COMPLETE"}
    locs = {k: v for k, v in locs.items() if v}
    out: dict[str, dict[int, dict]] = {}
    if store is None:
        for (sid, n), loc in locs.items():
            out.setdefault(sid, {})[n] = {"ok": False, "location": loc, "detail": "the signals store does not exist"}
        return out
    for (sid, n), r in store.resolve_many(locs, data=False).items():
        if isinstance(r, Exception):
            entry = {"ok": False, "location": locs[(sid, n)], "detail": str(getattr(r, "reason", None) or r)}
        else:
            entry = {"ok": True, "location": locs[(sid, n)], "detail": "",
                     **{k: r[k] for k in ("subject", "number", "params", "scores", "seed", "resolved_by")}}
        out.setdefault(sid, {})[n] = entry
    return out


def ec_problems(cfg, opt: Trials, twins: Mapping[str, int | None], store, tracker) -> tuple[list[Problem], int]:
    """The EC stage's checks: every subject whose trials are all done and that has a twin has an EC in the
    signals store, fitted from that twin, finite and of the connectome's shape, with a trace of
    ``iterations + 1`` rows; its MLflow parent run carries the same key and status. Returns the problems
    and how many subjects were checked."""
    out: list[Problem] = []
    checked = 0
    for sid, trials in sorted(opt.items()):
        done = sum(1 for t in trials.values() if t["state"] in FINISHED)
        twin = twins.get(sid)
        if twin is None or done < cfg.n_trials:
            continue
        checked += 1
        ec = store.ec(sid) if store is not None else None
        if ec is None:
            out.append(Problem(sid, twin, "missing_ec", "none in the signals store"))
            continue
        if ec["best_trial"] != twin:
            out.append(Problem(sid, twin, "stale_ec", f"fitted from trial {ec['best_trial']}"))
        s = ec["summary"] or {}
        w, sc, trace = ec["weights"], ec["sc"], ec["trace"]
        shape_ok = w.ndim == 2 and w.shape == sc.shape and w.shape[0] == w.shape[1]
        fitted = s.get("status") in ("ok", "no_improvement", "diverged", "unstable_start")
        if not shape_ok or not np.all(np.isfinite(w)) or (fitted and trace.shape[0] != int(s.get("iterations", -2)) + 1):
            out.append(Problem(sid, twin, "bad_ec", f"shape {w.shape}, trace {trace.shape}, status {s.get('status')}"))
        tags = tracker.subject_tags(sid)
        if tags.get("ec_key") != ec["key"] or tags.get("ec_status") != str(s.get("status", "")):
            out.append(Problem(sid, twin, "mismatch_ec_mlflow",
                               f"MLflow has key {tags.get('ec_key')!r}, status {tags.get('ec_status')!r}; the store "
                               f"{ec['key']!r}, {s.get('status')!r}"))
    return out, checked


def verify_study(study_dir: str | Path, repair: bool = False) -> Report:
    """Verify (and with ``repair``, fix what can be fixed in) the study in ``study_dir``."""

    study_dir = Path(study_dir)
    cfg = load_frozen(study_dir)
    if repair:
        with StudyLock(study_dir, cfg.name, role="verify --repair"):
            _refuse_beside_drivers(cfg, study_dir)
            report = _verify(cfg, study_dir, repair=True)
            if report.ok:   # earlier hook failures are mended: `explorer status` stops pointing at them
                append_run(study_dir, {"ended": time.strftime("%Y-%m-%dT%H:%M:%S"), REPAIRED: len(report.repaired)})
            return report
    return _verify(cfg, study_dir, repair=False)


def _refuse_beside_drivers(cfg, study_dir: Path) -> None:
    """A repair beside a live driver on another host (the lock file only sees this host's) is refused."""
    live = [d for d in running_drivers(open_storage(optuna_storage_url(cfg, study_dir)), cfg.name,
                                       cfg.leases.stale_s) if not d["stale"]]
    if live:
        who = "; ".join(f"{d['driver']} ({', '.join(d['subjects'])})" for d in live)
        raise StudyError(f"study {cfg.name!r} is being run by {who}: a repair must not run beside a driver. "
                         "Wait for it to finish, then run `explorer verify --repair` again")


def _verify(cfg, study_dir: Path, repair: bool) -> Report:
    opt = optuna_records(cfg, study_dir)
    tracker = _open_tracker(cfg, study_dir, len(opt))
    store = None if cfg.store.mode == "none" else _open_store(cfg, study_dir)
    subjects = sorted(set(opt) | set(tracker.subjects()) | set(store.subjects() if store else []))
    runs = {sid: tracker.trial_runs(sid) for sid in subjects}
    zarr = None if cfg.store.mode == "none" else {sid: (store.trials(sid) if store else {}) for sid in subjects}
    twins = _twins(cfg, study_dir, opt) if cfg.store.mode == "best" or tracker.children == "best_k" else {}
    expected = _zarr_expected(cfg, study_dir, opt, twins)
    resolved = None if cfg.store.mode == "none" else resolve_signals(store, opt)
    tables = None if tracker.children == "all" else {
        sid: {n: plain(rec) for n, rec in tracker.trial_table(sid).items()} for sid in opt}
    report = compare(opt, runs, zarr, zarr_expected=expected, resolved=resolved,
                     mlflow_expected=_mlflow_expected(cfg, tracker, opt, twins), tables=tables)
    if cfg.ec is not None:
        twins = twins or _twins(cfg, study_dir, opt)
        problems, report.ec_checked = ec_problems(cfg, opt, twins, store, tracker)
        report.problems += problems
    if not repair or report.ok:
        return report
    lost = {(p.subject, p.number) for p in report.problems if p.kind in ("missing_zarr", "mismatch_zarr")}
    writable = None
    for sid in sorted({p.subject for p in report.problems if p.kind.endswith("_table_row")}):
        records = [TrialRecord(**t["record"]) for _, t in sorted(opt[sid].items()) if t["state"] in FINISHED]
        tracker.log_trial_table(sid, records)
        report.repaired.append(f"{sid}: MLflow trials table re-logged from Optuna ({len(records)} trials)")
    for p in report.problems:
        where = f"{p.subject} trial {p.number}"
        if p.kind.endswith("_table_row"):
            continue
        if p.kind == "mismatch_ec_mlflow":
            ec = store.ec(p.subject)
            tracker.log_ec(EcSummary(p.subject, ec["key"], ec["summary"], ec["weights"], ec["sc"], ec["trace"]))
            report.repaired.append(f"{p.subject}: EC re-logged to MLflow from the signals store")
            continue
        if p.kind.endswith("_ec"):
            report.unrepairable.append(f"{p.subject}: {KINDS[p.kind]} ({p.detail}): run `explorer resume "
                                       f"{cfg.name}` to fit it")
            continue
        if p.kind in ("missing_mlflow", "mismatch_mlflow", "duplicate_mlflow"):
            rec = TrialRecord(**opt[p.subject][p.number]["record"])   # the Optuna trial's, decoded
            tracker.log_trials(p.subject, [rec], replace=p.kind != "missing_mlflow")
            report.repaired.append(f"{where}: MLflow run re-created from Optuna")
        elif p.kind == "orphan_mlflow":
            tracker.delete_trial_runs(p.subject, run_ids=[runs[p.subject][p.number]["run_id"]]
                                      + list(runs[p.subject][p.number].get("duplicates", [])))
            report.repaired.append(f"{where}: orphan MLflow run deleted")
        elif p.kind == "orphan_zarr" and opt.get(p.subject, {}).get(p.number, {}).get("state") != "RUNNING":
            if writable is None:
                writable = SignalStore(store.url)
            writable.delete_trial(p.subject, p.number)
            report.repaired.append(f"{where}: orphan zarr record deleted")
        else:
            line = f"{where}: {KINDS[p.kind]}" + (f" ({p.detail})" if p.detail else "")
            if p.kind.endswith("_signals") and store is not None and p.number in (zarr or {}).get(p.subject, {}) \
                    and (p.subject, p.number) not in lost:
                line += (": the record points to an old or foreign location, but the trial's signals were found "
                         f"by its number at {store.location(p.subject, p.number)} (Optuna keeps a finished "
                         "trial's attributes, so the record is left as it is)")
            elif p.kind.endswith(("_zarr", "_signals")):
                line += ": its signals must be simulated again"
            report.unrepairable.append(line)
    after = _verify(cfg, study_dir, repair=False)
    after.repaired, after.unrepairable = report.repaired, report.unrepairable
    return after
