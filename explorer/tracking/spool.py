"""The tracker's calls made in order on one background thread, waiting while MLflow is unreachable:
:class:`TrackerThread`, a :class:`~explorer.tracking.protocol.TrackerProtocol` that keeps MLflow off
the driver's scheduling loop and loses no call to an outage of the server.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from explorer.records import TrialRecord
from explorer.tracking.outage import unreachable
from explorer.tracking.protocol import TrackerProtocol
from explorer.tracking.summary import EcSummary, SubjectSummary

log = logging.getLogger(__name__)


class FailureLog(Protocol):
    """Where failed calls go (the driver's :class:`~explorer.runner.hooks.Guard`): ``guard(what, fn, *args)``
    calls ``fn``, logging and recording a failure instead of raising; ``failures`` holds one line each."""

    failures: list[str]

    def __call__(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        ...


#: seconds between tries of a tracker call while MLflow is unreachable: doubling from the first to the last
RETRY_FIRST_S, RETRY_MAX_S = 1.0, 30.0
#: seconds :meth:`TrackerThread.close` waits for queued calls by default (``tracking.drain_s``'s default)
DRAIN_S = 60.0


class TrackerThread:
    """The tracker's calls, made in order by one background thread: MLflow stays off the scheduling loop.

    Every :class:`~explorer.tracking.protocol.TrackerProtocol` call but :meth:`close` returns at once
    (None) and is made later, on ``tracker``, through the same method. A call that fails because
    MLflow cannot be reached (:func:`explorer.tracking.unreachable`: connection refused or reset, a
    timeout, HTTP 5xx) stays at the head of the queue and is tried again after ``retry_first_s``,
    doubling up to ``retry_max_s`` (1 s to 30 s), while the later calls wait behind it: the sweep
    goes on and nothing is lost or reordered. Any other failure goes through ``guard`` (logged and recorded,
    never raised). Calls keep their order, so a subject's summary follows its trials.

    :meth:`close` waits at most ``drain_s`` (``tracking.drain_s``) for the queue; what is not
    logged by then is recorded in ``guard`` as a failure naming ``explorer verify NAME --repair``.

    ``opener`` (instead of ``tracker``): a callable that opens the tracker, called first on the thread,
    so that opening MLflow (imports, schema migrations of a new store: seconds) overlaps the driver's
    start of Ray and its actors. Calls queued meanwhile wait for it; :meth:`ready` waits too, and
    raises what opening raised (then no queued call is made).
    """

    def __init__(self, tracker: TrackerProtocol | None, guard: FailureLog, drain_s: float = DRAIN_S, *,
                 retry_first_s: float = RETRY_FIRST_S, retry_max_s: float = RETRY_MAX_S,
                 opener: Callable[[], TrackerProtocol] | None = None):
        self.tracker = tracker
        self._opener = opener
        self._opened = threading.Event()
        self._open_error: BaseException | None = None
        self.guard = guard
        self.drain_s = float(drain_s)
        self.retry_first_s, self.retry_max_s = float(retry_first_s), float(retry_max_s)
        self.queue: queue.Queue[tuple[str, Callable[[], Any]] | None] = queue.Queue()
        self.current: tuple[str, Callable[[], Any]] | None = None   # the call being made (or to be tried again)
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

    def _call(self, what: str, call: Callable[[], Any]) -> None:
        """Make one call; while MLflow is unreachable, wait and try again (until :meth:`close` gives up)."""
        delay = self.retry_first_s
        while not self._abandon.is_set():
            try:
                call()
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

    def ready(self) -> TrackerProtocol | None:
        """Wait until the tracker is open and return it; raise what opening it raised."""
        self._opened.wait()
        if self._open_error is not None:
            raise self._open_error
        return self.tracker

    def pending(self) -> int:
        """Calls not yet made (the one being made, or waiting to be tried again, included)."""
        return self.queue.qsize() + (self.current is not None)

    def _put(self, what: str, call: Callable[[], Any]) -> None:
        self.queue.put((what, call))

    def _tracker(self) -> TrackerProtocol:
        """The tracker, on the thread: opened (or given) before any queued call is made."""
        assert self.tracker is not None, "a queued call runs only once the tracker is open"
        return self.tracker

    def then(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Call ``fn`` after the tracker calls queued so far (e.g. mark a subject finished once it is logged)."""
        self._put(what, functools.partial(fn, *args, **kwargs))

    def end_stale_runs(self, *, subjects: Iterable[str] | None = None) -> None:
        sids = None if subjects is None else list(subjects)
        what = f"ending stale MLflow runs of {'every subject' if sids is None else ', '.join(sids)}"
        self._put(what, lambda: self._tracker().end_stale_runs(subjects=sids))

    def tag_subject(self, subject_id: str, tags: Mapping[str, str]) -> None:
        tags = dict(tags)
        self._put(f"MLflow tags of {subject_id}", lambda: self._tracker().tag_subject(subject_id, tags))

    def log_trials(self, subject_id: str, records: Sequence[TrialRecord]) -> None:
        records = list(records)
        self._put(f"MLflow logging of {subject_id}", lambda: self._tracker().log_trials(subject_id, records))

    def log_trial_table(self, subject_id: str, records: Sequence[TrialRecord]) -> None:
        records = list(records)
        self._put(f"MLflow trials table of {subject_id}", lambda: self._tracker().log_trial_table(subject_id, records))

    def finish_subject(self, summary: SubjectSummary) -> None:
        self._put(f"MLflow summary of {summary.subject}", lambda: self._tracker().finish_subject(summary))

    def log_ec(self, ec: EcSummary) -> None:
        self._put(f"MLflow EC of {ec.subject}", lambda: self._tracker().log_ec(ec))

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
