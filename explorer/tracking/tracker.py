"""MLflow tracking of a study: one experiment per study, one parent run per subject, one child run
per trial (tag ``mlflow.parentRunId``), logged in batches through ``MlflowClient``.

Only the driver logs. Runs are created through the client API, so no git or system-metrics
lookups happen (those belong to ``mlflow.start_run``'s context providers).

**One column serves parents and children.** A child (trial) run logs its free parameters as params
(``G``, ...) and its scores as metrics (``fc_r``, ``fcd_ks``, ``fc_rmse``, ...); the parent
(subject) run logs its best trial's scores under the *same metric names* and that trial's
parameters under the *same param names*, so in the runs table the ``fc_r`` and ``G`` columns
answer "which parameters fit subject X best?" on the parent row and show every trial on the
child rows. Tag ``explorer.role`` (``subject``/``trial``/``report``) tells the rows apart.

MLflow params are immutable, metrics are not. So the parent's params are the best parameters of
the first summary (tag ``params_trial`` names their trial) and are never rewritten; when a later
session (``explorer extend``) finds a better trial, the parent's score metrics get a new value at
step = the new best trial's number (the latest value is the one shown), and the tags
``best_trial``, ``best_run_id`` and ``best_params`` move to it. Where ``params_trial`` differs
from ``best_trial``, the params columns are those of an earlier best: ``best_params`` (JSON) is
the current one.

Parent run tags: ``subject``, ``best_trial`` (trial number), ``best_run_id`` (that trial's child
run), ``best_params`` (JSON object), ``params_trial``, ``model``, ``fixed_params`` (JSON of
``params.fixed`` of the frozen config; per-region lists too long for a tag are summarised),
``objectives`` and ``directions`` (JSON lists, in the same order), and ``participant``/
``session`` for cohorts with sessions. Parent metrics: the best trial's scores (step = its trial
number) and ``best_so_far_<objective>`` for each objective: the best value among the COMPLETE
trials up to each one, step = trial number, so MLflow's chart of it is the convergence curve
(each objective on its own; with several objectives the best trial is a Pareto trade-off and
its scores need not equal every ``best_so_far``).

Child run times: start and end are the Optuna trial's own ``datetime_start`` (ask) and
``datetime_complete`` (tell), ``asked_at``/``told_at`` of the :class:`~explorer.records.TrialRecord`,
so optuna-dashboard and MLflow show one duration; the actor's window ``started_at``/``ended_at``
is kept as tags, the same numbers as Optuna's user attributes. Child metrics besides the scores: ``sim_seconds`` (simulated
time), ``wall_seconds``, ``simulate_wall_seconds``, ``score_wall_seconds``, ``store_wall_seconds``.
Child params besides the free values: the study's ``dt_ms`` and ``duration_s``. A child run is a
record encoded by :func:`explorer.tracking.records.to_run` and decoded by ``from_run``.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from explorer.errors import TrackingError
from explorer.records import TrialRecord
from explorer.secrets import redact_text, redact_url
from explorer.tracking.records import (  # noqa: F401 - param_name: public here too
    MAX_TAG_VALUE,
    PARENT,
    ROLE,
    TRIAL_METRICS,
    _ms,
    fmt_param as _fmt_param,
    from_run,
    metric_key,
    param_key,
    param_name,
    settings_params,
    to_run,
)

log = logging.getLogger(__name__)

# MLflow's documented per-request limits of log_batch
MAX_METRICS, MAX_PARAMS, MAX_TAGS = 1000, 100, 100
BEST_SO_FAR = "best_so_far_"    # parent metric prefix: best_so_far_<objective>, step = trial number


def _db_identity(url: str) -> tuple[str, ...] | None:
    """What makes two storage URLs the same database: a file path, or (host, port, database)."""
    url = str(url).strip()
    if not url:
        return None
    if url.startswith("sqlite:"):
        path = re.sub(r"^sqlite:/*", "/", url) if url.startswith("sqlite:////") else url.split("sqlite:///", 1)[-1]
        path = path.split("?", 1)[0]
        return ("file", str(Path(path).expanduser().resolve())) if path and path != ":memory:" else None
    m = re.match(r"^(?P<scheme>[a-zA-Z][\w+.\-]*)://(?:[^@/]*@)?(?P<host>[^/:?]*)(?::(?P<port>\d+))?/?(?P<db>[^?]*)", url)
    if m:
        scheme = m.group("scheme").split("+", 1)[0].lower()
        if scheme in ("http", "https", "databricks", "file", "journal"):
            if scheme == "file":
                return ("file", str(Path(url[len("file://"):]).resolve()))
            return (scheme, m.group("host").lower(), m.group("port") or "", m.group("db"))
        scheme = {"postgres": "postgresql"}.get(scheme, scheme)
        port = m.group("port") or {"postgresql": "5432", "mysql": "3306"}.get(scheme, "")
        return (scheme, (m.group("host") or "localhost").lower(), port, m.group("db"))
    path = url[len("journal:"):] if url.startswith("journal:") else url
    return ("file", str(Path(path).expanduser().resolve()))


def check_separate_databases(optuna_url: str, mlflow_uri: str) -> None:
    """Raise TrackingError when Optuna and MLflow would share one database.

    Both write an ``alembic_version`` table (mlflow/mlflow#3374), so one corrupts the other.
    """
    a, b = _db_identity(optuna_url), _db_identity(mlflow_uri)
    if a is not None and a == b:
        raise TrackingError(
            f"the MLflow tracking URI {redact_url(mlflow_uri)} is the same database as the Optuna storage "
            f"{redact_url(optuna_url)}; both keep an alembic_version table (mlflow/mlflow#3374). Give "
            "storage.mlflow its own database (e.g. a second PostgreSQL database, or leave it empty for "
            "<study>/mlflow.db)")


def _quiet_mlflow() -> None:
    """MLflow's database set-up logs at INFO on every new store; keep the console for explorer."""
    for name in ("mlflow.store.db.utils", "alembic", "alembic.runtime.migration", "mlflow.tracking.fluent"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _chunks(items: list, size: int) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _escape(value: str) -> str:
    return str(value).replace("'", "\\'")


def _json_tag(value: Any) -> str:
    """``value`` as JSON within MLflow's tag limit (long lists summarised; always valid JSON)."""
    text = json.dumps(value, sort_keys=True, default=str)
    if len(text) > MAX_TAG_VALUE and isinstance(value, Mapping):
        value = {k: (f"<{len(v)} values>" if isinstance(v, (list, tuple)) else v) for k, v in value.items()}
        text = json.dumps(value, sort_keys=True, default=str)
    if len(text) > MAX_TAG_VALUE:
        text = json.dumps(f"<{len(text)} characters: too long for a tag>")
    return redact_text(text)


def _num(value: Any) -> Any:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


class Tracker:
    """MLflow logging for one study (experiment ``experiment``) at ``tracking_uri``.

    ``tracking_uri``: ``sqlite:///<study>/mlflow.db`` (default store), ``http(s)://server``, or any
    MLflow URI. ``artifact_location``: where a *new* experiment keeps its artifacts (a local path or
    URI; the server decides when None). ``settings``: the study's run settings (its ``simulation``
    section, or a mapping); every child run records those of
    :data:`~explorer.tracking.records.SETTINGS_PARAMS` (``dt_ms``, ``duration_s``) as params.
    """

    def __init__(self, tracking_uri: str, experiment: str, artifact_location: str | None = None,
                 settings: Any = None) -> None:
        _quiet_mlflow()
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        self.tracking_uri = str(tracking_uri)
        self.experiment = experiment
        self.settings = settings_params(settings)
        if self.tracking_uri.startswith("sqlite:///"):
            Path(self.tracking_uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        try:
            self.client = MlflowClient(tracking_uri=self.tracking_uri)
            exp = self.client.get_experiment_by_name(experiment)
            if exp is None:
                loc = artifact_location
                if loc and "://" not in loc:
                    Path(loc).mkdir(parents=True, exist_ok=True)
                    loc = Path(loc).resolve().as_uri()
                self.experiment_id = self.client.create_experiment(experiment, artifact_location=loc,
                                                                   tags={"explorer.study": experiment})
            else:
                if exp.lifecycle_stage == "deleted":
                    self.client.restore_experiment(exp.experiment_id)
                self.experiment_id = exp.experiment_id
        except MlflowException as exc:
            raise TrackingError(f"cannot open MLflow at {redact_url(self.tracking_uri)} for study {experiment!r}: "
                                f"{exc}. Check storage.mlflow (or start the tracking server)") from None
        self._parents: dict[str, str] = {}
        self._logged: dict[str, set[int]] = {}
        self.log_seconds = 0.0     # wall time spent in log_trials
        self.logged_trials = 0

    # ---- searching ---------------------------------------------------------------------
    def _search(self, filter_string: str, run_view_type: int | None = None) -> list:
        from mlflow.entities import ViewType

        runs, token = [], None
        while True:
            page = self.client.search_runs([self.experiment_id], filter_string=filter_string,
                                           run_view_type=run_view_type or ViewType.ACTIVE_ONLY,
                                           max_results=1000, page_token=token)
            runs.extend(page)
            token = page.token
            if not token:
                return runs

    # ---- runs --------------------------------------------------------------------------
    def parent_run(self, subject_id: str) -> str:
        """The subject's parent run id, created (RUNNING) if missing; a KILLED/FAILED one is reopened."""
        if subject_id in self._parents:
            return self._parents[subject_id]
        runs = self._search(f"tags.`{ROLE}` = 'subject' and tags.subject = '{_escape(subject_id)}'")
        if runs:
            run = sorted(runs, key=lambda r: r.info.start_time)[0]
            if run.info.status in ("KILLED", "FAILED"):
                self.client.update_run(run.info.run_id, status="RUNNING")
            run_id = run.info.run_id
        else:
            run = self.client.create_run(self.experiment_id, run_name=subject_id,
                                         tags={ROLE: "subject", "subject": subject_id})
            run_id = run.info.run_id
        self._parents[subject_id] = run_id
        return run_id

    def tag_subject(self, subject_id: str, tags: Mapping[str, str]) -> None:
        """Set tags on the subject's parent run (e.g. ``participant`` and ``session``)."""
        rid = self.parent_run(subject_id)
        for k, v in tags.items():
            self.client.set_tag(rid, k, str(v))

    def _logged_numbers(self, subject_id: str) -> set[int]:
        if subject_id not in self._logged:
            self._logged[subject_id] = set(self.trial_runs(subject_id))
        return self._logged[subject_id]

    def log_trials(self, subject_id: str, records: Sequence[TrialRecord], *, replace: bool = False) -> int:
        """One child run per trial record (COMPLETE -> FINISHED, FAIL -> FAILED); returns runs created.

        What a run holds of a record is :func:`explorer.tracking.records.to_run`'s (plus the tracker's
        ``settings`` as params). Per trial: create_run, log_batch (params, metrics, tags within
        MLflow's limits), set_terminated. A trial number that already has a child run is skipped
        unless ``replace``.
        """
        from mlflow.entities import Metric, Param, RunTag

        t0 = time.perf_counter()
        parent = self.parent_run(subject_id)
        done = self._logged_numbers(subject_id)
        created = 0
        for rec in records:
            if rec.subject != subject_id:
                raise TrackingError(f"trial {rec.number} of subject {rec.subject} logged under subject {subject_id}")
            if rec.number in done and not replace:
                continue
            if rec.number in done:
                self.delete_trial_runs(subject_id, [rec.number])
            enc = to_run(rec, self.settings)
            run = self.client.create_run(self.experiment_id, start_time=enc.start_time,
                                         run_name=f"{subject_id}-t{rec.number:05d}", tags={PARENT: parent})
            rid = run.info.run_id
            metrics = [Metric(k, v, enc.end_time, 0) for k, v in enc.metrics.items()]
            params = [Param(k, v) for k, v in enc.params.items()]
            tag_list = [RunTag(k, v) for k, v in enc.tags.items()]
            m_chunks, p_chunks, t_chunks = (list(_chunks(metrics, MAX_METRICS)), list(_chunks(params, MAX_PARAMS)),
                                            list(_chunks(tag_list, MAX_TAGS)))
            for i in range(max(len(m_chunks), len(p_chunks), len(t_chunks), 1)):
                self.client.log_batch(rid, metrics=m_chunks[i] if i < len(m_chunks) else [],
                                      params=p_chunks[i] if i < len(p_chunks) else [],
                                      tags=t_chunks[i] if i < len(t_chunks) else [])
            self.client.set_terminated(rid, enc.status, end_time=enc.end_time)
            done.add(rec.number)
            created += 1
        self.log_seconds += time.perf_counter() - t0
        self.logged_trials += created
        return created

    def trial_runs(self, subject_id: str) -> dict[int, dict]:
        """Child runs of a subject: number -> {run_id, status, state, params (float), scores, tags, record, ...}.

        ``record`` is the run's :class:`~explorer.records.TrialRecord`
        (:func:`explorer.tracking.records.from_run`); ``state``, ``params`` and ``scores`` (finite,
        the metrics other than the times :data:`TRIAL_METRICS`) are its own. ``start_time`` and
        ``end_time`` are the run's (epoch milliseconds), ``settings`` the run settings it records.
        With several runs for one number (should not happen), the newest wins and the others are
        listed under ``duplicates``.
        """
        from explorer.tracking.records import run_settings

        runs = self._search(f"tags.`{ROLE}` = 'trial' and tags.subject = '{_escape(subject_id)}'")
        out: dict[int, dict] = {}
        for run in sorted(runs, key=lambda r: r.info.start_time):
            try:
                rec = from_run(run)
            except (KeyError, ValueError):
                continue
            if rec.number < 0:
                continue
            number = rec.number
            entry = {"run_id": run.info.run_id, "status": run.info.status, "state": rec.state,
                     "start_time": run.info.start_time, "end_time": run.info.end_time, "params": rec.params,
                     "scores": rec.scores, "metrics": dict(run.data.metrics), "tags": dict(run.data.tags),
                     "settings": run_settings(run), "record": rec,
                     "duplicates": out.get(number, {}).get("duplicates", []) +
                     ([out[number]["run_id"]] if number in out else [])}
            out[number] = entry
        return out

    def delete_trial_runs(self, subject_id: str, numbers: Iterable[int] | None = None,
                          run_ids: Iterable[str] | None = None) -> int:
        """Delete child runs by trial number (all runs of each number) and/or by run id."""
        ids = set(run_ids or [])
        if numbers is not None:
            wanted = {int(n) for n in numbers}
            for n, e in self.trial_runs(subject_id).items():
                if n in wanted:
                    ids.add(e["run_id"])
                    ids.update(e["duplicates"])
            self._logged.get(subject_id, set()).difference_update(wanted)
        for rid in ids:
            self.client.delete_run(rid)
        if run_ids:
            self._logged.pop(subject_id, None)
        return len(ids)

    def subjects(self) -> list[str]:
        """Subjects with a parent run in this experiment."""
        return sorted({r.data.tags.get("subject", "") for r in self._search(f"tags.`{ROLE}` = 'subject'")} - {""})

    def end_stale_runs(self, status: str = "KILLED") -> int:
        """Runs left RUNNING by a killed driver end as ``status`` (KILLED); returns how many."""
        runs = self._search("attributes.status = 'RUNNING'")
        now = int(time.time() * 1000)
        for run in runs:
            self.client.set_terminated(run.info.run_id, status, end_time=now)
        self._parents.clear()
        return len(runs)

    def finish_subject(self, subject_id: str, best_params: Mapping[str, float], best_scores: Mapping[str, float],
                       figures: Mapping[str, Any] | None = None, config_text: str = "", *,
                       best_trial: int | None = None, model: str = "", fixed_params: Mapping[str, Any] | None = None,
                       objectives: Sequence[str] | None = None, directions: Sequence[str] | None = None,
                       history: Sequence[Mapping[str, Any]] | None = None,
                       emp_fc=None, best_fc=None, emp_fcd_values=None, best_fcd_values=None,
                       trial_scores: Sequence[float] | None = None, trial_numbers: Sequence[int] | None = None,
                       objective: str = "fc_r", maximise: bool = True) -> None:
        """Summarise a finished subject on its parent run, and end it FINISHED (see the module doc).

        Logs the best trial's params and scores under the children's names (``best_trial``: its
        number), the tags that describe the subject's fit, ``best_so_far_<objective>`` for every
        COMPLETE trial of ``history`` (``[{"number", "values" (one per objective), "ended_at"
        (epoch s, optional)}]`` in trial order; default: the subject's COMPLETE child runs) not yet
        logged, the frozen study config (secrets redacted) as ``study.yaml``, and figures as PNG
        artifacts: the given ``figures`` (name -> matplotlib Figure or file path) plus, from arrays
        when given, ``fc_empirical_vs_best.png``, ``fcd_distributions.png`` and ``convergence.png``
        (``trial_scores`` default to the first objective of ``history``). ``objectives`` and
        ``directions`` default to ``[objective]`` and ``maximise``.
        """
        from mlflow.entities import Metric, Param, RunTag

        from explorer.tracking import figures as figs

        rid = self.parent_run(subject_id)
        now = int(time.time() * 1000)
        objectives = list(objectives or [objective])
        if directions is None:
            directions = ["maximize" if maximise else "minimize"] + [""] * (len(objectives) - 1)
        directions = [str(d).lower() for d in directions]
        if history is None:
            history = self._history(subject_id, objectives)
        run = self.client.get_run(rid)
        step = int(best_trial) if best_trial is not None else 0
        same_best = best_trial is not None and run.data.tags.get("best_trial") == str(step)
        ended = next((h.get("ended_at") for h in history if int(h["number"]) == step), None)
        metrics = [Metric(metric_key(k), float(v), _ms(ended, now), step) for k, v in best_scores.items()
                   if v is not None and math.isfinite(float(v))
                   and not (same_best and run.data.metrics.get(metric_key(k)) == float(v))]   # unchanged: not again
        metrics += self._best_so_far(rid, history, objectives, directions, now)
        best_json = {k: _num(v) for k, v in best_params.items()}
        tags = {"best_params": _json_tag(best_json), "objectives": _json_tag(objectives),
                "directions": _json_tag(list(directions))}
        if best_trial is not None:
            tags["best_trial"] = str(int(best_trial))
            run_id = self._trial_run_id(subject_id, int(best_trial))
            if run_id:
                tags["best_run_id"] = run_id
        if model:
            tags["model"] = str(model)
        if fixed_params is not None:
            tags["fixed_params"] = _json_tag({k: _num(v) for k, v in fixed_params.items()})
        # MLflow params are immutable: the parent's params are set once, by the first summary
        existing = run.data.params
        params = []
        if not any(param_key(k) in existing for k in best_params):
            params = [Param(param_key(k), _fmt_param(v)) for k, v in best_params.items()]
            if best_trial is not None:
                tags["params_trial"] = str(int(best_trial))
        tag_list = [RunTag(k, v[:MAX_TAG_VALUE]) for k, v in tags.items()]
        for mc, pc, tc in _zip_chunks(metrics, params, tag_list):
            self.client.log_batch(rid, metrics=mc, params=pc, tags=tc)
        if config_text:
            self.client.log_text(rid, redact_text(config_text), "study.yaml")
        score = best_scores.get(objective)
        to_log: dict[str, Any] = dict(figures or {})
        if emp_fc is not None and best_fc is not None:
            to_log["fc_empirical_vs_best.png"] = figs.fc_figure(emp_fc, best_fc, subject_id, score)
        if emp_fcd_values is not None and best_fcd_values is not None:
            to_log["fcd_distributions.png"] = figs.fcd_figure(emp_fcd_values, best_fcd_values, subject_id,
                                                              best_scores.get("fcd_ks"))
        if trial_scores is None:
            i = objectives.index(objective) if objective in objectives else 0
            trial_numbers = [int(h["number"]) for h in history]
            trial_scores = [float(h["values"][i]) for h in history]
        if len(trial_scores):
            to_log["convergence.png"] = figs.convergence_figure(trial_scores, objective, maximise, subject_id,
                                                                trial_numbers)
        for name, fig in to_log.items():
            if isinstance(fig, (str, Path)):
                self.client.log_artifact(rid, str(fig))
            else:
                self.client.log_figure(rid, fig, name if name.endswith((".png", ".svg", ".pdf")) else f"{name}.png")
        self.client.set_terminated(rid, "FINISHED")

    def _history(self, subject_id: str, objectives: Sequence[str]) -> list[dict[str, Any]]:
        """The COMPLETE child runs with every objective, as ``finish_subject``'s ``history``."""
        runs = self.trial_runs(subject_id)
        out = []
        for n in sorted(runs):
            e = runs[n]
            if e["state"] == "COMPLETE" and all(o in e["scores"] for o in objectives):
                out.append({"number": n, "values": [e["scores"][o] for o in objectives],
                            "ended_at": (e["end_time"] or 0) / 1000 or None})
        return out

    def _best_so_far(self, rid: str, history: Sequence[Mapping[str, Any]], objectives: Sequence[str],
                     directions: Sequence[str], now: int) -> list:
        """``best_so_far_<objective>`` points (step = trial number) after the last step already logged."""
        from mlflow.entities import Metric

        out = []
        for i, (obj, direction) in enumerate(zip(objectives, directions)):
            if direction not in ("maximize", "minimize"):
                continue
            key = f"{BEST_SO_FAR}{metric_key(obj)}"
            logged = self.client.get_metric_history(rid, key)
            last = max((m.step for m in logged), default=-1)
            best = None
            for h in sorted(history, key=lambda h: int(h["number"])):
                v = float(h["values"][i])
                if not math.isfinite(v):
                    continue
                if best is None or (v > best if direction == "maximize" else v < best):
                    best = v
                if int(h["number"]) > last:
                    out.append(Metric(key, best, _ms(h.get("ended_at"), now), int(h["number"])))
        return out

    def _trial_run_id(self, subject_id: str, number: int) -> str | None:
        """The child run of trial ``number`` (the newest if several), or None."""
        runs = self._search(f"tags.`{ROLE}` = 'trial' and tags.subject = '{_escape(subject_id)}' "
                            f"and tags.trial = '{int(number)}'")
        return sorted(runs, key=lambda r: r.info.start_time)[-1].info.run_id if runs else None

    def log_report(self, report_dir: str | Path, metrics: Mapping[str, float | None], tags: Mapping[str, str]) -> str:
        """Log a twin report as its own run (tags ``explorer.role=report`` and ``report``); returns its id.

        Every file of ``report_dir`` (index.html, report.json, figures) becomes an artifact; ``metrics``
        (None and non-finite values skipped) and ``tags`` go on the run.
        """
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        run = self.client.create_run(self.experiment_id, run_name=f"report-{time.strftime('%Y%m%d-%H%M%S')}",
                                     tags={ROLE: "report", "report": "true"})
        rid = run.info.run_id
        ms = [Metric(k, float(v), now, 0) for k, v in metrics.items() if v is not None and math.isfinite(float(v))]
        ts = [RunTag(k, redact_text(str(v))[:MAX_TAG_VALUE]) for k, v in tags.items()]
        for mc, _pc, tc in _zip_chunks(ms, [], ts):
            self.client.log_batch(rid, metrics=mc, tags=tc)
        self.client.log_artifacts(rid, str(report_dir), artifact_path="report")
        self.client.set_terminated(rid, "FINISHED")
        return rid

    def report_runs(self) -> list[str]:
        """Ids of the report runs of this study, oldest first."""
        runs = self._search(f"tags.`{ROLE}` = 'report'")
        return [r.info.run_id for r in sorted(runs, key=lambda r: r.info.start_time)]

    def logging_ms_per_trial(self) -> float:
        """Mean wall milliseconds ``log_trials`` spent per created child run (this session)."""
        return 1000.0 * self.log_seconds / self.logged_trials if self.logged_trials else float("nan")


def _zip_chunks(metrics: list, params: list, tags: list):
    m, p, t = list(_chunks(metrics, MAX_METRICS)), list(_chunks(params, MAX_PARAMS)), list(_chunks(tags, MAX_TAGS))
    for i in range(max(len(m), len(p), len(t))):
        yield (m[i] if i < len(m) else [], p[i] if i < len(p) else [], t[i] if i < len(t) else [])
