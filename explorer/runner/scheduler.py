"""The scheduler: ask Optuna for trials across subjects, keep every actor busy, tell results.

It keeps ``IN_FLIGHT_PER_ACTOR`` batches queued on every actor (each actor simulates one while the
driver tells the other's results and asks its next), collects with ``ray.wait``, tells Optuna
COMPLETE/FAIL (reason in the user attribute ``reason``), queues each result batch for MLflow (a
background thread logs it), and hands a subject to the
:class:`~explorer.runner.finisher.SubjectFinisher` when it is done (on a finishing thread, off the
loop). Each call's size follows the measured cost per trial (:meth:`Scheduler.batch_size`) and
shrinks as the session ends so that the actors run out of work together (:meth:`Scheduler.share`);
with ``store: best`` an actor does not write the signals of a trial that can no longer enter the
best k (:meth:`Scheduler.keep_from`).

Deterministic mode (``sampler.deterministic``): each subject asks a round of ``sampler.batch`` trials
(one actor call, whatever the number of actors), waits until every one of them is back and tells them
in trial order; only then is its next round asked. Each draw's sampler is seeded for that draw alone
(:func:`~explorer.search.samplers.draw_sampler`) and its noise seed follows its place among the
subject's counted trials, so a subject's trials depend on the config alone: not on timing, the actor
count, the other subjects, or an interruption (a round cut short is reaped whole, re-enqueued, and
asked again in the same order). The default, asynchronous mode records the order in which each subject's
trials were told (user attr ``told_order``), so that its history can be replayed.

Signals are deferred (:mod:`explorer.runner.interrupts`): the loop looks at the flag between
steps, records the results already back, then marks the in-flight trials FAIL "interrupted" and
re-enqueues them.

Fail fast: the first batch of each subject is held back until the study shows it can run. When the
first batches of every subject (of the first :data:`PROBE_SUBJECTS` started) all fail with the same
``error:`` reason (the same :func:`~explorer.search.studies.reason_kind`: "Unable to allocate 400. TiB"
and "... 284. TiB" are one error), the config is broken: those trials are told FAIL
``"aborted: ..."`` (not counted against the budget) and :class:`BrokenStudy` is raised; the driver then
aborts the trials still in flight too (:meth:`Scheduler.abort_inflight`). Any other outcome (a COMPLETE trial, a
diverged or refused one, a different error) releases the held records as they were.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from concurrent import futures
from dataclasses import dataclass
from typing import Any

from explorer.errors import StudyError
from explorer.records import Task, TrialRecord
from explorer.scoring.ranking import best_values, objective_of
from explorer.search import ABORTED, ask_params, best_summary, reap_interrupted, tell_record, trial_seed
from explorer.search.studies import reason_kind

log = logging.getLogger(__name__)

IN_FLIGHT_PER_ACTOR = 2
#: trials per call below which the simulator's vectorised batch loses speed (rww_ei: 83 sim-s/s at 4, 231 at 16)
KERNEL_BATCH = 16
#: weight of the newest call in the running per-trial cost
COST_EWMA = 0.3
ACTOR_DIED = "actor died"
#: how many subjects' first batches decide whether a study is broken (a large cohort need not wait for all)
PROBE_SUBJECTS = 8


class BrokenStudy(StudyError):
    """The first batch of every subject failed with the same error: the config, not the search, is at fault."""


@dataclass
class Batch:
    """A batch of one subject's trials queued on one actor slot."""

    slot: Any
    subject: str
    tasks: list[Task]
    submitted: float = 0.0      # epoch seconds


class Scheduler:
    """Runs the trials of ``todo`` subjects of an opened study (:class:`~explorer.runner.driver.OpenedStudy`)
    on ``pool`` until each has its target, or ``stop`` is requested."""

    def __init__(self, session: Any, pool: Any, todo: list[str], progress: Any, stop: Any, result: Any):
        self.session = session
        self.cfg = session.cfg
        self.pool = pool
        self.progress = progress
        self.stop = stop
        self.result = result
        self.target = self.cfg.n_trials
        self.done: dict[str, int] = {}
        self.inflight_n: dict[str, int] = {}
        self.inflight: dict[Any, Batch] = {}
        self.retry: deque[tuple[str, list[Task]]] = deque()
        self.trials: dict[tuple[str, int], Any] = {}
        self.rr = 0
        self.probing = set(list(todo)[:PROBE_SUBJECTS])   # subjects whose first batch is still awaited
        self.held: list[tuple[str, list[TrialRecord]]] = []
        self.verdict: str | None = None if self.probing else "ok"
        self.trial_s: float | None = None      # running actor seconds per trial (call wall / trials)
        self.calls = 0
        # store: best: each subject's best k objective values so far; a trial that cannot enter them is not stored
        self.best_k = self.cfg.store.best_k if self.cfg.store.mode == "best" else 0
        self.maximise = self.cfg.directions[0] == "maximize"
        self.top: dict[str, list[float]] = {}
        self.todo: list[str] = []      # the admitted subjects, in order (grows as the session admits more)
        self.deterministic = self.cfg.sampler.deterministic
        self.back: dict[str, list[TrialRecord]] = {}   # deterministic: the records of a round not yet all back
        self.told: dict[str, int] = {}       # subject -> its trials finished so far (the next told_order)
        self.finishing: dict[str, futures.Future] = {}   # subjects done, being finished on the finishing thread
        self._finisher_pool: futures.ThreadPoolExecutor | None = None
        self.add_subjects(todo)

    def add_subjects(self, subjects: list[str]) -> None:
        """Take in subjects the session admitted: their counts, best values, progress row, arrays shipped."""
        for sid in subjects:
            study, c = self.session.studies[sid], self.session.counts[sid]
            self.todo.append(sid)
            self.done[sid] = c.done
            self.inflight_n[sid] = 0
            self.told[sid] = c.complete + c.failed + c.interrupted + c.aborted
            self.top[sid] = self._top(study)
            best = best_summary(study, self.cfg.objectives).get("scores", {}).get(self.cfg.objectives[0])
            self.progress.set_subject(sid, self.target, c.complete, c.failed, best)
            self.session.ship(sid, self.pool)

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> None:
        """Fill, wait, collect until nothing is left in flight (or a signal); raises Interrupted/BrokenStudy."""
        import ray

        self.fill()
        while (self.inflight or self.finishing) and not self.stop.requested:
            ready = []
            if self.inflight:
                ready, _ = ray.wait(list(self.inflight), num_returns=1, timeout=0.5)
            else:   # only subjects being finished: wait for them
                futures.wait(list(self.finishing.values()), timeout=0.5)
            if ready:
                ready, _ = ray.wait(list(self.inflight), num_returns=len(self.inflight), timeout=0)
                for ref in ready:   # results already back are recorded even after a signal
                    if self.stop.forced:
                        break
                    self.collect(ref)
            if ready or self.finishing:
                self.settle()
                self.fill()
            self.progress.refresh()
        self.settle(wait=True)
        self.stop.check()

    def _remaining(self, sid: str) -> int:
        return self.target - self.done[sid] - self.inflight_n[sid]

    def _askable(self, sid: str) -> bool:
        """Whether ``sid`` may be asked for trials now: it has some left, its lease is ours, and (deterministic
        mode) nothing of its last round is still out or untold."""
        return (self._remaining(sid) > 0 and not self.session.lost(sid)
                and not (self.deterministic and self.inflight_n[sid]))

    def _next_subject(self) -> str | None:
        """The next subject with trials left to ask: round robin, and at the end of the session (:meth:`ending`)
        the one with the fewest left, so that subjects finish one after another while the actors run the
        others (their pruning, packing and MLflow summaries then overlap the last simulations instead of
        following them all at once); when none is left, the session admits more."""
        if self.ending():
            live = [sid for sid in self.todo if self._askable(sid)]
            if live:
                return min(live, key=self._remaining)
        for _ in range(2):
            for i in range(len(self.todo)):
                sid = self.todo[(self.rr + i) % len(self.todo)]
                if self._askable(sid):
                    self.rr = (self.rr + i + 1) % len(self.todo)
                    return sid
            room = self.session.room()
            new = self.session.admit(room) if room > 0 and not self.stop.requested else []
            if not new:
                return None
            self.add_subjects(new)
        return None

    def _top(self, study: Any) -> list[float]:
        """The best ``best_k`` first-objective values of a study's COMPLETE trials, best first."""
        if not self.best_k:
            return []
        return best_values([t.values[0] for t in study.get_trials(deepcopy=False) if t.values], self.maximise,
                           self.best_k)

    def keep_from(self, sid: str) -> float | None:
        """``store: best``: the k-th best value of ``sid`` so far (a worse trial can never enter the best k,
        so its signals need not be written); None while fewer than k trials completed, or for other modes."""
        top = self.top.get(sid, [])
        return top[-1] if self.best_k and len(top) >= self.best_k else None

    def _ranked(self, sid: str, value: float) -> None:
        if self.best_k and math.isfinite(value):
            self.top[sid] = best_values(self.top[sid] + [value], self.maximise, self.best_k)

    def batch_size(self) -> int:
        """Trials for the next call: about ``ray.call_s`` of actor time at the measured cost per trial,
        within [min(batch_size, KERNEL_BATCH), batch_size] (the lower bound until a call has been
        measured), and at most an even share of what is left (:meth:`share`). Deterministic mode: always
        ``sampler.batch``, whatever the timing."""
        if self.deterministic:
            return self.cfg.sampler.batch
        upper = self.cfg.ray.batch_size
        lower = min(upper, KERNEL_BATCH)
        n = lower
        if self.trial_s is not None:
            n = max(lower, min(upper, math.ceil(self.cfg.ray.call_s / max(self.trial_s, 1e-6))))
        return min(n, self.share(upper))

    def ending(self) -> bool:
        """Whether the session nears its end: calls are being shrunk to share out what is left (:meth:`share`)."""
        upper = self.cfg.ray.batch_size
        return self.share(upper) < upper

    def share(self, upper: int) -> int:
        """Guided self-scheduling at the end of a session: ``ceil(left / queue places)``, with ``left`` the
        trials not yet asked and ``IN_FLIGHT_PER_ACTOR`` places per live actor; ``upper`` while more is left
        than every place can take at ``upper``, or while the session may still admit subjects.

        Calls shrink as the session ends, so the actors run out of work together (one big last call
        would leave the other actors idle while it runs)."""
        places = max(1, len(self.pool.slots)) * IN_FLIGHT_PER_ACTOR
        left = sum(max(0, self._remaining(sid)) for sid in self.todo if not self.session.lost(sid))
        if left >= places * upper or self.session.waiting():
            return upper
        return max(1, math.ceil(left / places))

    def _measured(self, call_s: float, n: int) -> None:
        per = call_s / max(1, n)
        self.trial_s = per if self.trial_s is None else (1 - COST_EWMA) * self.trial_s + COST_EWMA * per
        self.calls += 1

    def _ask(self, sid: str) -> list[Task] | None:
        """A new batch of ``sid``; trials outside the hard limits are told FAIL at once (never simulated).

        Deterministic mode: the k-th trial of the batch is draw ``done + k`` of the subject, its sampler
        seeded for that draw and its noise seed ``trial_seed(seed, subject, draw)`` (the trial number in
        a study that was never interrupted); a refused trial waits for the rest of its round."""
        cfg, session = self.cfg, self.session
        tasks, refused = [], []
        first = self.done[sid] + self.inflight_n[sid]
        for k in range(min(self.batch_size(), self._remaining(sid))):
            draw = first + k if self.deterministic else None
            trial, free = ask_params(session.studies[sid], cfg, sid, draw)
            self.trials[(sid, trial.number)] = trial
            task = Task(trial.number, free, trial_seed(cfg.sampler.seed, sid, trial.number if draw is None else draw))
            why = session.spaces[sid].refusal(free)
            if why:
                refused.append(TrialRecord.of(sid, task, "FAIL", reason=why, started_at=time.time(),
                                              ended_at=time.time()))
            else:
                tasks.append(task)
        self.inflight_n[sid] += len(tasks) + len(refused)
        if refused:
            # an outcome like any other: while probing it settles the verdict (a refusal is no "error:"),
            # else a subject whose every trial is refused would stay "probing" and hold the others' records
            self._back(sid, refused)
        return tasks

    def fill(self) -> None:
        """Queue batches until every live actor has IN_FLIGHT_PER_ACTOR of them (or nothing is left).

        Asks happen after the results already back are told (the sampler sees them), and while each
        actor still simulates its other queued batch, so Optuna's ask is off the actors' critical path."""
        for _ in range(IN_FLIGHT_PER_ACTOR):
            for slot in sorted(self.pool.slots, key=lambda s: s.inflight):
                if self.stop.requested:
                    return
                if slot.inflight >= IN_FLIGHT_PER_ACTOR:
                    continue
                if self.retry:
                    sid, tasks = self.retry.popleft()
                else:
                    sid = self._next_subject()
                    if sid is None:
                        return
                    tasks = self._ask(sid)
                    if not tasks:
                        continue
                ref = self.pool.submit(slot, sid, tasks, keep_from=self.keep_from(sid))
                self.inflight[ref] = Batch(slot, sid, tasks, time.time())

    def collect(self, ref: Any) -> None:
        """Record the batch behind ``ref`` (ready): results, a retry after a dead actor, or failures."""
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        batch = self.inflight.pop(ref)
        batch.slot.inflight -= 1
        sid = batch.subject
        try:
            out = ray.get(ref)  # ready: does not block
        except (RayActorError, ray.exceptions.WorkerCrashedError, ray.exceptions.OutOfMemoryError,
                ray.exceptions.ActorUnavailableError) as exc:
            self.pool.replace(batch.slot)
            again = [t.retried() for t in batch.tasks]
            if again[0].attempt <= self.cfg.ray.max_retries:
                log.warning("retrying %d trial(s) of %s after %s (attempt %d)", len(again), sid,
                            type(exc).__name__, again[0].attempt)
                self.retry.append((sid, again))
                return
            self._back(sid, [self._failed(sid, t, ACTOR_DIED, batch.submitted) for t in batch.tasks])
            return
        except RayTaskError as exc:
            cause = exc.cause if getattr(exc, "cause", None) is not None else exc
            reason = f"error: {type(cause).__name__}: {cause}"[:500]
            self._back(sid, [self._failed(sid, t, reason, batch.submitted) for t in batch.tasks])
            return
        self.result.simulate_s += float(out["simulate_s"])
        self.result.actor_call_s += float(out["call_s"])
        self.result.score_s += sum(r.score_wall_seconds for r in out["records"])
        self.result.store_s += sum(r.store_wall_seconds for r in out["records"])
        self._measured(float(out["call_s"]), len(batch.tasks))
        self._back(sid, list(out["records"]))

    def _back(self, sid: str, records: list[TrialRecord]) -> None:
        """Records of ``sid`` that came back: on to :meth:`_results`; in deterministic mode only once its whole
        round is back, then in trial order (a round cut short by a signal stays untold, to be reaped whole)."""
        if not self.deterministic:
            self._results(sid, records)
            return
        self.back.setdefault(sid, []).extend(records)
        if len(self.back[sid]) == self.inflight_n[sid]:
            self._results(sid, sorted(self.back.pop(sid), key=lambda r: r.number))

    @staticmethod
    def _failed(sid: str, task: Task, reason: str, submitted: float) -> TrialRecord:
        """A trial the actor never returned: no actor times; started/ended are the driver's submit/collect."""
        return TrialRecord.of(sid, task, "FAIL", reason=reason, started_at=submitted,
                              ended_at=time.time() if submitted else 0.0)

    # -- fail fast ------------------------------------------------------------------------
    def _results(self, sid: str, records: list[TrialRecord]) -> None:
        """Tell ``records``, unless the study is still being probed (then hold them until the verdict)."""
        if self.verdict is not None:
            self.tell(sid, records)
            return
        self.held.append((sid, records))
        self.probing.discard(sid)
        # the same error is the same kind of error: its details (sizes, shapes, values) differ per subject
        errors: dict[str, str] = {}     # kind -> its first full reason
        every = n_errors = 0
        for _, recs in self.held:
            for r in recs:
                every += 1
                if r.state == "FAIL" and r.reason.startswith("error:"):
                    n_errors += 1
                    errors.setdefault(reason_kind(r.reason), r.reason)
        same_error = len(errors) == 1 and every == n_errors
        if not same_error:
            self._release("ok")
        elif not self.probing:
            self._abort(next(iter(errors.values())))

    def _release(self, verdict: str) -> None:
        self.verdict = verdict
        held, self.held = self.held, []
        for sid, records in held:
            self.tell(sid, records)

    def _abort(self, reason: str) -> None:
        self.held = [(sid, [_aborted(r) for r in recs]) for sid, recs in self.held]
        self._release("broken")
        raise BrokenStudy(
            f"study {self.cfg.name!r}: the first batch of every subject failed with the same error, so the "
            f"config is at fault, not the search: {reason}. Its first batches and the trials in flight are marked "
            "FAIL 'aborted' and do not count against the budget. Fix the config, then run it again (`explorer run CONFIG`: a study "
            "with no counted trial takes the corrected config)")

    def abort_inflight(self) -> int:
        """After :class:`BrokenStudy`: stop the actors, then tell the trials still in flight (or queued for a
        retry) FAIL ``"aborted: ..."`` as well, their partial signals deleted; returns how many.

        Reaped as "interrupted" instead, they would be re-enqueued, and the corrected config would first
        run the broken config's parameters (out of its ranges, where those changed).
        """
        self.pool.shutdown()
        pending = [(b.subject, b.tasks, b.submitted) for b in self.inflight.values()]
        pending += [(sid, tasks, 0.0) for sid, tasks in self.retry]
        # deterministic mode: a round's records already back, waiting for the rest of it
        pending += [(sid, [Task(r.number, r.params, r.seed, r.attempt) for r in recs], 0.0)
                    for sid, recs in self.back.items()]
        self.inflight.clear()
        self.retry.clear()
        self.back.clear()
        n = 0
        for sid, tasks, submitted in pending:
            if self.stop.forced:   # a second signal: what is left RUNNING is reaped (interrupted) instead
                break
            records = [_aborted(self._failed(sid, t, "in flight when the config was found broken", submitted))
                       for t in tasks if (sid, t.number) in self.trials]
            if records:
                self.tell(sid, records)
                forget = self.session.forget_signals(sid)
                for rec in records:
                    forget(rec)
                n += len(records)
        return n

    # -- telling Optuna -------------------------------------------------------------------
    def tell(self, sid: str, records: list[TrialRecord]) -> None:
        """Tell Optuna each record (attributes in one write, its ``told_order`` among them), log the batch to
        MLflow, finish the subject if done."""
        session = self.session
        if session.lost(sid):   # another driver took the subject over and reaped these trials: not ours to tell
            log.warning("subject %s: %d result(s) dropped, its lease was taken over", sid, len(records))
            for rec in records:
                self.trials.pop((sid, rec.number), None)
                self.inflight_n[sid] -= 1
            return
        study = session.studies[sid]
        for rec in records:
            trial = self.trials.pop((sid, rec.number))
            tell_record(study, trial, rec, self.cfg.objectives, told_order=self.told[sid])
            self.told[sid] += 1
            self.inflight_n[sid] -= 1
            if not rec.reason.startswith(ABORTED):
                self.done[sid] += 1
                self.result.trials_run += 1
            score = objective_of(rec.scores, self.cfg.objectives[0]) if rec.scores else math.nan
            if rec.state == "COMPLETE":
                self._ranked(sid, score)
            self.progress.trial(sid, rec.state, score if math.isfinite(score) else None)
        session.tracker.log_trials(sid, records)
        if self.done[sid] >= self.target and self.inflight_n[sid] == 0:
            self.finish(sid)

    def finish(self, sid: str) -> None:
        """Finish ``sid`` (prune, pack, summarise: :class:`~explorer.runner.finisher.SubjectFinisher`) on the
        finishing thread, off the loop, so that the actors' next batches are not held behind it;
        :meth:`settle` lets it go once done."""
        if self._finisher_pool is None:
            self._finisher_pool = futures.ThreadPoolExecutor(1, thread_name_prefix="explorer-finish")
        self.finishing[sid] = self._finisher_pool.submit(self.session.finisher.finish, sid, self.session.studies[sid])

    def settle(self, wait: bool = False) -> None:
        """Let go of the subjects whose finishing is done (all of them with ``wait``): lease released,
        progress row closed, a subject with no COMPLETE trial (or whose finishing raised) counted failed."""
        for sid, fut in list(self.finishing.items()):
            if not (wait or fut.done()):
                continue
            try:
                ok = fut.result()
            except Exception:  # noqa: BLE001 - the finisher guards its own calls; anything else is logged here
                log.exception("finishing subject %s failed", sid)
                ok = False
            del self.finishing[sid]
            if not ok:
                self.result.failed_subjects.append(sid)
            self.session.let_go(sid)
            self.progress.finished(sid)
        if wait and self._finisher_pool is not None:
            self._finisher_pool.shutdown(wait=True)
            self._finisher_pool = None

    # -- stopping -------------------------------------------------------------------------
    def interrupt(self) -> tuple[int, list[str]]:
        """Stop actors, mark in-flight trials FAIL "interrupted" and re-enqueue their params.

        Signals are still deferred here. A second one (``stop.forced``) ends the clean-up at the next
        subject boundary, between storage writes; what is left RUNNING is reaped on resume. Returns
        (trials reaped, subjects left RUNNING).
        """
        self.pool.shutdown()
        self.settle(wait=True)   # a subject being finished is finished (its trials are all told)
        # Every RUNNING trial of these studies is ours: the subject leases keep other drivers out.
        # Reaping them all (not only those in self.trials) also catches a trial that Optuna had
        # created when the signal arrived but that the scheduler had not yet recorded.
        n, left = 0, []
        for sid in sorted(self.session.active):   # a finished subject's lease may be another driver's by now
            study = self.session.studies[sid]
            if self.session.lost(sid):   # its RUNNING trials are the new holder's
                continue
            if self.stop.forced:
                left.append(sid)
                continue
            n += len(reap_interrupted(study, on_reaped=self.session.forget_signals(sid)))
        self.trials.clear()
        self.inflight.clear()
        self.held.clear()
        self.back.clear()   # deterministic mode: a round cut short was reaped whole, to be asked again
        return n, left


def _aborted(rec: TrialRecord) -> TrialRecord:
    rec.state, rec.reason = "FAIL", f"{ABORTED}: {rec.reason}"
    return rec
