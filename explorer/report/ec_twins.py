"""The EC twins in the report: which stored ECs are used, their re-simulations, their analytic FC.

An EC twin is the nonlinear model simulated on the subject's fitted EC (``G * EC`` as coupling) with
the best global parameters of its search, with the report's fresh seeds. A subject whose EC is
missing, stale (fitted from another best trial than the current one) or not ``ok`` keeps its global
twin: its EC-twin FC is the global twin's, and the report says why.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from explorer.ec.linear import twin_moments
from explorer.ec.options import EcOptions
from explorer.ec.targets import connection_mask
from explorer.ec.unit import global_params, model_filter, target_features

KIND = "ec_twin"


def usable_ecs(store: Any, subjects: Sequence[Any], best_numbers: Mapping[str, int]) -> dict[str, dict[str, Any]]:
    """Per subject its newest stored EC fit (arrays included), with ``use`` (True when ``ok`` and fitted from
    the current best trial) and ``why`` (the reason it is not used)."""
    out: dict[str, dict[str, Any]] = {}
    for s in subjects:
        ec = store.ec(s.id)
        if ec is None:
            out[s.id] = {"use": False, "why": "no EC stored (run or resume the study)", "summary": None}
            continue
        status = (ec["summary"] or {}).get("status")
        stale = ec["best_trial"] != best_numbers.get(s.id)
        why = (f"{status}: {(ec['summary'] or {}).get('reason')}" if status != "ok"
               else f"stale: fitted from trial {ec['best_trial']}, the best is now {best_numbers.get(s.id)} "
                    "(resume the study to refit)" if stale else "")
        out[s.id] = {**ec, "use": status == "ok" and not stale, "why": why}
    return out


def ec_connectome(sid: str, key: str) -> str:
    """The name an EC twin's connectome has in the payloads and the re-simulation cache."""
    return f"{sid}-ec-{key[:12]}"


def analytic_fc(ec: Mapping[str, Any], params: Mapping[str, Any], features: Mapping[str, Any], tr_s: float) -> np.ndarray:
    """The linearised model's FC at a stored EC fit, band-passed as its targets were (the fit's own view of
    its twin); ``features``: the cohort's feature options (dict), ``tr_s``: the subject's TR (s)."""
    g, a, f = global_params(params)
    opts = EcOptions(**(ec["summary"].get("options") or {}))
    spec = model_filter(target_features(features, opts), tr_s, opts)
    return twin_moments(ec["weights"], g, a, f, opts.lag_trs(tr_s) * tr_s, spec).fc


def masks(subjects: Sequence[Any], mask: str) -> dict[str, np.ndarray]:
    """Each subject's fitted connections (the EC stage's mask), for comparing ECs on common edges."""
    return {s.id: connection_mask(s.weights, list(s.labels), mask) for s in subjects}


def summary_rows(subjects: Sequence[Any], ecs: Mapping[str, Mapping[str, Any]],
                 ec_resim: Mapping[str, Mapping[str, Any]], twin_resim: Mapping[str, Mapping[str, Any]],
                 analytic_r: Mapping[str, float | None]) -> dict[str, dict[str, Any]]:
    """Per subject: the EC fit (status, reason, analytic FC r at the start and fitted, iterations, wall
    time) beside the simulated FC r of its EC twin and of its global twin (mean over the fresh seeds)."""
    rows = {}
    for s in subjects:
        ec = ecs[s.id]
        summ = ec.get("summary") or {}
        rows[s.id] = {"used": ec["use"], "why": ec["why"], "status": summ.get("status"),
                      "fc_r_start_analytic": summ.get("fc_r_start"), "fc_r_analytic": analytic_r.get(s.id),
                      "fc_r_simulated": (ec_resim.get(s.id) or {}).get("fc_r_mean"),
                      "fc_r_simulated_sd": (ec_resim.get(s.id) or {}).get("fc_r_sd"),
                      "fc_r_global_twin": (twin_resim.get(s.id) or {}).get("fc_r_mean"),
                      "iterations": summ.get("iterations"), "wall_s": summ.get("wall_s"),
                      "max_euler_dt_ms": summ.get("max_euler_dt_ms"), "best_trial": ec.get("best_trial")}
    return rows
