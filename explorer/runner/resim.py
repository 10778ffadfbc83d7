"""Extra simulations for the report, on the same kind of Ray actors as the search.

They are never Optuna trials and never count against a study's budget. Each result is handed to
``on_result`` (which stores it) as soon as it is back, so an interrupted report keeps what it has.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from explorer.config import StudyConfig
from explorer.runner.inputs import worker_spec
from explorer.runner.interrupts import Interrupted, Interrupts
from explorer.runner.pool import ActorPool, default_actors, init_ray
from explorer.runner.scheduler import IN_FLIGHT_PER_ACTOR, KERNEL_BATCH

log = logging.getLogger(__name__)


def run_simulations(cfg: StudyConfig, payloads: dict[str, dict[str, Any]], requests: list[dict[str, Any]],
                    on_result: Callable[[str, dict[str, Any]], None], actors: int | None = None,
                    batch_size: int | None = None) -> float:
    """Simulate ``requests`` on the study's actors; returns the actors' simulation wall time (s).

    payloads: connectome name -> what an actor keeps (weights, lengths, labels, fc, fcd, fc_mean, bold_tr_s).
    requests: ``[{"connectome", "key", "params" (expanded; FIC is applied by the actor), "seed"}]``.
    on_result(connectome, {"key", "fc" or None, "scores"}) is called in the driver for each one.
    SIGINT/SIGTERM stop it between results (raising :class:`Interrupted`); what came back is kept.
    """
    import ray

    if not requests:
        return 0.0
    batch = int(batch_size or min(cfg.ray.batch_size, KERNEL_BATCH))
    calls: list[tuple[str, list[dict[str, Any]]]] = []   # (connectome, a batch of its simulations)
    by_connectome: dict[str, list[dict[str, Any]]] = {}
    for r in requests:
        by_connectome.setdefault(r["connectome"], []).append({"key": r["key"], "params": r["params"],
                                                             "seed": r["seed"]})
    for name, tasks in by_connectome.items():
        for i in range(0, len(tasks), batch):
            calls.append((name, tasks[i:i + batch]))
    spec = worker_spec(cfg, next(iter(payloads.values()))["bold_tr_s"], None, repeats=1)
    simulate_s = 0.0
    with Interrupts() as stop:
        own_ray = init_ray(cfg, actors)
        stop.install()

        n = min(default_actors(cfg, actors), len(calls))
        pool = ActorPool(spec, n, f"{cfg.name}-report")
        try:
            for name in by_connectome:
                pool.put_subject(name, payloads[name])
            pool.wait_ready(should_stop=lambda: stop.requested)

            def done(call: tuple[str, list[dict[str, Any]]], out: dict[str, Any]) -> None:
                nonlocal simulate_s
                simulate_s += float(out["simulate_s"])
                for result in out["results"]:
                    on_result(call[0], result)

            pool.run_calls(calls, lambda slot, call: pool.submit_method(slot, "simulate_fc", *call), done, stop,
                           IN_FLIGHT_PER_ACTOR, cfg.ray.max_retries, "report simulations")
            stop.check()
        except Interrupted:
            raise KeyboardInterrupt(stop.name) from None
        finally:
            pool.shutdown()
            if own_ray:
                ray.shutdown()
    return simulate_s
