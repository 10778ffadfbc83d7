"""What the driver asks of a tracker: :class:`TrackerProtocol`, and :class:`NullTracker`, which records nothing.

The implementations: :class:`~explorer.tracking.tracker.Tracker` (MLflow, each call made when it
returns), :class:`~explorer.tracking.spool.TrackerThread` (the same calls queued and made in order
on a thread, tried again while MLflow is unreachable) and :class:`NullTracker` (MLflow not
installed). One contract test covers all three (``tests/tracking/test_protocol.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from explorer.records import TrialRecord
from explorer.tracking.summary import EcSummary, SubjectSummary


@runtime_checkable
class TrackerProtocol(Protocol):
    """A study's tracking: per subject, trial runs, a trials table and a summary.

    Calls on one subject come in this order: ``end_stale_runs``, ``tag_subject``, ``log_trials``
    (as trials finish), then ``finish_subject`` or ``log_trial_table``; ``close`` ends the study's
    session. A method returning ``int | None`` returns a count where the call was made at once, and
    None where it was queued.
    """

    def end_stale_runs(self, *, subjects: Iterable[str] | None = None) -> int | None:
        """End the runs a killed driver left RUNNING, of ``subjects`` only (None: of every subject)."""
        ...

    def tag_subject(self, subject_id: str, tags: Mapping[str, str]) -> None:
        """Set tags on the subject's run (e.g. ``participant`` and ``session``)."""
        ...

    def log_trials(self, subject_id: str, records: Sequence[TrialRecord]) -> int | None:
        """Record finished trials of ``subject_id`` (a trial already recorded is skipped); runs created."""
        ...

    def log_trial_table(self, subject_id: str, records: Sequence[TrialRecord]) -> None:
        """Record every finished trial of ``subject_id`` as its table, replacing the one there."""
        ...

    def finish_subject(self, summary: SubjectSummary) -> None:
        """Record a finished subject's summary (its twin, table, convergence and figures)."""
        ...

    def log_ec(self, ec: EcSummary) -> None:
        """Record a subject's EC fit on its run: metrics ``ec_*``, tags ``ec_status``/``ec_reason``, EC and trace figures."""
        ...

    def close(self, timeout_s: float | None = None) -> bool:
        """End the session, waiting at most ``timeout_s`` for calls not yet made; whether all were made."""
        ...


class NullTracker:
    """Stands in for the MLflow tracker where mlflow is not installed: records nothing, never fails."""

    def end_stale_runs(self, *, subjects: Iterable[str] | None = None) -> int:
        return 0

    def tag_subject(self, subject_id: str, tags: Mapping[str, str]) -> None:
        pass

    def log_trials(self, subject_id: str, records: Sequence[TrialRecord]) -> int:
        return 0

    def log_trial_table(self, subject_id: str, records: Sequence[TrialRecord]) -> None:
        pass

    def finish_subject(self, summary: SubjectSummary) -> None:
        pass

    def log_ec(self, ec: EcSummary) -> None:
        pass

    def close(self, timeout_s: float | None = None) -> bool:
        return True
