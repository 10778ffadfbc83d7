"""Ray actors hosting warm simulators, and the driver loop that feeds them Optuna trials.

Ray and Optuna are imported inside functions; ``explorer.runner.commands`` is cheap to import.
"""

from explorer.runner.driver import RunResult, run_study

__all__ = ["RunResult", "run_study"]
