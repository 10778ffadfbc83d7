"""A study's progress: per-subject counts, best scores and parameters, utilisation.

:func:`study_status` gathers it (plain dict, JSON-safe); :func:`status_lines` lays it out as text for
a terminal of a given width (80 columns and pipes included). Neither prints.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from explorer.errors import StoreError
from explorer.layout import RUNS_FILE, optuna_storage_url, zarr_url
from explorer.search import best_summary, list_subject_studies, open_storage, open_subject_study, subject_counts
from explorer.search.leases import running_drivers
from explorer.secrets import redact_url
from explorer.store import SignalStore
from explorer.study.frozen import load_frozen


def _finite(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    return x


def read_runs(study_dir: str | Path) -> list[dict[str, Any]]:
    """The driver sessions of a study (``runs.jsonl``), oldest first."""
    path = Path(study_dir) / RUNS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


#: key of the ``runs.jsonl`` row that ``explorer verify --repair`` appends when the records agree again
REPAIRED = "repaired"


def append_run(study_dir: str | Path, row: dict[str, Any]) -> None:
    """Append one driver session to ``runs.jsonl``."""
    with open(Path(study_dir) / RUNS_FILE, "a") as f:
        f.write(json.dumps(row) + "\n")


def study_status(study_dir: str | Path) -> dict[str, Any]:
    """Per-subject counts, best scores and params, and utilisation of a study folder.

    ``hook_failures``: the store and tracker (zarr, MLflow) calls that failed in the driver sessions
    since ``explorer verify --repair`` last left Optuna, MLflow and zarr in agreement, so a broken
    tracker shows here instead of vanishing.
    """
    study_dir = Path(study_dir)
    cfg = load_frozen(study_dir)
    url = optuna_storage_url(cfg, study_dir)
    storage = open_storage(url)
    subjects = {}
    for sid in list_subject_studies(storage, cfg.name):
        study = open_subject_study(storage, cfg, sid, create=False)
        c = subject_counts(study)
        subjects[sid] = {**asdict(c), "target": cfg.n_trials, "done": c.done,
                         "best": _finite(best_summary(study, cfg.objectives))}
    if cfg.ec is not None:
        for sid, ec in ec_status(cfg, study_dir, list(subjects)).items():
            subjects[sid]["ec"] = ec
    drivers = running_drivers(storage, cfg.name, cfg.leases.stale_s)
    rows = read_runs(study_dir)
    runs = [r for r in rows if REPAIRED not in r]
    sim = sum(r.get("simulate_s", 0.0) for r in runs)
    capacity = sum(r.get("actors", 0) * r.get("driver_wall_s", 0.0) for r in runs)
    # hook failures since `explorer verify --repair` last left the three records in agreement
    last_repair = max((i for i, r in enumerate(rows) if REPAIRED in r), default=-1)
    failures = [f for r in rows[last_repair + 1:] for f in r.get("hook_failures", [])]
    return {
        "name": cfg.name, "study_dir": str(study_dir), "model": cfg.model, "objective": cfg.objectives,
        "sampler": cfg.sampler.name, "mode": cfg.sampler.mode, "search_mode": search_mode(cfg),
        "trials_per_subject": cfg.n_trials, "optuna_storage": redact_url(url),
        "subjects": subjects,
        "totals": {k: sum(s[k] for s in subjects.values())
                   for k in ("complete", "failed", "interrupted", "aborted", "running", "waiting")},
        "utilisation": (sim / capacity) if capacity > 0 else None,
        "last_run": runs[-1] if runs else None,
        "runs": len(runs),
        "hook_failures": failures,
        "drivers": drivers,
    }


def search_mode(cfg: Any) -> str:
    """One sentence on whether the study's search is reproducible (``sampler.deterministic``)."""
    if cfg.sampler.deterministic:
        return (f"deterministic (rounds of {cfg.sampler.batch} trials per subject, told in trial order): a rerun "
                "gives the same trials")
    return "asynchronous (fastest; not reproducible: the trials depend on timing; their told_order is recorded)"


def ec_status(cfg: Any, study_dir: Path, subjects: list[str]) -> dict[str, dict[str, Any] | None]:
    """Per subject the summary of its newest stored EC fit (status, reason, fc_r_start, fc_r, iterations,
    wall_s, ...) and whether it was fitted from the current best trial; None where none is stored."""
    try:
        store = SignalStore(zarr_url(cfg, study_dir), read_only=True)
    except StoreError:
        return {sid: None for sid in subjects}
    out: dict[str, dict[str, Any] | None] = {}
    for sid in subjects:
        ec = store.ec(sid, data=False)
        out[sid] = None if ec is None else {**_finite(dict(ec["summary"])), "best_trial": ec["best_trial"]}
    return out


def _num(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, (int, float)) and math.isfinite(v) else "-"


def _param(name: str, v: Any) -> str:
    return f"{name}={v:.3g}" if isinstance(v, (int, float)) else f"{name}={v}"


def _wrap(words: list[str], width: int, indent: int) -> list[str]:
    """``words`` joined by spaces into lines of at most ``width`` characters after ``indent`` spaces."""
    lines, line = [], ""
    for w in words:
        if line and indent + len(line) + 1 + len(w) > width:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}" if line else w
    if line:
        lines.append(line)
    return [" " * indent + x for x in lines]


def _ec_words(ec: dict[str, Any] | None, best: int | None) -> list[str]:
    """The EC line of a subject: its fit (analytic FC r, start -> fitted), or why it keeps its global twin."""
    if ec is None:
        return ["EC:", "not", "fitted", "yet"]
    if ec.get("status") != "ok":
        return ["EC:", f"{ec.get('status')}", "(keeps", "its", "global", "twin):", *str(ec.get("reason") or "").split()]
    words = ["EC:", f"FC r {_num(ec.get('fc_r_start'))} -> {_num(ec.get('fc_r'))}", "(analytic),",
             f"{ec.get('iterations')} iterations,", f"{_num(ec.get('wall_s'))} s"]
    if best is not None and ec.get("best_trial") != best:
        words += [f"(from trial {ec.get('best_trial')}; the best is now {best}: resume refits it)"]
    return words


def status_lines(st: dict[str, Any], width: int = 80) -> list[str]:
    """:func:`study_status` as text lines of at most ``width`` characters (a long name or value aside).

    One row per subject: done/target (done = complete + failed, what counts against the budget),
    failed, aborted and running (only where some are), and the twin's
    objective scores to 3 decimals (a long objective is a column ``obj1``... with its legend above).
    The twin's parameters (3 significant digits) and the fail reasons follow on indented, wrapped lines.
    """
    obj = list(st["objective"])
    subjects = st["subjects"]
    running = any(s["running"] for s in subjects.values())
    aborted = any(s.get("aborted") for s in subjects.values())   # a broken config's first batches (not counted)
    labels = [o if len(o) <= 12 else f"obj{i + 1}" for i, o in enumerate(obj)]
    head = ["subject", "done", "failed"] + (["aborted"] if aborted else []) + (["running"] if running else []) \
        + labels
    rows = []
    for s_id, s in subjects.items():
        scores = (s.get("best") or {}).get("scores") or {}
        rows.append([s_id, f"{s['done']}/{s['target']}", str(s["failed"])]
                    + ([str(s.get("aborted", 0))] if aborted else [])
                    + ([str(s["running"])] if running else []) + [_num(scores.get(o)) for o in obj])
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]

    def row(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    lines = [f"study {st['name']} ({st['model']}, {st['sampler']}, {st['trials_per_subject']} trials per subject)"]
    lines += [f"objective {lab}: {o}" if lab != o else f"objective: {o}" for lab, o in zip(labels, obj)]
    if st.get("search_mode"):
        lines += _wrap(["search:", *st["search_mode"].split()], width, 0)
    lines += ["", row(head)]
    for (s_id, s), cells in zip(subjects.items(), rows):
        lines.append(row(cells))
        params = (s.get("best") or {}).get("params") or {}
        if params:
            lines += _wrap([_param(k, v) for k, v in params.items()], width, 4)
        if "ec" in s:
            lines += _wrap(_ec_words(s["ec"], (s.get("best") or {}).get("number")), width, 4)
        reasons = list((s.get("reasons") or {}).items())
        if reasons:
            words = [f"{k} x{v}" + ("," if i < len(reasons) - 1 else "") for i, (k, v) in enumerate(reasons)]
            lines += _wrap(["failed:"] + words, width, 4)
    for d in st.get("drivers") or []:
        what = "stale lease" if d["stale"] else "running"
        lines += _wrap([f"{what}:", *", ".join(d["subjects"]).split(), "by", *d["driver"].split()]
                       + ([f"({d['stale']}; the next driver takes it over)"] if d["stale"] else []), width, 0)
    u = st["utilisation"]
    lines += ["", f"runs: {st['runs']}; actor utilisation: {'n/a' if u is None else f'{100 * u:.1f}%'}"]
    lines += _wrap(["optuna storage:", str(st["optuna_storage"])], width, 0)   # a long path on a line of its own
    if st.get("hook_failures"):
        lines += _wrap([f"{len(st['hook_failures'])} tracking/store hook call(s) failed; last:",
                        *str(st["hook_failures"][-1]).split()], width, 0)
        lines.append(f"run `explorer verify {st['name']} --repair`")
    return lines
