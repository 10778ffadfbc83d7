"""The driver's hooks into the signals store (zarr) and tracking (MLflow).

Both are optional at run time: ``store: none`` disables signals. Failures inside a hook are
logged and do not stop the search (``explorer verify --repair`` re-creates what is missing). A
tracker call that fails because the MLflow server cannot be reached is not a failure yet: it waits,
in order, and is tried again (:class:`TrackerThread`).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from explorer.config import StudyConfig
from explorer.store import SignalStore, simulation_attrs
from explorer.study.frozen import git_revision
from explorer.study.layout import embedded_mlflow_uri, mlflow_artifacts, mlflow_uri, optuna_storage_url, zarr_url
from explorer.study.lock import setup_lock
from explorer.tracking import Tracker, check_separate_databases, describe_children, unreachable
from explorer.tracking.modes import tracker_options
from explorer.tracking.relocate import repair_artifact_locations

log = logging.getLogger(__name__)


def open_store(cfg: StudyConfig, study_dir: Path) -> tuple[Any, str | None]:
    """(SignalStore or None, its URL or None) for the study's ``store.mode``.

    A new store is described (:meth:`~explorer.store.SignalStore.describe`): its root records the
    model, the run settings and the git revision that simulate its signals."""
    if cfg.store.mode == "none":
        return None, None
    url = zarr_url(cfg, study_dir)
    store = SignalStore(url)
    store.describe(simulation_attrs(cfg.model, cfg.simulation, cfg.simulation.repeats), git_revision())
    return store, url


class NullTracker:
    """Stands in for the MLflow tracker while ``explorer.tracking`` is unavailable."""

    def end_stale_runs(self, *args: Any, **kwargs: Any) -> int:
        return 0

    def log_trials(self, subject_id: str, records: list) -> None:
        pass

    def log_trial_table(self, subject_id: str, records: list) -> None:
        pass

    def finish_subject(self, *args: Any, **kwargs: Any) -> None:
        pass

    def tag_subject(self, subject_id: str, tags: dict[str, str]) -> None:
        pass


def study_size(cfg: StudyConfig, subjects: Iterable[str] = (), storage: Any = None) -> int:
    """Subjects of the study: those given (this session's cohort) and those with a study in ``storage``."""
    known = set(subjects)
    if storage is not None:
        from explorer.search import list_subject_studies

        known |= set(list_subject_studies(storage, cfg.name))
    return len(known)


def open_tracker(cfg: StudyConfig, study_dir: Path, subjects: Iterable[str] = (), storage: Any = None) -> Any:
    """The study's MLflow tracker (refusing an MLflow URI that is the Optuna database).

    ``subjects`` (this session's cohort) and ``storage`` (the Optuna storage, whose subject studies
    count too) size the study for ``tracking.children: auto``; the resolved mode is logged."""
    check_separate_databases(optuna_storage_url(cfg, study_dir), mlflow_uri(cfg, study_dir))
    if mlflow_uri(cfg, study_dir) == embedded_mlflow_uri(study_dir):
        # the embedded store of a folder that may have been moved: point its artifacts here again,
        # or new figures would go to (or be read from) the old folder
        repair_artifact_locations(study_dir)
    n = study_size(cfg, subjects, storage)
    log.info("%s", describe_children(cfg.tracking.children, n, cfg.n_trials, cfg.tracking.best_k))
    try:  # the Tracker imports mlflow
        return Tracker(mlflow_uri(cfg, study_dir), experiment=cfg.name,
                       artifact_location=mlflow_artifacts(cfg, study_dir), settings=cfg.simulation,
                       **tracker_options(cfg, n))
    except ImportError as exc:
        log.warning("MLflow tracking unavailable (%s); trials are recorded in Optuna only", exc)
        return NullTracker()


def tracker_opener(cfg: StudyConfig, study_dir: Path, subjects: Iterable[str], storage: Any) -> Any:
    """A callable opening the study's tracker (:func:`open_tracker`) under the study's setup lock, for
    :class:`TrackerThread` to call on its thread; an MLflow URI that is the Optuna database is refused now."""
    check_separate_databases(optuna_storage_url(cfg, study_dir), mlflow_uri(cfg, study_dir))
    subjects = list(subjects)

    def open_() -> Any:
        with setup_lock(study_dir):   # another driver may be creating the same MLflow store right now
            return open_tracker(cfg, study_dir, subjects, storage)
    return open_


class Guard:
    """Calls a hook (a store or tracker write), logging instead of raising when it fails.

    The failures are kept (``failures``: one line each) so that the driver writes them to
    ``runs.jsonl`` and ``explorer status`` shows them: a broken tracker never vanishes silently.
    """

    def __init__(self) -> None:
        self.failures: list[str] = []

    def __call__(self, what: str, fn, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            line = f"{what} failed: {type(exc).__name__}: {exc}"
            self.failures.append(line if len(line) <= 300 else line[:297] + "...")
            log.warning("%s (run `explorer verify NAME --repair` afterwards)", line,
                        exc_info=log.isEnabledFor(logging.DEBUG))
            return None


#: seconds between tries of a tracker call while MLflow is unreachable: doubling from the first to the last
RETRY_FIRST_S, RETRY_MAX_S = 1.0, 30.0
#: seconds :meth:`TrackerThread.close` waits for queued calls by default (``tracking.drain_s``'s default)
DRAIN_S = 60.0


class TrackerThread:
    """The tracker's calls, made in order by one background thread: MLflow stays off the scheduling loop.

    ``log_trials``, ``log_trial_table``, ``finish_subject`` and ``tag_subject`` return at once; each
    call runs later. A call that fails because MLflow cannot be reached
    (:func:`explorer.tracking.unreachable`: connection refused or reset, a timeout, HTTP 5xx) stays
    at the head of the queue and is tried again after ``retry_first_s``, doubling up to
    ``retry_max_s`` (1 s to 30 s), while the later calls wait behind it: the sweep goes on and
    nothing is lost or reordered. Any other failure goes through ``guard`` (logged and recorded,
    never raised). Calls keep their order, so a subject's summary follows its trials.

    :meth:`close` waits at most ``drain_s`` (``tracking.drain_s``) for the queue; what is not
    logged by then is recorded in ``guard`` as a failure naming ``explorer verify NAME --repair``.

    ``opener`` (instead of ``tracker``): a callable that opens the tracker, called first on the thread,
    so that opening MLflow (imports, schema migrations of a new store: seconds) overlaps the driver's
    start of Ray and its actors. Calls queued meanwhile wait for it; :meth:`ready` waits too, and
    raises what opening raised (then no queued call is made).
    """

    def __init__(self, tracker: Any, guard: Guard, drain_s: float = DRAIN_S, *, retry_first_s: float = RETRY_FIRST_S,
                 retry_max_s: float = RETRY_MAX_S, opener: Any = None):
        self.tracker = tracker
        self._opener = opener
        self._opened = threading.Event()
        self._open_error: BaseException | None = None
        self.guard = guard
        self.drain_s = float(drain_s)
        self.retry_first_s, self.retry_max_s = float(retry_first_s), float(retry_max_s)
        self.queue: queue.Queue = queue.Queue()
        self.current: tuple | None = None        # the call being made (or waiting to be tried again)
        self.outage_since: float | None = None   # time.monotonic() when MLflow was found unreachable
        self.retries = 0                         # tries again of calls that found MLflow unreachable
        self._wake = threading.Event()           # close(): try the waiting call now
        self._abandon = threading.Event()        # close() gave up: make no more calls
        self._closed: bool | None = None
        self.thread = threading.Thread(target=self._work, name="explorer-tracker", daemon=True)
        self.thread.start()

    def _work(self) -> None:
        if self._opener is not None:
            try:
                self.tracker = self._opener()
            except BaseException as exc:  # noqa: BLE001 - raised by ready(), in the driver's thread
                self._open_error = exc
                self._opened.set()
                return
        self._opened.set()
        while not self._abandon.is_set():
            item = self.queue.get()
            if item is None:
                return
            self.current = item
            self._call(*item)
            self.current = None

    def _call(self, what: str, fn: Any, args: tuple, kwargs: dict) -> None:
        """Make one call; while MLflow is unreachable, wait and try again (until :meth:`close` gives up)."""
        delay = self.retry_first_s
        while not self._abandon.is_set():
            try:
                fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001
                if not unreachable(exc):
                    self.guard(what, _raise, exc)
                    return
                if self.outage_since is None:
                    self.outage_since = time.monotonic()
                    log.warning("MLflow unreachable during %s (%s: %s); its calls are kept, in order, and tried "
                                "again after %g s, doubling up to %g s", what, type(exc).__name__, _short(exc),
                                self.retry_first_s, self.retry_max_s)
                self.retries += 1
                self._wake.wait(delay)
                self._wake.clear()
                delay = min(2 * delay, self.retry_max_s)
                continue
            if self.outage_since is not None:
                log.warning("MLflow reachable again after %.0f s; logging the %d call(s) kept meanwhile",
                            time.monotonic() - self.outage_since, self.queue.qsize() + 1)
                self.outage_since = None
            return

    def ready(self) -> Any:
        """Wait until the tracker is open and return it; raise what opening it raised."""
        self._opened.wait()
        if self._open_error is not None:
            raise self._open_error
        return self.tracker

    def pending(self) -> int:
        """Calls not yet made (the one being made, or waiting to be tried again, included)."""
        return self.queue.qsize() + (self.current is not None)

    def _put(self, what: str, method: str, *args: Any, **kwargs: Any) -> None:
        self.queue.put((what, self._method(method), args, kwargs))

    def _method(self, name: str) -> Any:
        """The tracker's method ``name``, looked up when called (the tracker may still be opening)."""
        def call(*args: Any, **kwargs: Any) -> Any:
            return getattr(self.tracker, name)(*args, **kwargs)
        return call

    def then(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> None:
        """Call ``fn`` after the tracker calls queued so far (e.g. mark a subject finished once it is logged)."""
        self.queue.put((what, fn, args, kwargs))

    def log_trials(self, subject_id: str, records: list) -> None:
        self._put(f"MLflow logging of {subject_id}", "log_trials", subject_id, list(records))

    def log_trial_table(self, subject_id: str, records: list) -> None:
        self._put(f"MLflow trials table of {subject_id}", "log_trial_table", subject_id, list(records))

    def finish_subject(self, subject_id: str, *args: Any, **kwargs: Any) -> None:
        self._put(f"MLflow summary of {subject_id}", "finish_subject", subject_id, *args, **kwargs)

    def tag_subject(self, subject_id: str, tags: dict[str, str]) -> None:
        self._put(f"MLflow tags of {subject_id}", "tag_subject", subject_id, dict(tags))

    def end_stale_runs(self, subjects: list[str]) -> None:
        self._put(f"ending stale MLflow runs of {', '.join(subjects)}", "end_stale_runs", subjects=list(subjects))

    def close(self, timeout_s: float | None = None) -> bool:
        """Stop after the calls already queued, waiting at most ``timeout_s`` (None: ``drain_s``) for them;
        returns whether they all ran. Those that did not are never made: each is recorded in ``guard``,
        naming ``explorer verify NAME --repair``. A second close returns the first one's answer."""
        if self._closed is not None:
            return self._closed
        wait = self.drain_s if timeout_s is None else max(0.0, float(timeout_s))
        self.queue.put(None)
        self._wake.set()            # a call waiting for MLflow: try it now
        self.thread.join(wait)
        if not self.thread.is_alive():
            self._closed = True
            return True
        self._abandon.set()
        self._wake.set()
        left = [self.current] if self.current is not None else []
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                left.append(item)
        why = "MLflow unreachable" if self.outage_since is not None else "still running"
        for what, *_ in left:
            self.guard.failures.append(f"{what} not done: {why} {wait:g} s after the loop ended "
                                       "(run `explorer verify NAME --repair`)")
        log.warning("%d MLflow call(s) not made within %g s (%s); `explorer verify NAME --repair` logs them "
                    "from Optuna", len(left), wait, why)
        self._closed = False
        return False


def _raise(exc: BaseException) -> None:
    raise exc


def _short(exc: BaseException, n: int = 200) -> str:
    text = str(exc)
    return text if len(text) <= n else text[:n - 3] + "..."
