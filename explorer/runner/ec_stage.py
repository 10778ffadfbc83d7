"""The EC stage of a study: after a subject's search, its effective connectivity, fitted on a Ray actor.

One unit of work per subject (:class:`~explorer.ec.unit.EcRequest`), built here from the subject's data
and the best global parameters of its search, sent to the same actors as the search
(:meth:`~explorer.runner.actor.SimWorker.fit_ec`), stored in the signals store (``ec/<subject>/<key>``)
and logged on the subject's MLflow parent run. A subject whose stored EC has the request's key is not
fitted again; a subject whose fit fails, diverges or does not improve on its global twin is stored
with that status and reason, and keeps its global twin.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import numpy as np

from explorer.config import StudyConfig
from explorer.ec.unit import EcRequest
from explorer.runner.inputs import bold_tr
from explorer.search import best_summary
from explorer.tracking import EcSummary

log = logging.getLogger(__name__)

#: EC requests queued on one actor at a time
EC_PER_ACTOR = 2


def ec_request(cfg: StudyConfig, subject: Any, space: Any, study: Any) -> EcRequest | None:
    """The EC unit of ``subject`` from its search's best trial (None when no trial completed)."""
    best = best_summary(study, cfg.objectives)
    if not best:
        return None
    params = space.expand(best["params"])
    return EcRequest(subject=subject.id, weights=subject.weights, labels=list(subject.labels),
                     bold=subject.bold, tr_s=bold_tr(cfg, subject), features=cfg.cohort.features.to_dict(),
                     params={k: params[k] for k in ("G", "a", "f")}, best_trial=int(best["number"]),
                     options=cfg.ec.to_dict())


def needs_fit(store: Any, req: EcRequest) -> bool:
    """Whether ``req``'s subject has no stored EC with ``req``'s key (without a store: always)."""
    return store is None or req.key not in store.ec_keys(req.subject)


def record_ec(store: Any, tracker: Any, guard: Any, req: EcRequest, result: dict[str, Any]) -> None:
    """Store one fitted EC (with its trace and summary) and log it on the subject's MLflow run."""
    summary = dict(result["summary"])
    if result["weights"] is None:   # the unit raised: the subject keeps its global twin, the reason is kept
        log.warning("subject %s: EC fit failed: %s; its twin stays the global-parameter one", req.subject,
                    summary.get("reason"))
        weights, trace = req.weights, [[float("nan")] * 3]
    else:
        weights, trace = result["weights"], result["trace"]
        if summary.get("status") != "ok":
            log.warning("subject %s: EC not used (%s): %s", req.subject, summary.get("status"), summary.get("reason"))
    if store is not None:
        guard(f"storing the EC of {req.subject}", store.write_ec, req.subject, req.key, weights, req.weights, trace,
              summary, req.params, req.best_trial)
    tracker.log_ec(EcSummary(req.subject, req.key, summary, np.asarray(weights), np.asarray(req.weights),
                             np.asarray(trace, dtype=float)))


def run_units(pool: Any, requests: list[EcRequest], on_result: Callable[[EcRequest, dict[str, Any]], None],
              stop: Any, max_retries: int = 1) -> float:
    """Fit ``requests`` on ``pool``'s actors, ``on_result(request, result)`` in the driver as each returns.

    Returns the actors' fitting time (s). An actor that dies has its request retried on its replacement
    (``max_retries`` times); a signal stops the stage between results (what came back is kept).
    """
    fit_s = 0.0

    def done(req: EcRequest, out: dict[str, Any]) -> None:
        nonlocal fit_s
        fit_s += float(out["fit_s"])
        on_result(req, out["results"][0])

    pool.run_calls(requests, lambda slot, req: pool.call(slot, "fit_ec", req.subject, [req]), done, stop,
                   EC_PER_ACTOR, max_retries, "EC fits")
    return fit_s
