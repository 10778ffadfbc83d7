"""The one small error hierarchy of explorer.

Every message names the subject, the file or the config field at fault, and says what to do.
"""


class ExplorerError(Exception):
    """Base class of every error explorer raises on purpose."""


class ModelError(ExplorerError):
    """Unknown model, unknown parameter, or a value outside its hard physical limits."""


class SimulationError(ExplorerError):
    """Invalid run settings (dt, duration, TR, shapes of weights/lengths)."""


class CohortError(ExplorerError):
    """A subject's data is missing, malformed or inconsistent."""


class ConfigError(ExplorerError):
    """A study config field is invalid."""


class OptionError(ConfigError):
    """Invalid fields of one option set (RunSettings, FeatureOptions, CohortOptions).

    ``section``: the option set's name in a study config ("simulation", "features", "cohort");
    ``problems``: ``[(field, message)]``, so that the study config can name each field's full path.
    """

    def __init__(self, section: str, problems: list[tuple[str, str]]):
        self.section = section
        self.problems = [(str(f), str(m)) for f, m in problems]
        super().__init__("; ".join(f"{section}.{f}: {m}" for f, m in self.problems))

    def __reduce__(self):  # picklable across processes (Ray) despite the two-argument __init__
        return (type(self), (self.section, self.problems))


class StudyError(ExplorerError):
    """A study cannot be run, resumed or extended as asked."""


class StoreError(ExplorerError):
    """The signals store is missing, locked or inconsistent."""


class TrackingError(ExplorerError):
    """The MLflow tracking store cannot be used as asked."""


class AccessError(ExplorerError):
    """A server refused explorer's credentials (MLflow's 401/403, PostgreSQL's password check); the
    message names the environment variable to set."""
