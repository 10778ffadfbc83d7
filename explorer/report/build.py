"""Build the twin report of a study: what to re-simulate, and every number behind every figure.

:func:`plan` says which simulations the report needs (pure); :func:`build_report` runs the missing
ones on the study's Ray actors (cached in the signals store under ``report/``) and assembles the
report dict that ``report.json`` holds and ``html.py`` renders.

What is simulated, for every fitted subject i and fresh seeds k = 0..K-1 (never the search's):

* ``twin``: subject i's connectome with its best parameters;
* ``sc_only_twin``: subject i's connectome with the cohort-median free parameters;
* ``params_only_twin``: the group-mean connectome with subject i's best parameters;
* ``ec_twin`` (studies with an ``ec`` section): subject i's fitted EC with its best parameters
  (:mod:`explorer.report.ec_twins`).

With sessions (``cohort.split``, a manifest ``session`` column) the report's headline is cross-session
(:mod:`explorer.report.cross_session`): twins fitted on one session, identified on the other.

A simulation's key hashes the model, run settings, connectome, parameters and seed: the same
simulation is never run twice, and ``extend`` followed by ``report`` re-simulates only subjects
whose best parameters changed.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from explorer.errors import ConfigError, StudyError
from explorer.layout import optuna_storage_url, zarr_url
from explorer.models import get_model
from explorer.params.names import free_param
from explorer.report import ec_twins, stats
from explorer.report.cross_session import cross_session
from explorer.runner.inputs import bold_tr, load_study_cohort, study_inputs
from explorer.runner.resim import run_simulations
from explorer.scoring.features import preprocess
from explorer.search import (best_summary, complete_trials, list_subject_studies, open_storage, open_subject_study,
                             trial_seed)
from explorer.store import SignalStore
from explorer.study.frozen import load_frozen

log = logging.getLogger(__name__)

#: what every fitted subject gets re-simulated (studies with an ``ec`` section add ``ec_twins.KIND``)
KINDS = ("twin", "sc_only_twin", "params_only_twin")
GROUP_MEAN = "group-mean"
#: subjects whose FC is drawn side by side in the report (and kept in report.json)
FC_EXAMPLES = 4
PHENOTYPE_MIN_N = 10


# -- keys and seeds ------------------------------------------------------------------------
def resim_seed(base_seed: int, subject: str, k: int) -> int:
    """The k-th fresh noise seed of a subject's re-simulations (disjoint from the search's seeds)."""
    return trial_seed(base_seed, f"report|{subject}", k)


def connectome_digest(weights: np.ndarray, lengths: np.ndarray) -> str:
    h = hashlib.sha1(np.ascontiguousarray(weights, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(lengths, dtype=np.float64).tobytes())
    return h.hexdigest()[:12]


def simulation_key(model: str, settings: dict[str, Any], connectome: str, params: dict[str, Any], seed: int) -> str:
    """A stable id of one simulation: same model, settings, connectome, parameters and seed, same key."""
    def clean(v: Any) -> Any:
        if isinstance(v, (list, tuple, np.ndarray)):
            return [round(float(x), 12) for x in v]
        return round(float(v), 12) if isinstance(v, (int, float, np.floating)) else v

    doc = {"model": model, "settings": {k: clean(v) for k, v in sorted(settings.items())}, "connectome": connectome,
           "params": {k: clean(v) for k, v in sorted(params.items())}, "seed": int(seed)}
    return hashlib.sha1(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:20]


# -- plan ----------------------------------------------------------------------------------
def plan(cfg, subjects: Sequence[Any], best: dict[str, dict[str, float]], seeds: int,
         spaces: dict[str, Any], fc_mean: np.ndarray | None = None, ecs: dict[str, dict[str, Any]] | None = None
         ) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """(payloads, requests) of every simulation the report needs for the fitted ``subjects``.

    best: subject id -> its best free values; spaces: subject id -> its
    :class:`~explorer.params.subject.SubjectSpace` (the one place free values become a parameter set; FIC's
    J_I is set by the actor for the connectome it simulates). Each request is ``{"kind", "subject",
    "connectome", "key", "params", "seed"}``; payloads map a connectome name to what an actor keeps.
    """
    trs = {s.id: bold_tr(cfg, s) for s in subjects}
    free_names = list(cfg.params.free)
    median = {p: float(np.median([best[s.id][p] for s in subjects])) for p in free_names}
    payloads: dict[str, dict[str, Any]] = {}
    digests: dict[str, str] = {}
    for s in subjects:
        payloads[s.id] = {"weights": s.weights, "lengths": s.lengths, "labels": list(s.labels), "fc": s.fc,
                          "fcd": s.fcd, "fc_mean": fc_mean, "bold_tr_s": trs[s.id]}
        digests[s.id] = connectome_digest(s.weights, s.lengths)
    mean_w = np.mean([s.weights for s in subjects], axis=0)
    mean_l = np.mean([s.lengths for s in subjects], axis=0)
    group = f"{GROUP_MEAN}-{connectome_digest(mean_w, mean_l)}"
    payloads[group] = {"weights": mean_w, "lengths": mean_l, "labels": list(subjects[0].labels),
                       "fc": np.mean([s.fc for s in subjects], axis=0), "fcd": None, "fc_mean": None,
                       "bold_tr_s": trs[subjects[0].id]}
    fic = {"fic_target_hz": cfg.params.fic_target_hz} if cfg.params.fic else {}
    requests = []
    for s in subjects:
        settings = {**cfg.simulation.simulate_kwargs(trs[s.id]), **fic}
        own = spaces[s.id].expand(best[s.id])
        typical = spaces[s.id].expand(median)
        for k in range(seeds):
            seed = resim_seed(cfg.sampler.seed, s.id, k)
            runs = [("twin", s.id, own, digests[s.id]), ("sc_only_twin", s.id, typical, digests[s.id]),
                    ("params_only_twin", group, own, group)]
            ec = (ecs or {}).get(s.id)
            if ec is not None and ec["use"]:
                name = ec_twins.ec_connectome(s.id, ec["key"])
                if name not in payloads:
                    payloads[name] = {**payloads[s.id], "weights": np.asarray(ec["weights"], dtype=np.float64)}
                    digests[name] = connectome_digest(payloads[name]["weights"], s.lengths)
                runs.append((ec_twins.KIND, name, own, digests[name]))
            for kind, connectome, params, digest in runs:
                requests.append({"kind": kind, "subject": s.id, "connectome": connectome, "params": params,
                                 "seed": seed, "key": simulation_key(cfg.model, settings, digest, params, seed)})
    return payloads, requests


# -- assembling ------------------------------------------------------------------------------
def _mean_fc(results: list[dict[str, Any] | None], n: int) -> np.ndarray:
    fcs = [r["fc"] for r in results if r is not None and r.get("fc") is not None]
    if not fcs:
        return np.full((n, n), np.nan)
    return np.mean(np.asarray(fcs, dtype=np.float64), axis=0)


def _ident(matrix: np.ndarray, **extra: Any) -> dict[str, Any]:
    out = stats.identification(matrix)
    out["matrix"] = matrix
    off = matrix[~np.eye(matrix.shape[0], dtype=bool)]
    out["mean_off_diagonal"] = float(np.nanmean(off)) if off.size and np.isfinite(off).any() else None
    out.update(extra)
    return out


def _convergence(trials: list[dict[str, Any]], maximise: bool) -> dict[str, list]:
    values = [t["values"][0] for t in trials]
    best = (np.maximum if maximise else np.minimum).accumulate(values).tolist() if values else []
    return {"number": [t["number"] for t in trials], "value": values, "best_so_far": best}


def _landscape(trials: list[dict[str, Any]], free: list[str]) -> dict[str, Any]:
    return {"params": {p: [t["params"].get(p) for t in trials] for p in free},
            "score": [t["values"][0] for t in trials]}


def individuality(twin_fc: list[np.ndarray], emp_fc: list[np.ndarray], sc: list[np.ndarray],
                  sc_only_fc: list[np.ndarray] | None, params_only_fc: list[np.ndarray] | None) -> dict[str, Any]:
    """Raw and residual identification of the twins, and the four baselines (lists in subject order)."""
    raw = stats.similarity_matrix(twin_fc, emp_fc)
    resid = stats.similarity_matrix(stats.residual(twin_fc), stats.residual(emp_fc))
    emp = stats.similarity_matrix(emp_fc, emp_fc)
    baselines: dict[str, Any] = {
        "empirical": _ident(emp, accuracy=None, accuracy_subject_to_twin=None, p_value=None, i_diff=None,
                            note="subject i's empirical FC against subject j's; the diagonal is 1 by construction, "
                                 "so only the off-diagonal mean (how alike the subjects already are) is meaningful"),
        "sc": _ident(stats.similarity_matrix(sc, emp_fc),
                     note="subject i's SC weights against subject j's empirical FC"),
        "sc_only_twin": None if sc_only_fc is None else _ident(
            stats.similarity_matrix(sc_only_fc, emp_fc),
            note="subject i's own SC with the cohort-median parameters"),
        "params_only_twin": None if params_only_fc is None else _ident(
            stats.similarity_matrix(params_only_fc, emp_fc),
            note="the group-mean SC with subject i's own parameters"),
    }
    # the residual view of each baseline: where does the *individual* part of the fingerprint live?
    emp_res = stats.residual(emp_fc)
    for name, rows in (("sc", sc), ("sc_only_twin", sc_only_fc), ("params_only_twin", params_only_fc)):
        if rows is not None:
            baselines[f"{name}_residual"] = _ident(stats.similarity_matrix(stats.residual(rows), emp_res),
                                                   note=f"{name} with the cohort-mean pattern removed from both sides")
    out = _ident(raw)
    out["residual"] = _ident(resid, note="twins minus the mean twin FC, subjects minus the mean empirical FC")
    out["baselines"] = baselines
    return out


def test_retest(cohort, fitted: list[str], best: dict[str, dict[str, float]], free: list[str],
                twin_fc: dict[str, np.ndarray], emp_fc: dict[str, np.ndarray]) -> dict[str, Any] | None:
    """ICC(2,1) per free parameter and cross-session identification, when subjects have sessions."""
    sessions = cohort.sessions() if hasattr(cohort, "sessions") else {}
    fitted_set = set(fitted)
    pairs = {p: dict(sorted((ses, sid) for ses, sid in d.items() if sid in fitted_set))
             for p, d in sessions.items()}
    pairs = {p: d for p, d in pairs.items() if len(d) >= 2}
    if len(pairs) < 2:
        return None
    k = min(len(d) for d in pairs.values())
    people = sorted(pairs)
    ses = {p: list(pairs[p].values())[:k] for p in people}      # subject ids per session, in session order
    names = list(next(iter(pairs.values())))[:k]
    icc = {f: stats.icc_2_1(np.array([[best[sid][f] for sid in ses[p]] for p in people])) for f in free}
    a = [ses[p][0] for p in people]
    b = [ses[p][1] for p in people]
    cross = _ident(stats.similarity_matrix([twin_fc[s] for s in a], [emp_fc[s] for s in b]),
                   note=f"twin fitted on session {names[0]} against every subject's empirical FC of session {names[1]}")
    finger = _ident(stats.similarity_matrix([emp_fc[s] for s in a], [emp_fc[s] for s in b]),
                    note=f"empirical FC of session {names[0]} against session {names[1]} (Finn et al. 2015)")
    return {"sessions": names, "participants": people, "icc": icc, "cross_session": cross,
            "empirical_fingerprint": finger}


def recovery(subjects: list[Any], best: dict[str, dict[str, float]], free: list[str]) -> dict[str, Any] | None:
    """Recovered vs true parameters, for subjects whose phenotype holds ``true_<param>``."""
    out = {}
    for f in free:
        have = [s for s in subjects if _number(s.phenotype.get(f"true_{f}")) is not None]
        if not have:
            continue
        true = np.array([_number(s.phenotype[f"true_{f}"]) for s in have])
        rec = np.array([best[s.id][f] for s in have])
        err = stats.rel_error(true, rec)
        out[f] = {"subjects": [s.id for s in have], "true": true.tolist(), "recovered": rec.tolist(),
                  "rel_error": err.tolist(),
                  "rel_error_median": float(np.nanmedian(err)) if np.isfinite(err).any() else None}
    return out or None


def phenotype_link(subjects: list[Any], best: dict[str, dict[str, float]], free: list[str]) -> list[dict] | None:
    """Spearman rho, permutation p and BH q of every (free parameter, numeric phenotype column).

    With sessions, a participant's parameters are the mean over its sessions. Ground-truth
    columns (``true_*``) and ``sim_seed`` belong to recovery, not here.
    """
    people: dict[str, list[Any]] = {}
    for s in subjects:
        people.setdefault(getattr(s, "participant", "") or s.id, []).append(s)
    columns = sorted({c for s in subjects for c, v in s.phenotype.items()
                      if _number(v) is not None and not c.startswith("true_") and c != "sim_seed"})
    rows = []
    for f in free:
        x = [float(np.mean([best[s.id][f] for s in group])) for group in people.values()]
        for c in columns:
            y = [_number(group[0].phenotype.get(c)) for group in people.values()]
            y = [np.nan if v is None else v for v in y]
            r = stats.spearman_permutation(np.array(x), np.array(y, dtype=float))
            rows.append({"param": f, "column": c, "n": r["n"], "rho": r["rho"], "p_value": r["p_value"],
                         "p_method": r["p_method"]})
    if not rows:
        return None
    q = stats.fdr_bh([r["p_value"] for r in rows])
    for r, qv in zip(rows, q):
        r["q_value"] = float(qv)
    return rows


def _units(model: str, names: list[str]) -> dict[str, str]:
    """Each free parameter's unit, from the model's parameter table (``P.scale`` and ``P[g]`` take P's)."""
    m = get_model(model)
    return {n: free_param(m, n).unit for n in names}


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def notes_for(report: dict[str, Any]) -> list[str]:
    """Plain-language sentences on what the figures mean for "how individual is a twin?"."""
    notes = []
    ind = report.get("individuality")
    n = len(report["subjects"])
    if ind:
        m = np.asarray([[np.nan if v is None else v for v in row] for row in ind["matrix"]], dtype=float)
        notes.append(f"{_hits(ind, n)} of {n} twins are closer to their own subject than to any other (chance: 1 in "
                     f"{n}; permutation p = {_fmt(ind['p_value'])}).")
        if n >= 3:
            rows = np.isfinite(m).any(axis=1)  # a twin with no finite similarity (diverged) has no best match
            winners = np.nanargmax(np.where(np.isfinite(m), m, -np.inf)[rows], axis=1)
            top, count = np.unique(winners, return_counts=True)
            if count.size and count.max() > n / 2:
                sid = report["subjects"][int(top[np.argmax(count)])]
                notes.append(f"{int(count.max())} of {n} twins match subject {sid} best: a 'typical subject' effect. "
                             "The residual view (cohort-mean pattern removed) shows what is individual.")
        res = ind["residual"]
        notes.append(f"With the cohort-mean FC removed from both sides, {_hits(res, n)} of {n} twins "
                     f"identify their subject (p = {_fmt(res['p_value'])}, I_diff = {_fmt(res['i_diff'])}).")
        emp = ind["baselines"]["empirical"]
        if emp and emp.get("mean_off_diagonal") is not None:
            notes.append(f"Subjects' empirical FCs correlate at r = {_fmt(emp['mean_off_diagonal'])} on average with "
                         "each other: that is how alike they already are.")
        for name in ("sc", "sc_only_twin", "params_only_twin"):
            b, r = ind["baselines"].get(name), ind["baselines"].get(f"{name}_residual")
            if b:
                notes.append(f"Baseline {name} ({b['note']}): accuracy {_fmt(b['accuracy'])}, I_diff {_fmt(b['i_diff'])}"
                             + (f"; residual accuracy {_fmt(r['accuracy'])}, I_diff {_fmt(r['i_diff'])}." if r else "."))
    if n < PHENOTYPE_MIN_N:
        notes.append(f"With {n} subjects, permutation p-values cannot go below {_fmt(1 / math.factorial(n))} "
                     "and correlations with phenotype cannot mean much.")
    return notes


def _hits(ident: dict[str, Any], n: int) -> str:
    acc = ident.get("accuracy")
    return "n/a" if acc is None else str(int(round(acc * n)))


def _fmt(x: Any) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.3g}"


def jsonable(x: Any) -> Any:
    """numpy -> lists, non-finite floats -> None, recursively (report.json holds no NaN)."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (np.floating, float)):
        f = float(x)
        return f if math.isfinite(f) else None
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def _resim_summary(res: list[dict[str, Any]]) -> dict[str, Any]:
    """A twin's re-simulations: seeds, FC r and FCD KS each (None where it diverged), their mean and sd."""
    fc_r = [r["scores"].get("fc_r") if r.get("fc") is not None else None for r in res]
    fcd = [r["scores"].get("fcd_ks") if r.get("fc") is not None else None for r in res]
    good = np.array([v for v in fc_r if v is not None and math.isfinite(v)], dtype=float)
    goodk = np.array([v for v in fcd if v is not None and math.isfinite(v)], dtype=float)
    return {"seeds": [r["seed"] for r in res], "fc_r": fc_r, "fcd_ks": fcd,
            "diverged": sum(r.get("fc") is None for r in res),
            "fc_r_mean": float(good.mean()) if good.size else None,
            "fc_r_sd": float(good.std(ddof=1)) if good.size > 1 else None,
            "fcd_ks_mean": float(goodk.mean()) if goodk.size else None,
            "fcd_ks_sd": float(goodk.std(ddof=1)) if goodk.size > 1 else None}


def _ec_part(cfg, subjects: list[Any], ecs: dict[str, dict[str, Any]], spaces: dict[str, Any],
             best: dict[str, dict[str, float]], per: dict[str, dict[str, list]], resim_of: dict[str, dict],
             n: int) -> dict[str, Any]:
    """The EC twins' FCs (simulated: mean over the fresh seeds; analytic: the linearised model), their ECs
    and masks, and the per-subject rows; a subject without a usable EC keeps its global twin's FC."""
    simulated, analytic, weights, analytic_r = {}, {}, {}, {}
    for s in subjects:
        ec = ecs[s.id]
        if not ec["use"]:
            continue
        params = spaces[s.id].expand(best[s.id])
        analytic[s.id] = ec_twins.analytic_fc(ec, params, cfg.cohort.features.to_dict(), float(s.tr_s))
        analytic_r[s.id] = stats.similarity_matrix([analytic[s.id]], [np.asarray(s.fc, dtype=float)])[0, 0]
        simulated[s.id] = _mean_fc(per[ec_twins.KIND][s.id], n)
        weights[s.id] = np.asarray(ec["weights"], dtype=np.float64)
    rows = ec_twins.summary_rows(subjects, ecs, resim_of[ec_twins.KIND], resim_of["twin"], analytic_r)
    return {"rows": rows, "simulated": simulated, "analytic": analytic, "weights": weights,
            "masks": ec_twins.masks(subjects, cfg.ec.mask),
            "wall_s": [r["wall_s"] for r in rows.values() if r.get("wall_s") is not None]}


def _cross_session(cfg, cohort, subjects: list[Any], emp_fc: dict[str, np.ndarray], twin_fc: dict[str, np.ndarray],
                   ec_part: dict[str, Any] | None, study_dir: Path) -> dict[str, Any] | None:
    """The cross-session headline (None without sessions): every method of :mod:`~explorer.report.cross_session`
    that the study has; a subject without a usable EC counts with its global twin in the EC-twin rows."""
    sessions = cohort.sessions() if hasattr(cohort, "sessions") else {}
    if not sessions:
        return None
    fitted = [s.id for s in subjects]
    pc = {}
    for s in subjects:
        if s.bold is not None:
            pc[s.id] = stats.partial_correlation(preprocess(s.bold, float(s.tr_s), cfg.cohort.features))
    kw: dict[str, Any] = {"partial_corr": pc or None, "global_twin_fc": twin_fc}
    if ec_part is not None:
        kw.update(ec_twin_analytic_fc={i: ec_part["analytic"].get(i, twin_fc[i]) for i in fitted},
                  ec_twin_simulated_fc={i: ec_part["simulated"].get(i, twin_fc[i]) for i in fitted},
                  ec=ec_part["weights"] or None, ec_masks=ec_part["masks"])
        if ec_part["wall_s"]:
            kw["wall_s"] = {"ec_twin_analytic": float(np.median(ec_part["wall_s"]))}
    return cross_session(sessions, fitted, emp_fc, **kw)


# -- the whole report ---------------------------------------------------------------------------
def build_report(study_dir: str | Path, seeds: int = 5, actors: int | None = None) -> dict[str, Any]:
    """Gather the study, run the missing re-simulations, and return the report dict (JSON-safe).

    Works on a finished or partial study: subjects without a COMPLETE trial are listed in
    ``not_fitted``. Raises StudyError when no subject has one.
    """
    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1 (fresh noise seeds per re-simulation), got {seeds}")
    study_dir = Path(study_dir)
    cfg = load_frozen(study_dir)
    cohort = load_study_cohort(cfg)
    storage = open_storage(optuna_storage_url(cfg, study_dir))
    known = list_subject_studies(storage, cfg.name)
    maximise = cfg.directions[0] == "maximize"
    free = list(cfg.params.free)
    fit: dict[str, dict[str, Any]] = {}
    best: dict[str, dict[str, float]] = {}
    not_fitted = []
    for s in cohort:
        if s.id not in known:
            not_fitted.append(s.id)
            continue
        study = open_subject_study(storage, cfg, s.id, create=False)
        summary = best_summary(study, cfg.objectives)
        if not summary:
            not_fitted.append(s.id)
            continue
        trials = complete_trials(study)
        best[s.id] = {k: float(v) for k, v in summary["params"].items()}
        fit[s.id] = {"n_trials": len(study.get_trials(deepcopy=False)), "n_complete": len(trials),
                     "best_number": summary["number"], "best_params": best[s.id], "best_scores": summary["scores"],
                     "pareto_front": summary.get("pareto_front"),
                     "convergence": _convergence(trials, maximise), "landscape": _landscape(trials, free)}
    subjects = [s for s in cohort if s.id in best]
    if not subjects:
        raise StudyError(f"study {cfg.name!r}: no subject has a COMPLETE trial yet; run or resume it first "
                         f"(`explorer resume {cfg.name}`)")

    spaces, fc_mean = study_inputs(cfg, study_dir, subjects)
    for s in subjects:
        # the twin's whole parameter set: per-region values from maps, groups, data and FIC
        full = spaces[s.id].full_batch([best[s.id]], s.weights)[0]
        fit[s.id]["regional_params"] = {} if isinstance(full, str) else \
            {k: [round(float(x), 6) for x in v] for k, v in full.items() if isinstance(v, list)}
        if isinstance(full, str):
            fit[s.id]["regional_params_error"] = full
    store = SignalStore(zarr_url(cfg, study_dir))
    ecs = ec_twins.usable_ecs(store, subjects, {i: fit[i]["best_number"] for i in best}) if cfg.ec else None
    payloads, requests = plan(cfg, subjects, best, seeds, spaces, fc_mean, ecs)
    results: dict[str, dict[str, Any] | None] = {}
    missing = []
    for r in requests:
        got = store.resim(r["connectome"], r["key"])
        if got is None:
            missing.append(r)
        else:
            results[r["key"]] = got

    def keep(connectome: str, result: dict[str, Any]) -> None:
        req = by_key[result["key"]]
        store.write_resim(connectome, result["key"], result["fc"], req["params"], req["seed"], result["scores"])
        results[result["key"]] = {"fc": result["fc"], "scores": result["scores"], "seed": req["seed"]}

    by_key = {r["key"]: r for r in requests}
    unique = list({r["key"]: r for r in missing}.values())
    simulate_s = run_simulations(cfg, payloads, unique, keep, actors=actors) if unique else 0.0

    n = subjects[0].n_regions
    per: dict[str, dict[str, list]] = {k: {s.id: [] for s in subjects} for k in KINDS + (ec_twins.KIND,)}
    for r in requests:
        per[r["kind"]][r["subject"]].append(results.get(r["key"]))
    twin_fc = {s.id: _mean_fc(per["twin"][s.id], n) for s in subjects}
    emp_fc = {s.id: np.asarray(s.fc, dtype=np.float64) for s in subjects}
    for s in subjects:
        fit[s.id]["resim"] = _resim_summary([r for r in per["twin"][s.id] if r is not None])
    resim_of = {"twin": {s.id: fit[s.id]["resim"] for s in subjects},
                ec_twins.KIND: {s.id: _resim_summary([r for r in per[ec_twins.KIND][s.id] if r is not None])
                                for s in subjects}}
    ids = [s.id for s in subjects]
    ec_part = _ec_part(cfg, subjects, ecs, spaces, best, per, resim_of, n) if ecs is not None else None
    xs = _cross_session(cfg, cohort, subjects, emp_fc, twin_fc, ec_part, study_dir)
    ind = None
    if len(ids) >= 2:
        ind = individuality([twin_fc[i] for i in ids], [emp_fc[i] for i in ids], [s.weights for s in subjects],
                            [_mean_fc(per["sc_only_twin"][i], n) for i in ids],
                            [_mean_fc(per["params_only_twin"][i], n) for i in ids])
    resim_r = [fit[i]["resim"]["fc_r_mean"] for i in ids if fit[i]["resim"]["fc_r_mean"] is not None]
    resim_k = [fit[i]["resim"]["fcd_ks_mean"] for i in ids if fit[i]["resim"]["fcd_ks_mean"] is not None]
    report = {
        "study": cfg.name, "model": cfg.model, "created": _dt.datetime.now().isoformat(timespec="seconds"),
        "mode": cfg.sampler.mode,
        "seeds": seeds, "objectives": cfg.objectives, "directions": cfg.directions, "free_params": free,
        "units": _units(cfg.model, free),
        "subjects": ids, "not_fitted": not_fitted, "fit": fit,
        "fc_examples": {i: {"empirical": np.round(emp_fc[i], 4), "simulated": np.round(twin_fc[i], 4)}
                        for i in ids[:FC_EXAMPLES]},
        "individuality": ind,
        "cross_session": xs,
        "ec": None if ec_part is None else ec_part["rows"],
        "test_retest": test_retest(cohort, ids, best, free, twin_fc, emp_fc),
        "recovery": recovery(subjects, best, free),
        "phenotype": phenotype_link(subjects, best, free),
        "summary": {"fc_r_resim_median": float(np.median(resim_r)) if resim_r else None,
                    "fcd_ks_resim_median": float(np.median(resim_k)) if resim_k else None,
                    "best_score_median": float(np.median([fit[i]["best_scores"].get(cfg.objectives[0], np.nan)
                                                          for i in ids]))},
        "simulations": {"needed": len({r["key"] for r in requests}), "run": len(unique),
                        "reused": len({r["key"] for r in requests}) - len(unique), "simulate_s": simulate_s},
    }
    report = jsonable(report)
    report["notes"] = notes_for(report)
    return report
