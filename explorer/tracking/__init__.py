"""MLflow tracking: one experiment per study, a parent run per subject (with every trial in its table
``trials.json``), child runs for every trial or each subject's best k (``tracking.children``).
Every tracker is a :class:`TrackerProtocol`: the MLflow :class:`Tracker`, its queue on a thread
(:class:`TrackerThread`) and :class:`NullTracker`.

Only this package imports mlflow (lazily, inside :class:`Tracker`).
"""

from explorer.secrets import redact_text, redact_url
from explorer.tracking.modes import describe as describe_children, resolve_children
from explorer.tracking.outage import unreachable
from explorer.tracking.protocol import NullTracker, TrackerProtocol
from explorer.tracking.spool import TrackerThread
from explorer.tracking.summary import EcSummary, FitArrays, SubjectSummary
from explorer.tracking.tracker import Tracker, check_separate_databases

__all__ = ["Tracker", "TrackerProtocol", "NullTracker", "TrackerThread", "SubjectSummary", "FitArrays", "EcSummary",
           "check_separate_databases", "redact_url", "redact_text", "resolve_children", "describe_children",
           "unreachable"]
