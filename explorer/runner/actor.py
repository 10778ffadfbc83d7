"""The simulator actor: one CPU, one warm (JIT-compiled) model, the connectomes it was sent.

:class:`SimWorker` is a plain class (testable without Ray); :func:`remote_actor_class` wraps it as a
Ray actor with ``num_cpus=1``. The driver sends each subject once (``add_subject`` with an
ObjectRef from ``ray.put``) and then only small batches of parameter sets (``run_batch``).
"""

from __future__ import annotations

import logging
import math
import os
import platform
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from explorer.ec.unit import EcRequest, run_request
from explorer.params.names import split_noise
from explorer.params.subject import with_fic
from explorer.records import Task, TrialRecord
from explorer.scoring.batch import fit_scores_batch
from explorer.scoring.columns import warm_up as warm_scoring
from explorer.scoring.objectives import objective_value
from explorer.scoring.options import FeatureOptions
from explorer.scoring.scores import fit_scores
from explorer.sim.simulator import simulate_arrays, warmup
from explorer.store import SignalStore
from explorer.store.records import simulation_attrs

log = logging.getLogger(__name__)


@dataclass
class WorkerSpec:
    """Everything an actor needs to simulate and score any subject of one study."""

    model: str
    simulate_kwargs: dict[str, Any]
    features: dict[str, Any]
    repeats: int
    objectives: list[str]
    store_url: str | None = None        # None = do not store signals (store mode "none")
    directions: list[str] | None = None  # the objectives' ("maximize"/"minimize"); None = maximise
    fic_target_hz: float | None = None  # report re-simulations: FIC's target rate (Hz), None = no FIC
    git_revision: str | None = None     # the code's (explorer.study.frozen.git_revision), stored with the signals
    best_k: int = 0                     # store: best: a call writes the signals of at most its k best trials (0: all)


def _compact_error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text if len(text) <= 500 else text[:497] + "..."


class SimWorker:
    """Hosts a warm simulator; evaluates batches of trials of one subject at a time."""

    def __init__(self, spec: WorkerSpec, actor_id: str = "", node_id: str = ""):
        self.spec = spec
        self.features = FeatureOptions.from_dict(spec.features)
        self.actor_id = actor_id or f"local-{os.getpid()}"
        self.node_id = node_id or platform.node()
        t0 = time.perf_counter()
        self.compile_s = float(warmup(spec.model, dtype=spec.simulate_kwargs.get("dtype", "float64")))
        warm_scoring()   # the compiled scoring passes, out of the first batch's time
        self.init_s = time.perf_counter() - t0
        self.subjects: dict[str, dict[str, Any]] = {}
        self._store = None

    def ready(self) -> dict[str, Any]:
        return {"actor": self.actor_id, "node": self.node_id, "pid": os.getpid(),
                "compile_s": self.compile_s, "init_s": self.init_s}

    def add_subject(self, subject_id: str, payload: dict[str, Any]) -> str:
        """Keep a subject's connectome, empirical features and parameter space.

        ``payload``: weights, lengths, labels, fc, fcd, ``space`` (its
        :class:`~explorer.params.subject.SubjectSpace`: free values -> full parameter sets, FIC included),
        ``fc_mean`` (the study's cohort-mean FC, or None) and ``bold_tr_s`` (its simulated TR, s).
        """
        self.subjects[subject_id] = payload
        return subject_id

    def has_subject(self, subject_id: str) -> bool:
        return subject_id in self.subjects

    @property
    def store(self):
        if self._store is None and self.spec.store_url is not None:
            self._store = SignalStore(self.spec.store_url)
        return self._store

    def run_batch(self, subject_id: str, tasks: list[Task], keep_from: float | None = None) -> dict[str, Any]:
        """Simulate, score and store a batch of trials (:class:`~explorer.records.Task`) of one subject.

        Each trial runs ``repeats`` noise seeds (``seed``, ``seed + 1``, ...) whose scores are averaged.
        The batch is simulated in one call, scored in one vectorised pass and its COMPLETE trials
        written to the signals store in one call. ``keep_from`` (``store: best``): a trial whose first
        objective is worse than this (the subject's k-th best so far) cannot enter the best k, and
        its signals are not written; nor are those of a trial behind ``best_k`` better ones of its own
        batch (:attr:`WorkerSpec.best_k`). Returns ``{"records": [TrialRecord], "simulate_s", "call_s",
        "actor", "node"}``; ``simulate_s`` is the wall time inside the simulator.
        """
        t0 = time.perf_counter()
        if subject_id not in self.subjects:
            raise KeyError(f"actor {self.actor_id} holds no subject {subject_id!r}")
        records, sim_s = self._evaluate(subject_id, tasks, keep_from)
        call_s = time.perf_counter() - t0
        return {"records": records, "simulate_s": sim_s, "call_s": call_s,
                "actor": self.actor_id, "node": self.node_id}

    def _evaluate(self, subject_id: str, tasks: list[Task], keep_from: float | None = None
                  ) -> tuple[list[TrialRecord], float]:
        """Simulate the batch in one call, score it in one pass, store it in one write; time each stage.

        A trial whose parameter set cannot be made (FIC did not converge) is FAIL with that reason,
        never simulated; the rest of the batch runs. Each simulated trial gets an even share of the
        three stages' wall times. An unexpected error fails only the trial(s) it belongs to.
        """
        started, t0 = time.time(), time.perf_counter()
        try:
            subj = self.subjects[subject_id]
            sets = subj["space"].full_batch([t.free for t in tasks], subj["weights"])
            good = [(t, p) for t, p in zip(tasks, sets) if not isinstance(p, str)]
            bolds, sim_s = self._simulate(subject_id, good) if good else ([], 0.0)
            t1 = time.perf_counter()
            scored = self._score([t for t, _ in good], subject_id, bolds)
            t2 = time.perf_counter()
            self._store_batch(subject_id, scored, keep_from)
            t3 = time.perf_counter()
            n = max(1, len(good))
            shares = (sim_s / n, (t2 - t1) / n, (t3 - t2) / n)
            ended = time.time()
            by_number = {rec.number: rec for rec, _, _ in scored}
            records = []
            for task, params in zip(tasks, sets):
                if isinstance(params, str):
                    rec = self._record(subject_id, task, "FAIL", reason=params)
                    rec.sim_seconds = 0.0       # never simulated
                else:
                    rec = by_number[task.number]
                    rec.simulate_wall_seconds, rec.score_wall_seconds, rec.store_wall_seconds = shares
                    rec.wall_seconds = sum(shares)
                rec.started_at, rec.ended_at = started, ended
                records.append(rec)
            return records, sim_s
        except Exception as exc:  # noqa: BLE001 - isolate the bad trial(s) of the batch
            if len(tasks) == 1:
                log.exception("%s trial %d failed", subject_id, tasks[0].number)
                rec = self._record(subject_id, tasks[0], "FAIL", reason=f"error: {_compact_error(exc)}")
                rec.wall_seconds = time.perf_counter() - t0
                rec.started_at, rec.ended_at = started, time.time()
                return [rec], 0.0
            records, sim_s = [], 0.0
            for task in tasks:
                r, s = self._evaluate(subject_id, [task], keep_from)
                records += r
                sim_s += s
            return records, sim_s

    # -- internals ----------------------------------------------------------------------
    def _kwargs(self, subject_id: str) -> dict[str, Any]:
        """simulate() settings for a subject: the spec's, at the subject's own BOLD TR."""
        tr = self.subjects[subject_id].get("bold_tr_s")
        return {**self.spec.simulate_kwargs, **({"bold_tr_s": float(tr)} if tr else {})}

    def _run(self, subject_id: str, sets: list[dict[str, Any]], seeds: list[int]
             ) -> tuple[np.ndarray, np.ndarray, float]:
        """Simulate full parameter sets (one seed each) on the subject's connectome, at its own TR.

        A set's ``noise_sigma`` (searched per trial) becomes its noise amplitude. Returns (BOLD
        (set, time, region), diverged (set,), wall seconds of the simulation): arrays, no xarray.
        """
        subj = self.subjects[subject_id]
        kwargs = self._kwargs(subject_id)
        params, kwargs["noise_sigma"] = split_noise(sets, kwargs["noise_sigma"])
        t0 = time.perf_counter()
        r = simulate_arrays(self.spec.model, subj["weights"], subj["lengths"], params, seed=seeds,
                            labels=subj.get("labels"), **kwargs)
        return r.bold, np.asarray(r.diverged, dtype=bool), time.perf_counter() - t0

    def _simulate(self, subject_id: str, sets: list[tuple[Task, dict[str, Any]]]
                  ) -> tuple[list[np.ndarray | None], float]:
        """Simulate (task, full parameter set) pairs, ``repeats`` seeds each; BOLD per task or None (diverged)."""
        reps = self.spec.repeats
        params = [full for _, full in sets for _ in range(reps)]
        seeds = [int(task.seed) + r for task, _ in sets for r in range(reps)]
        bold, diverged, sim_s = self._run(subject_id, params, seeds)
        out: list[np.ndarray | None] = []
        for i in range(len(sets)):
            rows = slice(i * reps, (i + 1) * reps)
            out.append(None if diverged[rows].any() else bold[rows])
        return out, sim_s

    def _score(self, tasks: list[Task], subject_id: str, bolds: list[np.ndarray | None]
               ) -> list[tuple[TrialRecord, np.ndarray | None, np.ndarray | None]]:
        """Score every simulated trial in one vectorised pass; (record, first repeat's BOLD, its FC) each.

        A trial's scores are the mean over its repeats. FCD is computed only when an objective needs
        ``fcd_ks`` (it is most of the scoring time); otherwise ``fcd_ks`` is not recorded.
        """
        subj = self.subjects[subject_id]
        tr = float(self._kwargs(subject_id)["bold_tr_s"])
        rows = [b for b in bolds if b is not None]
        results: list[dict[str, float]] = []
        fcs = np.empty((0,))
        if rows:
            emp_fcd = subj.get("fcd") if any("fcd_ks" in o for o in self.spec.objectives) else None
            results, fcs = fit_scores_batch(np.concatenate(rows), tr, subj["fc"], emp_fcd, self.features,
                                            fc_mean=subj.get("fc_mean"))
        out, row = [], 0
        for task, bold in zip(tasks, bolds):
            if bold is None:
                out.append((self._record(subject_id, task, "FAIL", reason="diverged"), None, None))
                continue
            reps = results[row:row + len(bold)]
            fc, row = fcs[row], row + len(bold)
            scores = {k: float(np.mean([r[k] for r in reps])) for k in reps[0]}
            clean = {k: v for k, v in scores.items() if math.isfinite(v)}
            bad = [o for o in self.spec.objectives if not math.isfinite(objective_value(scores, o))]
            if bad:
                out.append((self._record(subject_id, task, "FAIL", scores=clean,
                                         reason=f"non-finite score: {', '.join(bad)} (constant or flat BOLD)"),
                            None, None))
            else:
                out.append((self._record(subject_id, task, "COMPLETE", scores=clean), bold[0], fc))
        return out

    def _store_batch(self, subject_id: str, scored: list[tuple[TrialRecord, Any, Any]],
                     keep_from: float | None) -> None:
        """Write the COMPLETE trials that may still enter the best k to the signals store, in one call.

        With ``store: best`` a trial is left unwritten when it is worse than ``keep_from`` or behind
        ``best_k`` better trials of this batch: either way it can never be among the subject's best k.
        A trial cannot be COMPLETE without its signals: if the write fails, its trials are FAIL
        ``error: store: ...``.
        """
        if self.store is None:
            return
        maximise = not self.spec.directions or self.spec.directions[0] == "maximize"
        ranked = []
        for rec, bold, fc in scored:
            if rec.state != "COMPLETE":
                continue
            value = objective_value(rec.scores, self.spec.objectives[0])
            if keep_from is not None and (value < keep_from if maximise else value > keep_from):
                continue    # can never be among the best k (store: best): not written
            ranked.append((value, rec, bold, fc))
        if self.spec.best_k and len(ranked) > self.spec.best_k:
            ranked.sort(key=lambda item: item[0], reverse=maximise)   # stable: ties keep their order
            ranked = ranked[:self.spec.best_k]
        items = [(rec, bold.astype(np.float32), fc.astype(np.float32)) for _, rec, bold, fc in ranked]
        if not items:
            return
        try:
            locations = self.store.write_trials(items, float(self._kwargs(subject_id)["bold_tr_s"]),
                                                simulation=self.simulation(subject_id),
                                                git_revision=self.spec.git_revision)
        except Exception as exc:  # noqa: BLE001 - the trials cannot be complete without their signals
            log.exception("%s: writing the signals of %d trial(s) failed", subject_id, len(items))
            for rec, _, _ in items:
                rec.state, rec.reason, rec.signals = "FAIL", f"error: store: {_compact_error(exc)}", ""
            return
        for (rec, _, _), location in zip(items, locations):
            rec.signals = location

    def simulation(self, subject_id: str) -> dict[str, Any]:
        """What simulates ``subject_id``'s trials (:func:`explorer.store.records.simulation_attrs`)."""
        return simulation_attrs(self.spec.model, self._kwargs(subject_id), self.spec.repeats)

    def simulate_fc(self, subject_id: str, tasks: list[dict[str, Any]]) -> dict[str, Any]:
        """Simulate parameter sets on a connectome the actor holds; return each one's FC and scores.

        For the report's re-simulations (never Optuna trials). ``tasks``: ``[{"key", "params", "seed"}]``
        with expanded parameter sets (:meth:`~explorer.params.subject.SubjectSpace.expand`); with FIC, J_I is
        set for this connectome here (a set whose FIC fails counts as diverged). Scores are against
        the payload's empirical FC/FCD. Returns ``{"results": [{"key", "fc" (float32, N x N) or None
        when diverged, "scores"}], "simulate_s"}``.
        """

        subj = self.subjects[subject_id]
        sets = with_fic([dict(t["params"]) for t in tasks], subj["weights"], self.spec.model,
                        self.spec.fic_target_hz)
        ok = [i for i, p in enumerate(sets) if not isinstance(p, str)]
        bold = np.full((len(tasks),), None, dtype=object)
        diverged = np.ones(len(tasks), dtype=bool)
        sim_s = 0.0
        if ok:
            b, d, sim_s = self._run(subject_id, [sets[i] for i in ok], [int(tasks[i]["seed"]) for i in ok])
            for j, i in enumerate(ok):
                bold[i], diverged[i] = b[j], bool(d[j])
        tr = float(self._kwargs(subject_id)["bold_tr_s"])
        results = []
        for i, task in enumerate(tasks):
            if diverged[i]:
                results.append({"key": task["key"], "fc": None, "scores": {}})
                continue
            emp = subj.get("fc") is not None
            scores, sim_fc = fit_scores(bold[i], tr, subj.get("fc"), subj.get("fcd") if emp else None, self.features,
                                        fc_mean=subj.get("fc_mean"), return_fc=True)
            results.append({"key": task["key"], "fc": sim_fc.astype(np.float32),
                            "scores": {k: float(v) for k, v in scores.items()} if emp else {}})
        return {"results": results, "simulate_s": sim_s}

    def fit_ec(self, subject_id: str, requests: list[EcRequest]) -> dict[str, Any]:
        """The EC stage's unit of work: fit each request's EC (:func:`explorer.ec.unit.run_request`).

        Returns ``{"results": [{"key", "weights", "trace", "summary"}], "fit_s"}``; a request whose fit
        raises comes back with ``summary["status"] == "failed"`` and the error as its reason, so that one
        bad subject never stops the others.
        """
        results, t0 = [], time.perf_counter()
        for req in requests:
            try:
                fit = run_request(req)
            except Exception as exc:  # noqa: BLE001 - reported per subject, in the config's terms by the driver
                results.append({"key": req.key, "weights": None, "trace": None,
                                "summary": {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}})
                continue
            results.append({"key": req.key, "weights": fit.weights, "trace": fit.trace, "summary": fit.summary()})
        return {"results": results, "fit_s": time.perf_counter() - t0}

    def _record(self, subject_id: str, task: Task, state: str, scores: dict | None = None,
                reason: str = "") -> TrialRecord:
        return TrialRecord.of(subject_id, task, state, scores=dict(scores or {}), reason=reason,
                              sim_seconds=float(self.spec.simulate_kwargs["duration_s"]) * self.spec.repeats,
                              actor=self.actor_id, node=self.node_id)


def remote_actor_class():
    """``SimWorker`` as a Ray actor class (one CPU each; Ray restarts nothing: the driver does)."""
    import ray

    @ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)
    class SimActor(SimWorker):
        def __init__(self, spec: WorkerSpec):
            import signal

            # A terminal's Ctrl-C reaches the whole process group; the driver alone decides what
            # to stop, and stops actors itself. Never raise inside an actor's zarr write.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            ctx = ray.get_runtime_context()
            super().__init__(spec, actor_id=ctx.get_actor_id()[:12], node_id=ctx.get_node_id()[:12])

    return SimActor
