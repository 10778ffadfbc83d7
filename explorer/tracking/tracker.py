"""MLflow tracking of a study: one experiment per study, one parent run per subject, child runs
(tag ``mlflow.parentRunId``) for the trials that ``tracking.children`` keeps, logged in batches
through ``MlflowClient``.

**Which trials get a child run** (the resolved mode, tag ``explorer.children`` on every parent,
:mod:`explorer.tracking.modes`): ``all``, one per trial; ``best_k``, only the subject's best
``best_k`` COMPLETE trials so far and its twin (a trial entering them is logged as it arrives, a
child pushed out is deleted); ``none``, none. ``children: auto`` is ``all`` for studies of up to
2,000 trials and ``best_k`` beyond, where thousands of runs would make MLflow's UI and
``search_runs`` unusable. **In every mode** each parent run carries every finished trial (COMPLETE
and FAIL) as one table artifact, ``trials.json`` (MLflow's table format, one row per trial:
:func:`explorer.tracking.records.to_table`), rewritten whenever the subject is finished.

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

Parent run tags: ``subject``, ``explorer.children`` (and ``explorer.best_k``), ``best_trial``
(trial number), ``best_run_id`` (that trial's child run, where it has one), ``best_params`` (JSON
object), ``params_trial``, ``model``, ``fixed_params`` (JSON of ``params.fixed`` of the frozen
config; per-region lists too long for a tag are summarised),
``objectives`` and ``directions`` (JSON lists, in the same order), and ``participant``/
``session`` for cohorts with sessions. Parent metrics: the best trial's scores (step = its trial
number) and ``best_so_far_<objective>`` for each objective: the best value among the COMPLETE
trials up to each one (from the finished trials' records, not from the child runs), step = trial
number, so MLflow's chart of it is the convergence curve
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
import os
import re
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from explorer.errors import TrackingError
from explorer.records import TrialRecord
from explorer.scoring.ranking import objective_of
from explorer.secrets import redact_text, redact_url
from explorer.tracking.auth import check_access
from explorer.tracking.figures import ec_figures, summary_figures
from explorer.tracking.modes import best_children
from explorer.tracking.outage import fail_fast_http
from explorer.tracking.records import (  # noqa: F401 - param_name: public here too
    MAX_TAG_VALUE,
    PARENT,
    ROLE,
    TABLE,
    TRIAL_METRICS,
    _ms,
    fmt_param as _fmt_param,
    from_run,
    from_table,
    metric_key,
    param_key,
    param_name,
    run_settings,
    settings_params,
    to_run,
    to_table,
)
from explorer.tracking.summary import EcSummary, SubjectSummary

log = logging.getLogger(__name__)

# MLflow's documented per-request limits of log_batch
MAX_METRICS, MAX_PARAMS, MAX_TAGS = 1000, 100, 100
BEST_SO_FAR = "best_so_far_"    # parent metric prefix: best_so_far_<objective>, step = trial number
CHILDREN_TAG = "explorer.children"   # parent tag: the child-run mode (all, best_k, none)
BEST_K_TAG = "explorer.best_k"       # parent tag: k, in best_k mode
LOGGED_ARTIFACTS = "mlflow.loggedArtifacts"   # MLflow's tag listing a run's tables (what log_table sets)


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


def fast_sqlite(client: Any) -> bool:
    """An embedded SQLite MLflow store (``sqlite:///...``) in WAL mode with ``synchronous=NORMAL``; returns
    whether it was set.

    MLflow opens SQLite with its defaults (rollback journal, ``synchronous=FULL``): every commit syncs
    to disk, ~1 ms here and several under load, and a child run takes a few dozen commits. With a
    write-ahead log a commit is ~0.01 ms, readers (``explorer ui``) never block the writer, and a
    crash of the process loses nothing committed (a power cut may lose the last commits; `explorer
    verify --repair` logs them again from Optuna). WAL needs the database on a local file system, as
    the embedded store is meant to be (a cluster uses an MLflow server)."""
    store = getattr(getattr(client, "_tracking_client", None), "store", None)
    engine = getattr(store, "engine", None)
    if engine is None or engine.dialect.name != "sqlite":
        return False
    from sqlalchemy import event

    if not event.contains(engine, "connect", _sqlite_pragmas):
        event.listen(engine, "connect", _sqlite_pragmas)
        engine.dispose()   # connections opened before (schema migrations) are reopened with the pragmas
    with engine.connect() as conn:
        mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
    return str(mode).lower() == "wal"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


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
    ``children``: which trials get a child run, ``all``, ``best_k`` or ``none`` (resolved:
    :func:`~explorer.tracking.modes.resolve_children`); ``best_k`` ranks by ``objective`` (the
    study's first; ``maximise`` its direction). Making a Tracker shortens MLflow's HTTP retries
    where the user has not set them (:func:`~explorer.tracking.outage.fail_fast_http`). An http(s)
    server that refuses the credentials (:mod:`explorer.tracking.auth`) raises AccessError here.
    """

    def __init__(self, tracking_uri: str, experiment: str, artifact_location: str | None = None,
                 settings: Any = None, *, children: str = "all", best_k: int = 10, objective: str = "fc_r",
                 maximise: bool = True) -> None:
        if children not in ("all", "best_k", "none"):
            raise TrackingError(f"children must be 'all', 'best_k' or 'none' (tracking.children, resolved), "
                                f"got {children!r}")
        if int(best_k) < 1:
            raise TrackingError(f"tracking.best_k must be at least 1, got {best_k}")
        fail_fast_http()
        # MLflow prints a "View run" URL per terminated run over HTTP: thousands of lines, and not JSON
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        _quiet_mlflow()
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        self.tracking_uri = str(tracking_uri)
        self.experiment = experiment
        self.settings = settings_params(settings)
        self.children, self.best_k = children, int(best_k)
        self.objective, self.maximise = objective, bool(maximise)
        if self.tracking_uri.startswith("sqlite:///"):
            Path(self.tracking_uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        check_access(self.tracking_uri, experiment)    # a server that refuses our credentials: AccessError now
        try:
            self.client = MlflowClient(tracking_uri=self.tracking_uri)
            fast_sqlite(self.client)
            exp = self.client.get_experiment_by_name(experiment)
            if exp is None:
                loc = artifact_location
                if loc and "://" not in loc:
                    Path(loc).mkdir(parents=True, exist_ok=True)
                    loc = Path(loc).resolve().as_uri()
                try:
                    self.experiment_id = self.client.create_experiment(experiment, artifact_location=loc,
                                                                       tags={"explorer.study": experiment})
                except MlflowException as exc:
                    # another driver of the study created it a moment ago: use theirs
                    exp = self.client.get_experiment_by_name(experiment)
                    if exp is None or exc.error_code != "RESOURCE_ALREADY_EXISTS":
                        raise
                    self.experiment_id = exp.experiment_id
            else:
                if exp.lifecycle_stage == "deleted":
                    self.client.restore_experiment(exp.experiment_id)
                self.experiment_id = exp.experiment_id
        except MlflowException as exc:
            raise TrackingError(f"cannot open MLflow at {redact_url(self.tracking_uri)} for study {experiment!r}: "
                                f"{exc}. Check storage.mlflow (or start the tracking server)") from None
        self._parents: dict[str, str] = {}
        # subject -> number -> {run_id, state, scores, duplicates} of its child runs (searched once a session)
        self._children: dict[str, dict[int, dict[str, Any]]] = {}
        self._always: dict[str, set[int]] = {}       # best_k: trials that keep their run (the twin)
        self._half: dict[tuple[str, int], str] = {}   # a child run whose logging failed half-way
        self._tabled: set[str] = set()                # parent runs whose LOGGED_ARTIFACTS tag lists the table
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
    def _find_parent(self, subject_id: str) -> Any:
        """The subject's parent run (the oldest if several), or None."""
        runs = self._search(f"tags.`{ROLE}` = 'subject' and tags.subject = '{_escape(subject_id)}'")
        return sorted(runs, key=lambda r: r.info.start_time)[0] if runs else None

    def subject_tags(self, subject_id: str) -> dict[str, str]:
        """The tags of the subject's parent run ({} when it has none); creates nothing."""
        run = self._find_parent(subject_id)
        return {} if run is None else dict(run.data.tags)

    def parent_run(self, subject_id: str) -> str:
        """The subject's parent run id, created (RUNNING) if missing; a KILLED/FAILED one is reopened.

        Once a session, it is tagged with the child-run mode (``explorer.children``, and
        ``explorer.best_k`` in ``best_k`` mode)."""
        from mlflow.entities import RunTag

        if subject_id in self._parents:
            return self._parents[subject_id]
        mode = {CHILDREN_TAG: self.children, **({BEST_K_TAG: str(self.best_k)} if self.children == "best_k" else {})}
        run = self._find_parent(subject_id)
        if run is not None:
            if run.info.status in ("KILLED", "FAILED"):
                self.client.update_run(run.info.run_id, status="RUNNING")
            run_id = run.info.run_id
            if self.children == "best_k" and run.data.tags.get("best_trial", "").isdigit():
                self._always.setdefault(subject_id, {int(run.data.tags["best_trial"])})
            changed = [RunTag(k, v) for k, v in mode.items() if run.data.tags.get(k) != v]
            if changed:
                self.client.log_batch(run_id, tags=changed)
        else:
            run = self.client.create_run(self.experiment_id, run_name=subject_id,
                                         tags={ROLE: "subject", "subject": subject_id, **mode})
            run_id = run.info.run_id
        self._parents[subject_id] = run_id
        return run_id

    def tag_subject(self, subject_id: str, tags: Mapping[str, str]) -> None:
        """Set tags on the subject's parent run (e.g. ``participant`` and ``session``)."""
        rid = self.parent_run(subject_id)
        for k, v in tags.items():
            self.client.set_tag(rid, k, str(v))

    def _known(self, subject_id: str) -> dict[int, dict[str, Any]]:
        """number -> {run_id, state, scores, duplicates} of the subject's child runs: searched once a
        session, then kept up to date by this tracker's own logging and deleting."""
        if subject_id not in self._children:
            self._children[subject_id] = {
                n: {k: e[k] for k in ("run_id", "state", "scores", "duplicates")}
                for n, e in self.trial_runs(subject_id).items()}
        return self._children[subject_id]

    def log_trials(self, subject_id: str, records: Sequence[TrialRecord], *, replace: bool = False) -> int:
        """Child runs for the trial records the mode keeps; returns runs created.

        ``all``: one child run per record (COMPLETE -> FINISHED, FAIL -> FAILED). ``best_k``: only
        for the subject's best ``best_k`` COMPLETE trials so far (:func:`~explorer.tracking.modes.best_children`,
        over this call's records and the subject's existing child runs, plus its twin once
        :meth:`finish_subject` named it); a child run pushed out of them is deleted. ``none``: no
        child runs. In every mode the subject's parent run exists (RUNNING) afterwards.

        What a run holds of a record is :func:`explorer.tracking.records.to_run`'s (plus the tracker's
        ``settings`` as params). Per trial: create_run, log_batch (params, metrics, tags within
        MLflow's limits), set_terminated. A trial number that already has a child run is skipped
        unless ``replace``. A call that fails part-way (the server went away) can be made again:
        a run it left half-logged is deleted first, so no trial gets two.
        """
        t0 = time.perf_counter()
        parent = self.parent_run(subject_id)
        for rec in records:
            if rec.subject != subject_id:
                raise TrackingError(f"trial {rec.number} of subject {rec.subject} logged under subject {subject_id}")
        if self.children == "none":
            return 0
        known = self._known(subject_id)
        todo, drop = list(records), []
        if self.children == "best_k":
            keep, drop = self._rank(subject_id, records)
            todo = [r for r in records if r.number in keep]
        created = 0
        for rec in todo:
            if rec.number in known and not replace:
                continue
            if rec.number in known:   # replace: every run of the number goes
                self._delete_child(subject_id, rec.number)
            self._log_child(subject_id, parent, rec)
            created += 1
        for n in drop:
            self._delete_child(subject_id, n)
        self.log_seconds += time.perf_counter() - t0
        self.logged_trials += created
        return created

    def _rank(self, subject_id: str, records: Sequence[TrialRecord]) -> tuple[set[int], list[int]]:
        """``best_k``: (the trial numbers that keep a child run, the numbers of child runs to delete)."""
        known = self._known(subject_id)
        cands = {n: {"scores": e["scores"]} for n, e in known.items() if e["state"] == "COMPLETE"}
        cands.update({r.number: {"scores": r.scores} for r in records if r.state == "COMPLETE"})
        keep = best_children(cands, self.best_k, self.objective, self.maximise, self._always.get(subject_id, ()))
        return keep, sorted(n for n in known if n not in keep)

    def _delete_child(self, subject_id: str, number: int) -> None:
        """Delete every known child run of trial ``number``."""
        known = self._known(subject_id)
        for rid in [known[number]["run_id"], *known[number].get("duplicates", [])]:
            self.client.delete_run(rid)
        del known[number]

    def _log_child(self, subject_id: str, parent: str, rec: TrialRecord) -> str:
        """Create the child run of ``rec`` (deleting first the run an earlier, failed attempt left)."""
        from mlflow.entities import Metric, Param, RunTag

        key = (subject_id, rec.number)
        if key in self._half:
            self.client.delete_run(self._half[key])
            del self._half[key]
        enc = to_run(rec, self.settings)
        run = self.client.create_run(self.experiment_id, start_time=enc.start_time,
                                     run_name=f"{subject_id}-t{rec.number:05d}", tags={PARENT: parent})
        rid = run.info.run_id
        self._half[key] = rid
        metrics = [Metric(k, v, enc.end_time, 0) for k, v in enc.metrics.items()]
        params = [Param(k, v) for k, v in enc.params.items()]
        tag_list = [RunTag(k, v) for k, v in enc.tags.items()]
        for mc, pc, tc in _zip_chunks(metrics, params, tag_list, at_least_one=True):
            self.client.log_batch(rid, metrics=mc, params=pc, tags=tc)
        self.client.set_terminated(rid, enc.status, end_time=enc.end_time)
        del self._half[key]
        self._known(subject_id)[rec.number] = {"run_id": rid, "state": rec.state, "scores": dict(rec.scores),
                                               "duplicates": []}
        return rid

    def trial_runs(self, subject_id: str) -> dict[int, dict]:
        """Child runs of a subject: number -> {run_id, status, state, params (float), scores, tags, record, ...}.

        ``record`` is the run's :class:`~explorer.records.TrialRecord`
        (:func:`explorer.tracking.records.from_run`); ``state``, ``params`` and ``scores`` (finite,
        the metrics other than the times :data:`TRIAL_METRICS`) are its own. ``start_time`` and
        ``end_time`` are the run's (epoch milliseconds), ``settings`` the run settings it records.
        With several runs for one number (should not happen), the newest wins and the others are
        listed under ``duplicates``.
        """
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
        for rid in ids:
            self.client.delete_run(rid)
        self._children.pop(subject_id, None)   # searched again when next needed
        return len(ids)

    def subjects(self) -> list[str]:
        """Subjects with a parent run in this experiment."""
        return sorted({r.data.tags.get("subject", "") for r in self._search(f"tags.`{ROLE}` = 'subject'")} - {""})

    def end_stale_runs(self, status: str = "KILLED", subjects: Iterable[str] | None = None) -> int:
        """Runs left RUNNING by a killed driver end as ``status`` (KILLED); returns how many.

        ``subjects``: only those subjects' runs, their parent runs (tag ``subject``) and child runs (tag
        ``subject``, or a parent among theirs: a run killed before its tags were logged), so that a
        driver leaves the runs of subjects that other live drivers hold alone; None: every run.
        """
        runs = self._search("attributes.status = 'RUNNING'")
        if subjects is not None:
            wanted = set(subjects)
            parents = {r.info.run_id for r in self._search(f"tags.`{ROLE}` = 'subject'")
                       if r.data.tags.get("subject") in wanted}
            runs = [r for r in runs if r.info.run_id in parents or r.data.tags.get(PARENT) in parents
                    or (r.data.tags.get("subject") in wanted and r.data.tags.get(ROLE) in ("subject", "trial"))]
        now = int(time.time() * 1000)
        for run in runs:
            self.client.set_terminated(run.info.run_id, status, end_time=now)
        for sid in (list(self._parents) if subjects is None else wanted):
            self._parents.pop(sid, None)
        return len(runs)

    def finish_subject(self, summary: SubjectSummary) -> None:
        """Summarise a finished subject on its parent run, and end it FINISHED (see the module doc).

        ``summary.records`` (every finished trial, COMPLETE and FAIL) become the parent's trials table
        (:meth:`log_trial_table`), and in ``best_k`` mode the twin ``best_trial`` gets (and keeps) a
        child run even where it is not among the best k by the first objective. Logs the best trial's
        params and scores under the children's names, the tags that describe the subject's fit,
        ``best_so_far_<objective>`` for every COMPLETE trial of the history not yet logged, the
        frozen study config (secrets redacted) as ``study.yaml``, and the figures of
        :func:`~explorer.tracking.figures.summary_figures` as PNG artifacts.
        """
        from mlflow.entities import Metric, Param, RunTag

        s, subject_id = summary, summary.subject
        rid = self.parent_run(subject_id)
        now = int(time.time() * 1000)
        objectives, directions = list(s.objectives), s.resolved_directions()
        best_trial = None if s.best_trial is None else int(s.best_trial)
        if s.records is not None:
            self.log_trial_table(subject_id, s.records)
        if self.children == "best_k" and best_trial is not None:
            self._always[subject_id] = {best_trial}
            self.log_trials(subject_id, [r for r in s.records or () if r.number == best_trial])  # and re-rank
        history = s.history
        if history is None:
            history = history_of(s.records, objectives) if s.records is not None else self._history(subject_id,
                                                                                                    objectives)
        run = self.client.get_run(rid)
        step = best_trial if best_trial is not None else 0
        same_best = best_trial is not None and run.data.tags.get("best_trial") == str(step)
        ended = next((h.get("ended_at") for h in history if int(h["number"]) == step), None)
        metrics = [Metric(metric_key(k), float(v), _ms(ended, now), step) for k, v in s.best_scores.items()
                   if v is not None and math.isfinite(float(v))
                   and not (same_best and run.data.metrics.get(metric_key(k)) == float(v))]   # unchanged: not again
        metrics += self._best_so_far(rid, history, objectives, directions, now)
        best_json = {k: _num(v) for k, v in s.best_params.items()}
        tags = {"best_params": _json_tag(best_json), "objectives": _json_tag(objectives),
                "directions": _json_tag(list(directions))}
        if best_trial is not None:
            tags["best_trial"] = str(best_trial)
            run_id = self._trial_run_id(subject_id, best_trial)
            if run_id:
                tags["best_run_id"] = run_id
        if s.model:
            tags["model"] = str(s.model)
        if s.fixed_params is not None:
            tags["fixed_params"] = _json_tag({k: _num(v) for k, v in s.fixed_params.items()})
        # MLflow params are immutable: the parent's params are set once, by the first summary
        existing = run.data.params
        params = []
        if not any(param_key(k) in existing for k in s.best_params):
            params = [Param(param_key(k), _fmt_param(v)) for k, v in s.best_params.items()]
            if best_trial is not None:
                tags["params_trial"] = str(best_trial)
        tag_list = [RunTag(k, v[:MAX_TAG_VALUE]) for k, v in tags.items()]
        for mc, pc, tc in _zip_chunks(metrics, params, tag_list):
            self.client.log_batch(rid, metrics=mc, params=pc, tags=tc)
        if s.config_text:
            self.client.log_text(rid, redact_text(s.config_text), "study.yaml")
        for name, fig in summary_figures(s, history).items():
            self.client.log_figure(rid, fig, name)
        self.client.set_terminated(rid, "FINISHED")

    def log_ec(self, ec: EcSummary) -> None:
        """Record a subject's EC fit on its parent run: the fit's scalars as metrics ``ec_<name>``, its status,
        reason and key as tags, and the figures of :func:`~explorer.tracking.figures.ec_figures` (EC beside SC,
        the fit trace). A finished parent run stays FINISHED."""
        from mlflow.entities import Metric, RunTag

        rid = self.parent_run(ec.subject)
        now = int(time.time() * 1000)
        s = ec.summary
        metrics = [Metric(f"ec_{k}", float(v), now, 0) for k, v in s.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))]
        tags = [RunTag("ec_status", str(s.get("status", ""))), RunTag("ec_key", ec.key),
                RunTag("ec_reason", str(s.get("reason") or "")[:MAX_TAG_VALUE])]
        for mc, _, tc in _zip_chunks(metrics, [], tags):
            self.client.log_batch(rid, metrics=mc, tags=tc)
        for name, fig in ec_figures(ec).items():
            self.client.log_figure(rid, fig, name)

    def log_trial_table(self, subject_id: str, records: Sequence[TrialRecord]) -> None:
        """Write every record (one row per trial, :func:`~explorer.tracking.records.to_table`) as the table
        ``trials.json`` of the subject's parent run, replacing the one there.

        The file is MLflow's table format (what ``MlflowClient.log_table`` writes and ``load_table``
        reads), listed in the run's ``mlflow.loggedArtifacts`` tag as log_table lists it. It is
        written here rather than by log_table, which appends to an existing table (a rewrite would
        repeat every row) and rounds floats to 10 decimals (the free values are kept exactly here).
        """
        rid = self.parent_run(subject_id)
        for rec in records:
            if rec.subject != subject_id:
                raise TrackingError(f"trial {rec.number} of subject {rec.subject} in the table of subject {subject_id}")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / TABLE
            path.write_text(json.dumps(to_table(list(records)), allow_nan=False))
            self.client.log_artifact(rid, str(path))
        if rid not in self._tabled:
            listed = json.loads(self.client.get_run(rid).data.tags.get(LOGGED_ARTIFACTS, "[]"))
            entry = {"path": TABLE, "type": "table"}
            if entry not in listed:
                self.client.set_tag(rid, LOGGED_ARTIFACTS, json.dumps(listed + [entry]))
            self._tabled.add(rid)

    def trial_table(self, subject_id: str) -> dict[int, TrialRecord]:
        """number -> record of each row of the subject's trials table; {} without a parent run or table."""
        run = self._find_parent(subject_id)
        if run is None or TABLE not in {a.path for a in self.client.list_artifacts(run.info.run_id)}:
            return {}
        with tempfile.TemporaryDirectory() as tmp:
            local = self.client.download_artifacts(run.info.run_id, TABLE, tmp)
            return {n: rec for n, rec in from_table(json.loads(Path(local).read_text())).items()}

    def _history(self, subject_id: str, objectives: Sequence[str]) -> list[dict[str, Any]]:
        """The COMPLETE child runs with every objective, as ``SubjectSummary.history`` (``all`` mode:
        in the other modes the child runs are not every trial, so ``records`` must be given)."""
        if self.children != "all":
            raise TrackingError(f"finish_subject of {subject_id} needs its records (or history): with "
                                f"tracking.children {self.children} the child runs are not every trial")
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

    def close(self, timeout_s: float | None = None) -> bool:
        """Nothing to wait for (every call was made when it returned): True."""
        return True

    def logging_ms_per_trial(self) -> float:
        """Mean wall milliseconds ``log_trials`` spent per created child run (this session)."""
        return 1000.0 * self.log_seconds / self.logged_trials if self.logged_trials else float("nan")


def history_of(records: Sequence[TrialRecord], objectives: Sequence[str]) -> list[dict[str, Any]]:
    """``SubjectSummary.history`` from trial records: the COMPLETE ones whose every objective (a score
    or a combination of scores) is finite, in trial order; ``ended_at`` is the tell time (epoch s)."""
    out = []
    for r in sorted(records, key=lambda r: r.number):
        values = [objective_of(r.scores, o) for o in objectives]
        if r.state == "COMPLETE" and all(math.isfinite(v) for v in values):
            out.append({"number": r.number, "values": values, "ended_at": (r.told_at or r.ended_at) or None})
    return out


def _zip_chunks(metrics: list, params: list, tags: list, at_least_one: bool = False):
    m, p, t = list(_chunks(metrics, MAX_METRICS)), list(_chunks(params, MAX_PARAMS)), list(_chunks(tags, MAX_TAGS))
    for i in range(max(len(m), len(p), len(t), int(at_least_one))):
        yield (m[i] if i < len(m) else [], p[i] if i < len(p) else [], t[i] if i < len(t) else [])
