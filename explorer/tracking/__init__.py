"""MLflow tracking: one experiment per study, a parent run per subject, a child run per trial.

Only this package imports mlflow (lazily, inside :class:`Tracker`).
"""

from explorer.tracking.secrets import has_secret, redact_text, redact_url
from explorer.tracking.tracker import (
    Tracker,
    check_separate_databases,
    default_artifact_location,
    default_tracking_uri,
)

__all__ = ["Tracker", "check_separate_databases", "default_tracking_uri", "default_artifact_location",
           "redact_url", "redact_text", "has_secret"]
