"""Cross-session individuality: twins fitted on one session, judged on a session they never saw.

Pure numpy/scipy (through :mod:`explorer.report.stats`). :func:`cross_session` takes matrices keyed by
**subject id** (the id of one participant's session, e.g. ``NAP_001_ses-1``, as the cohort and the
rest of the report key them) and the cohort's ``sessions()`` map (participant -> {session: subject
id}); it returns the JSON-able dict the report keeps under ``report["cross_session"]``.
:func:`within_session_note` is what the report says instead when there are no sessions.

For each direction (session a -> b, then b -> a) and each method, an ``(n, n)`` similarity matrix
over the n included participants: row i = participant i's measure from the *from* session (its twin's
simulated or analytic FC, or its own FC / partial correlation / EC), column j = participant j's
target in the *to* session (empirical FC for the twins and FC; partial correlation; EC). Entries are
Pearson r over the upper triangle (FC-like) or, for EC, over the off-diagonal edges that every
included subject's EC was fitted on. A subject whose input is missing or non-finite gets a NaN row
(never a hit); a method whose input is missing for everyone is None, not zeros.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from explorer.report import stats

__all__ = ["METHODS", "TWINS", "LABELS", "pick_sessions", "cross_session", "within_session_note"]

#: methods in the order of the report's table
METHODS = ("ec_twin_simulated", "ec_twin_analytic", "global_twin", "empirical_fc", "partial_corr", "ec")
#: methods that are twins (fitted on the *from* session: they have a fit r there)
TWINS = ("ec_twin_simulated", "ec_twin_analytic", "global_twin")
LABELS = {
    "ec_twin_simulated": "EC twin, simulated",
    "ec_twin_analytic": "EC twin, analytic (linear)",
    "global_twin": "global-parameter twin",
    "empirical_fc": "empirical FC (Finn 2015)",
    "partial_corr": "partial correlation",
    "ec": "EC itself",
}
NOTES = {
    "ec_twin_simulated": "nonlinear model re-simulated on the EC with fresh seeds (mean FC) vs empirical FC",
    "ec_twin_analytic": "the linearised model's analytic FC at the fitted EC vs empirical FC",
    "global_twin": "the search's best global parameters, re-simulated (mean FC) vs empirical FC",
    "empirical_fc": "the participant's own FC of one session vs every participant's FC of the other",
    "partial_corr": "regularised partial correlation of one session vs the other's",
    "ec": "the fitted EC of one session vs the other's (directed edges)",
}

_NO_SESSIONS = (
    "One session per participant: each twin is fitted and judged on the same recording, so within-session "
    "identification cannot tell a fingerprint of the person from a fit to that recording's own noise "
    "(overfitting). Treat the identification below as an upper bound; for an honest test give each participant "
    "two sessions (`split: 2`, or a manifest `session` column): twins are then fitted on one session and "
    "identified on the other."
)


def within_session_note() -> str:
    """What the report says at the top of individuality when the study has no sessions."""
    return _NO_SESSIONS


def pick_sessions(sessions: Mapping[str, Mapping[str, str]], fitted: Sequence[str]
                  ) -> tuple[str, str, dict[str, tuple[str, str]], dict[str, str]] | None:
    """The two sessions to compare, the included participants and the excluded ones.

    ``sessions``: participant -> {session label: subject id} (``Cohort.sessions()``); only subject
    ids in ``fitted`` count. Labels are ordered by first appearance; (a, b) is the earliest pair of
    labels that the most participants have both of. Returns ``(a, b, {participant: (id_a, id_b)},
    {excluded participant: reason})``, or None when fewer than 2 participants have both.
    """
    done = set(fitted)
    have = {p: {ses: sid for ses, sid in d.items() if sid in done} for p, d in sessions.items()}
    order: list[str] = []
    for d in sessions.values():
        order += [ses for ses in d if ses not in order]
    best, count = None, 1
    for i, a in enumerate(order):
        for b in order[i + 1:]:
            c = sum(a in d and b in d for d in have.values())
            if c > count:
                best, count = (a, b), c
    if best is None:
        return None
    a, b = best
    pairs = {p: (d[a], d[b]) for p, d in sorted(have.items()) if a in d and b in d}
    excluded = {p: f"no fitted subject for session {a if a not in d else b} "
                   f"(has {', '.join(sorted(d)) or 'none'})" for p, d in sorted(have.items()) if p not in pairs}
    return a, b, pairs, excluded


def _median(x: np.ndarray) -> float | None:
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    return float(np.median(x)) if x.size else None


def _ident(matrix: np.ndarray, n_perm: int, seed: int) -> dict[str, Any]:
    r = stats.identification(matrix, n_perm=n_perm, seed=seed)
    n = r["n"]
    return {"accuracy": r["accuracy"], "hits": int(round(r["accuracy"] * n)), "n": n,
            "accuracy_reverse": r["accuracy_subject_to_twin"], "p_value": r["p_value"], "p_method": r["p_method"],
            "i_diff": r["i_diff"], "matrix": np.round(matrix, 4)}


def _direction(rows: list[np.ndarray], cols: list[np.ndarray], edges, fitted_on: list[np.ndarray] | None,
               n_perm: int, seed: int) -> dict[str, Any]:
    """Identification, self r, I_diff (raw and residual) and fit r of one method in one direction."""
    raw = stats.similarity_matrix(rows, cols, edges)
    res = stats.similarity_matrix(stats.residual(rows), stats.residual(cols), edges)
    out = _ident(raw, n_perm, seed)
    out["self_r"] = _median(np.diag(raw))
    out["self_r_each"] = np.round(np.diag(raw), 4)
    out["residual"] = _ident(res, n_perm, seed)
    out["fit_r"] = None
    if fitted_on is not None:
        fit = np.diag(stats.similarity_matrix(rows, fitted_on, edges))
        out["fit_r"] = _median(fit)
        out["fit_r_each"] = np.round(fit, 4)
    return out


def _lookup(method: str, data: Mapping[str, np.ndarray] | None, ids: list[str], n: int
            ) -> tuple[list[np.ndarray], list[str]] | None:
    """The matrices of ``ids`` (NaN where missing or non-finite) and the missing ids; None if all are."""
    if data is None:
        return None
    mats, missing = [], []
    for sid in ids:
        m = data.get(sid)
        m = None if m is None else np.asarray(m, dtype=float)
        if m is not None and m.shape != (n, n):
            raise ValueError(f"cross_session: {method} of subject {sid} has shape {m.shape}, expected ({n}, {n}) "
                             "like its empirical FC")
        if m is None or not np.isfinite(m).all():
            missing.append(sid)
            m = np.full((n, n), np.nan)
        mats.append(m)
    return None if len(missing) == len(ids) else (mats, missing)


def _icc_summary(values: np.ndarray, what: str) -> dict[str, Any] | None:
    v = values[np.isfinite(values)]
    if not v.size:
        return None
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return {"median": float(med), "q1": float(q1), "q3": float(q3), "n_edges": int(v.size),
            "n_edges_undefined": int(values.size - v.size), "edges": what}


def _common_mask(ids: list[str], masks: Mapping[str, np.ndarray] | None, n: int) -> np.ndarray | None:
    if masks is None:
        return None
    out = np.ones((n, n), dtype=bool)
    for sid in ids:
        if sid in masks:
            out &= np.asarray(masks[sid], dtype=bool)
    return out


def cross_session(
    sessions: Mapping[str, Mapping[str, str]],
    fitted: Sequence[str],
    emp_fc: Mapping[str, np.ndarray],
    *,
    partial_corr: Mapping[str, np.ndarray] | None = None,
    global_twin_fc: Mapping[str, np.ndarray] | None = None,
    ec_twin_analytic_fc: Mapping[str, np.ndarray] | None = None,
    ec_twin_simulated_fc: Mapping[str, np.ndarray] | None = None,
    ec: Mapping[str, np.ndarray] | None = None,
    ec_masks: Mapping[str, np.ndarray] | None = None,
    wall_s: Mapping[str, float | None] | None = None,
    n_perm: int = 10000,
    seed: int = 0,
) -> dict[str, Any] | None:
    """Cross-session identification of every method, both directions, and edge-wise ICC.

    Every matrix argument maps subject id -> ``(N, N)`` array (None: the study has no such input, and
    that method is None in the result). ``sessions`` is ``Cohort.sessions()``; ``fitted`` the subject
    ids that have twins (see :func:`pick_sessions`). ``emp_fc`` is required for every included id;
    ``partial_corr`` is :func:`explorer.report.stats.partial_correlation` of each subject's
    preprocessed BOLD; the three twin FCs are the twins fitted on that subject (session); ``ec`` the
    fitted EC (``[i, j]`` = connection j -> i or i -> j, either, as long as it is consistent);
    ``ec_masks`` the boolean mask each EC was fitted on (EC is compared on the edges in every included
    mask, so that the SC pattern of zeros cannot identify anyone; None: every off-diagonal edge).
    ``wall_s``: method -> wall time per subject (s), passed through.

    Returns None with fewer than 2 participants having two fitted sessions, else (all JSON-able
    after ``build.jsonable``): ``sessions`` [a, b], ``directions`` [[a, b], [b, a]], ``participants``,
    ``subjects`` {participant: [id_a, id_b]}, ``excluded``, ``headline`` (a sentence), ``methods``
    {method: None | {"label", "note", "twin", "missing", "wall_s", "edges", "directions": [res_ab,
    res_ba]}} with each res holding ``accuracy``, ``hits``, ``n``, ``p_value``, ``p_method``,
    ``accuracy_reverse``, ``i_diff``, ``matrix``, ``self_r`` (median diagonal), ``residual`` (the same
    identification keys, cohort-mean pattern removed from both sides) and ``fit_r`` (twins: median r
    with the empirical FC of the session fitted on; else None), and ``icc`` {"ec", "empirical_fc",
    "partial_corr": None | {"median", "q1", "q3", "n_edges", "n_edges_undefined", "edges"}}.
    """
    picked = pick_sessions(sessions, fitted)
    if picked is None:
        return None
    a, b, pairs, excluded = picked
    people = list(pairs)
    ids_a, ids_b = [pairs[p][0] for p in people], [pairs[p][1] for p in people]
    lost = [sid for sid in ids_a + ids_b if emp_fc.get(sid) is None]
    if lost:
        raise ValueError(f"cross_session: no empirical FC for subjects {lost[:5]}; every fitted subject needs one")
    n = np.shape(emp_fc[ids_a[0]])[0]
    emp = _lookup("empirical_fc", emp_fc, ids_a + ids_b, n)
    assert emp is not None
    fc_a, fc_b = emp[0][:len(people)], emp[0][len(people):]
    wall = dict(wall_s or {})
    unknown = sorted(set(wall) - set(METHODS))
    if unknown:
        raise ValueError(f"cross_session: wall_s names unknown methods {unknown}; known: {list(METHODS)}")

    inputs = {"ec_twin_simulated": ec_twin_simulated_fc, "ec_twin_analytic": ec_twin_analytic_fc,
              "global_twin": global_twin_fc, "empirical_fc": emp_fc, "partial_corr": partial_corr, "ec": ec}
    mask = _common_mask(ids_a + ids_b, ec_masks, n)
    methods: dict[str, Any] = {}
    for m in METHODS:
        got = _lookup(m, inputs[m], ids_a + ids_b, n)
        if got is None:
            methods[m] = None
            continue
        mats, missing = got
        x_a, x_b = mats[:len(people)], mats[len(people):]
        edges, what = None, "upper triangle"
        if m == "ec":
            edges = stats.edge_index(x_a + x_b, mask)
            what = ("off-diagonal edges in every included subject's EC mask" if mask is not None
                    else "every off-diagonal edge (no EC masks given: the SC's zero pattern may identify)")
        if m in TWINS:   # twin of session a vs empirical FC of session b; fit r against FC of session a
            dirs = [_direction(x_a, fc_b, edges, fc_a, n_perm, seed), _direction(x_b, fc_a, edges, fc_b, n_perm, seed)]
        else:            # the same measure across sessions
            dirs = [_direction(x_a, x_b, edges, None, n_perm, seed), _direction(x_b, x_a, edges, None, n_perm, seed)]
        methods[m] = {"label": LABELS[m], "note": NOTES[m], "twin": m in TWINS, "missing": missing,
                      "wall_s": wall.get(m), "edges": what,
                      "n_edges": int(len(edges[0])) if edges is not None else n * (n - 1) // 2, "directions": dirs}

    icc: dict[str, Any] = {"empirical_fc": _icc_summary(stats.edgewise_icc(fc_a, fc_b), "upper triangle")}
    for m in ("partial_corr", "ec"):
        got = _lookup(m, inputs[m], ids_a + ids_b, n)
        icc[m] = None if got is None else _icc_summary(
            stats.edgewise_icc(got[0][:len(people)], got[0][len(people):], mask if m == "ec" else None),
            methods[m]["edges"])
    return {"sessions": [a, b], "directions": [[a, b], [b, a]], "participants": people,
            "subjects": {p: list(pairs[p]) for p in people}, "excluded": excluded,
            "headline": headline(a, b, methods), "methods": methods, "icc": icc}


def _result(res: dict[str, Any]) -> str:
    p = res["p_value"]
    return f"{res['hits']}/{res['n']} (p = {p:.2g})" if p is not None and math.isfinite(p) else \
        f"{res['hits']}/{res['n']}"


def headline(a: str, b: str, methods: Mapping[str, Any]) -> str:
    """The sentence at the top of the report: what is judged, and the best twin's result both ways."""
    n = next(v["directions"][0]["n"] for v in methods.values() if v)
    text = (f"Individuality is judged across sessions: every twin is fitted on one session and identified against "
            f"all {n} participants' empirical FC of the other session, in both directions (session {a} → {b} "
            f"and {b} → {a}).")
    twin = next((m for m in TWINS if methods.get(m)), None)
    emp = methods.get("empirical_fc")
    if twin:
        d = methods[twin]["directions"]
        text += (f" The {LABELS[twin]} identifies {_result(d[0])} in {a} → {b} and {_result(d[1])} in {b} → {a}")
        text += (f"; the participants' own FC does {_result(emp['directions'][0])} and "
                 f"{_result(emp['directions'][1])}." if emp else ".")
    return text
