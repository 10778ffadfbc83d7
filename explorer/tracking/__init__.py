"""MLflow tracking: one experiment per study, a parent run per subject, a child run per trial.

Only this package imports mlflow (lazily, inside :class:`Tracker`).
"""

from explorer.secrets import redact_text, redact_url
from explorer.tracking.tracker import Tracker, check_separate_databases

__all__ = ["Tracker", "check_separate_databases", "redact_url", "redact_text"]
