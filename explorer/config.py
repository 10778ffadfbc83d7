"""Study configs: the one place where YAML becomes objects.

A study config (``experiments/*.yaml``) is a :class:`StudyConfig`. Every model forbids unknown
keys, and every error is a :class:`~explorer.errors.ConfigError` that names the field at fault::

    cfg = load_config("experiments/quickstart.yaml")
    cfg.study_dir            # Path("studies/quickstart")

The study folder (frozen config, provenance, store locations) is :mod:`explorer.study`.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Annotated, Any, Literal, get_type_hints

import yaml
from pydantic import (BaseModel, ConfigDict, Field, ValidationError, WrapValidator, create_model, field_validator,
                      model_validator)

from explorer.cohort import maps as M
from explorer.cohort.types import CohortOptions
from explorer.ec.options import EC_MODELS, EcOptions
from explorer.errors import ConfigError, ExplorerError, OptionError
from explorer.params.names import DATA_VALUES, NOISE, default_bounds, free_param, split_name
from explorer.params.samplers import DEFAULT_SAMPLER, SAMPLERS
from explorer.scoring.objectives import SCORES, parse_objective
from explorer.scoring.options import FeatureOptions
from explorer.sim.settings import RunSettings

DEFAULT_TRIALS = 50


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _checked(cls: type, section: str) -> Any:
    """``cls`` (an option dataclass) as a pydantic field type whose OptionError names ``section.<field>``.

    Pydantic checks the dataclass's field types and unknown keys; constructing it runs its own
    check (``problems()``), whose OptionError becomes a field error here.
    """

    def wrap(value: Any, handler: Any) -> Any:
        try:
            return handler(value)
        except OptionError as exc:
            raise _FieldError.of(section, exc.problems) from None

    return Annotated[cls, WrapValidator(wrap)]


_Simulation = _checked(RunSettings, "simulation")
_Features = _checked(FeatureOptions, "cohort.features")
_Ec = _checked(EcOptions, "ec")


class _CohortSource(_Strict):
    source: str
    subjects: list[str] | None = None

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("cohort source is empty: give 'demo', a folder or a manifest .csv/.tsv")
        return v

    @model_validator(mode="after")
    def _check_options(self) -> "_CohortSource":
        try:
            self.options
        except OptionError as exc:
            raise _FieldError.of("cohort", exc.problems) from None
        return self

    @property
    def options(self) -> CohortOptions:
        """These options as the loader takes them (a new CohortOptions; ``features`` is shared)."""
        return CohortOptions(**{f.name: getattr(self, f.name) for f in fields(CohortOptions)})


def _option_fields(cls: type, **annotations: Any) -> dict[str, Any]:
    """pydantic field definitions (type, default) of every field of dataclass ``cls``."""
    hints = get_type_hints(cls)
    out = {}
    for f in fields(cls):
        default = Field(default_factory=f.default_factory) if f.default is MISSING else f.default
        out[f.name] = (annotations.get(f.name, hints[f.name]), default)
    return out


#: a study config's ``cohort``: source, subjects, then every CohortOptions field (features: FeatureOptions)
CohortConfig = create_model(
    "CohortConfig", __base__=_CohortSource, __module__=__name__,
    __doc__="Where the subjects come from (source, subjects) and how they are loaded: the fields of "
            ":class:`~explorer.cohort.CohortOptions` (``.options``); ``features`` is a FeatureOptions.",
    **_option_fields(CohortOptions, features=_Features),
)


class Bounds(_Strict):
    """Search bounds of one free parameter; missing bounds default to the model's Param.low/high."""

    low: float | None = None
    high: float | None = None
    log: bool = False


class ParamsConfig(_Strict):
    """What is searched, what is fixed, and how per-region parameters vary across regions.

    free: searched parameters. A plain model parameter is one global value; a parameter named in
        ``maps`` is searched as ``P.base`` and ``P.scale`` (``p_i = base + scale * m_i``, m in [0, 1]);
        one named in ``groups`` as ``P[<group>]``, one value per group.
    fixed: numbers (lists for per-region values) or a data-derived token (``bold_peak``).
    maps: per-region parameter -> ``sc_strength``, ``fc_gradient`` (the subject's own data) or a
        label,value table file (one per cohort, e.g. T1w/T2w myelin).
    groups: per-region parameter -> ``fc_networks<k>`` (k networks clustered from the cohort-mean
        empirical FC) or a label,group table file.
    fic: feedback inhibition control, for a model that declares it (:attr:`Model.fic
        <explorer.models.base.Model.fic>`; rww_ei: J_I): set that parameter in each region before every
        simulation so that its excitatory rate sits at ``fic_target_hz`` on the noise-free fixed point
        (Deco et al. 2014).
    """

    free: dict[str, Bounds] = Field(default_factory=dict)
    fixed: dict[str, float | list[float] | str] = Field(default_factory=dict)
    maps: dict[str, str] = Field(default_factory=dict)
    groups: dict[str, str] = Field(default_factory=dict)
    fic: bool = False
    fic_target_hz: float = Field(3.0, gt=0, le=50)

    @field_validator("free", mode="before")
    @classmethod
    def _none_to_bounds(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: ({} if b is None else b) for k, b in v.items()}
        return v


def check_tr(cfg: "StudyConfig", tr_s: float, where: str) -> None:
    """ConfigError when the run settings do not fit the BOLD TR of ``where`` (``simulation.bold_tr_s``
    or the subject's): :meth:`RunSettings.problems <explorer.sim.settings.RunSettings.problems>` with
    that TR, e.g. dt_ms not dividing it (the message names dt values that do)."""
    sim = cfg.simulation
    what = None if sim.bold_tr_s is not None else f"the TR of {where}"
    found = sim.problems(tr_s, tr_what=what)
    if found:
        err = _FieldError.of("simulation", found)
        raise ConfigError(f"field '{err.field}': {err.message}")


class SamplerConfig(_Strict):
    """The Optuna sampler: ``name`` is one of :data:`~explorer.params.samplers.SAMPLERS`, ``options`` its
    constructor keywords (those its spec lists), ``grid`` the grid sampler's values per free parameter.

    deterministic: the same config, cohort and package versions give the same trials (parameters,
        seeds, states, scores) on any number of actors: each subject asks ``batch`` trials at a time (one
        actor call), waits for all of them and tells them in trial order. False (the default): asynchronous,
        every actor kept busy; the search path then depends on timing, and each trial records the order it
        was told in (user attribute ``told_order``).
    batch: deterministic mode's trials per subject per round (replaces ``ray.batch_size``/``ray.call_s``).
    """

    name: str = DEFAULT_SAMPLER
    seed: int = 0
    grid: dict[str, list[float]] | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    deterministic: bool = False
    batch: int = Field(16, ge=1)

    @property
    def mode(self) -> str:
        """``"deterministic"`` or ``"asynchronous"``: how the search asks and tells (what status and the report say)."""
        return "deterministic" if self.deterministic else "asynchronous"

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in SAMPLERS:
            raise ValueError(f"unknown sampler {v!r}; valid samplers: {', '.join(SAMPLERS)}")
        return v

    @model_validator(mode="after")
    def _options(self) -> "SamplerConfig":
        spec = SAMPLERS[self.name]
        unknown = sorted(set(self.options) - set(spec.options))
        if unknown:
            raise _FieldError("sampler.options", f"sampler {self.name!r} takes no option(s) {unknown}; its options: "
                                                 f"{list(spec.options) or 'none'}")
        return self


class StorageConfig(_Strict):
    """Storage locations; null = a default inside the study folder."""

    optuna: str | None = None
    mlflow: str | None = None
    zarr: str | None = None


class StoreConfig(_Strict):
    mode: Literal["all", "best", "none"] = "all"
    best_k: int = Field(5, ge=1)


class TrackingConfig(_Strict):
    """MLflow logging (:mod:`explorer.tracking`).

    children: which trials get an MLflow child run: ``all``, ``best_k`` (a subject's best ``best_k``
        trials, ranked as ``store: best`` ranks; a trial pushed out of them loses its run), ``none``,
        or ``auto``: ``all`` up to :data:`~explorer.tracking.modes.AUTO_ALL_MAX_TRIALS` trials in the
        study (subjects x trials), else ``best_k`` (:func:`~explorer.tracking.modes.resolve_children`).
        Every mode logs every trial as one table (``trials.json``) on its subject's parent run.
    best_k: child runs kept per subject in ``best_k`` mode.
    drain_s: seconds the driver waits, once its loop has ended, for MLflow calls still queued (spooled
        while the server is unreachable); what is not logged by then is a hook failure that
        ``explorer verify NAME --repair`` mends.
    """

    children: Literal["auto", "all", "best_k", "none"] = "auto"
    best_k: int = Field(10, ge=1)
    drain_s: float = Field(60.0, gt=0)


class RayConfig(_Strict):
    """Where and how trials run.

    actors: simulator actors (default one per CPU of the machine or cluster).
    batch_size: the most trials one actor call simulates together (upper bound; default 64).
    call_s: target actor seconds per call: the scheduler measures the per-trial cost and sizes each
        call to about this long, never below min(batch_size, 16) trials (the simulator's vectorised
        batch) nor above batch_size, so that short trials do not leave the actors waiting on the driver.
    max_retries: times a batch is sent again after its actor died.
    """

    address: str | None = None
    actors: int | None = Field(None, ge=1)
    batch_size: int = Field(64, ge=1)
    call_s: float = Field(2.0, gt=0)
    max_retries: int = Field(2, ge=0)


class LeaseConfig(_Strict):
    """Per-subject leases in the Optuna storage, so that several drivers can share one study.

    heartbeat_s: seconds between a driver's heartbeats.
    stale_s: a lease whose driver has not beaten for this long is stale and may be taken over (the
        drivers' clocks must agree to well within it). A driver on the same host whose process is gone
        is stale at once.
    window: subjects a driver holds at a time (None: max(8, 2 x actors)); it takes the next free one
        as each finishes, so a second driver on the same config finds subjects to run.
    """

    heartbeat_s: float = Field(10.0, gt=0)
    stale_s: float = Field(60.0, gt=0)
    window: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _stale_after_beats(self) -> "LeaseConfig":
        if self.stale_s < 2 * self.heartbeat_s:
            raise ValueError(f"leases.stale_s ({self.stale_s:g} s) must be at least twice leases.heartbeat_s "
                             f"({self.heartbeat_s:g} s), or a live driver would look stale between two beats")
        return self


class StudyConfig(_Strict):
    """One study: a model fitted to every subject of a cohort."""

    name: str
    studies_dir: str = "studies"
    cohort: CohortConfig
    model: str
    params: ParamsConfig = ParamsConfig()
    simulation: _Simulation = RunSettings()     # a RunSettings: the run settings' one definition
    objective: str | list[str] = "fc_r"
    sampler: SamplerConfig = SamplerConfig()
    trials: int | None = Field(None, ge=1)
    storage: StorageConfig = StorageConfig()
    store: StoreConfig = StoreConfig()
    tracking: TrackingConfig = TrackingConfig()
    ray: RayConfig = RayConfig()
    leases: LeaseConfig = LeaseConfig()
    ec: _Ec | None = None                       # an EcOptions: the EC stage after the search (None: none)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v or any(c in v for c in "/\\ :\t\n") or v.startswith("."):
            raise ValueError(f"study name {v!r} must be a plain folder name (no '/', ':' or spaces)")
        return v

    @field_validator("objective")
    @classmethod
    def _objective(cls, v: str | list[str]) -> str | list[str]:
        names = [v] if isinstance(v, str) else list(v)
        if not names:
            raise ValueError(f"objective is empty; choose from {sorted(SCORES)} or a combination "
                             "such as 'fc_r + fc_r_residual - fcd_ks'")
        for n in names:
            try:
                parse_objective(n)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        if len(set(names)) != len(names):
            raise ValueError(f"objective lists {names} with repeats")
        return v

    @model_validator(mode="after")
    def _check_against_model(self) -> "StudyConfig":
        _check_params(self)
        _check_sampler(self)
        _check_ec(self)
        return self

    # -- derived -------------------------------------------------------------------------
    @property
    def objectives(self) -> list[str]:
        """Objective names, in the order Optuna receives their values."""
        return [self.objective] if isinstance(self.objective, str) else list(self.objective)

    @property
    def directions(self) -> list[str]:
        """Optuna directions: a score's own, "maximize" for a combination."""
        return ["maximize" if SCORES.get(o, True) else "minimize" for o in self.objectives]

    @property
    def study_dir(self) -> Path:
        return Path(self.studies_dir) / self.name

    @property
    def n_trials(self) -> int:
        """Trials per subject: ``trials``, or the number of grid points for the grid sampler."""
        if SAMPLERS[self.sampler.name].grid:
            return self.trials if self.trials is not None else grid_size(self)
        return self.trials if self.trials is not None else DEFAULT_TRIALS

    def free_bounds(self) -> dict[str, tuple[float, float, bool]]:
        """Free parameter -> (low, high, log), defaults filled in (:func:`explorer.params.names.default_bounds`)."""
        from explorer.models import get_model  # numba models: kept out of `explorer --help`

        model = get_model(self.model)
        out = {}
        for name, b in self.params.free.items():
            p = free_param(model, name)
            low, high = default_bounds(name, p.low, p.high)
            out[name] = (low if b.low is None else b.low, high if b.high is None else b.high, b.log)
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def _check_ec(cfg: StudyConfig) -> None:
    """The EC stage linearises a model it knows, and needs G (its coupling scale) from the search or config."""
    if cfg.ec is None:
        return
    if cfg.model not in EC_MODELS:
        raise _FieldError("ec", f"the EC stage fits the linearised {' or '.join(EC_MODELS)} model, not "
                                f"{cfg.model!r}: set model: hopf, or remove the ec section")


def grid_size(cfg: StudyConfig) -> int:
    n = 1
    for values in (cfg.sampler.grid or {}).values():
        n *= len(values)
    return n


def _model_or_error(name: str):
    from explorer.models import MODELS, get_model  # numba models: kept out of `explorer --help`

    try:
        return get_model(name)
    except ExplorerError:
        raise _FieldError("model", f"unknown model {name!r}; valid models: {sorted(MODELS)}") from None


def _check_params(cfg: StudyConfig) -> None:
    model = _model_or_error(cfg.model)
    valid = list(model.param_names)
    P = cfg.params
    for section in ("fixed", "maps", "groups"):
        for pname in getattr(P, section):
            if pname not in valid:
                raise _FieldError(f"params.{section}.{pname}",
                                  f"unknown parameter {pname!r} of model {cfg.model!r}; valid: {valid}")
    _check_regional(cfg, model)
    groups = {pname: M.source_group_names(src) for pname, src in P.groups.items()}   # each file read once
    plain = set()
    for name in P.free:
        field = f"params.free.{name}"
        try:
            pname, kind, group = split_name(name)
        except ValueError as exc:
            raise _FieldError(field, str(exc)) from None
        if pname == NOISE:
            b = P.free[name]
            if kind != "value":
                raise _FieldError(field, f"{NOISE} is one number per trial; search it as '{NOISE}'")
            if b.low is None or b.high is None:
                raise _FieldError(field, f"give low and high for the noise amplitude ({model.noise_doc})")
            continue
        if pname not in valid:
            raise _FieldError(field, f"unknown parameter {pname!r} of model {cfg.model!r}; valid: "
                                     f"{valid + [NOISE]}")
        regional = "maps" if pname in P.maps else "groups" if pname in P.groups else None
        if kind == "value":
            plain.add(pname)
            if regional:
                how = f"{pname}.base and {pname}.scale" if regional == "maps" else f"{pname}[<group>]"
                raise _FieldError(field, f"{pname} varies across regions (params.{regional}.{pname}): "
                                         f"search {how} instead")
        elif kind in ("base", "scale") and regional != "maps":
            raise _FieldError(field, f"{name} needs a map: add params.maps.{pname} (sc_strength, fc_gradient "
                                     "or a label,value file)")
        elif kind == "group":
            if regional != "groups":
                raise _FieldError(field, f"{name} needs groups: add params.groups.{pname} (fc_networks<k> or a "
                                         "label,group file)")
            names = groups[pname]
            if names is not None and group not in names:
                raise _FieldError(field, f"unknown group {group!r} of params.groups.{pname} "
                                         f"({P.groups[pname]}); its groups: {names}")
    for pname in P.maps:
        missing = [n for n in (f"{pname}.base", f"{pname}.scale") if n not in P.free]
        if missing:
            raise _FieldError(f"params.maps.{pname}", f"a mapped parameter is searched as {pname}.base and "
                                                      f"{pname}.scale; add {missing} to params.free")
    for pname, names in groups.items():
        missing = [f"{pname}[{g}]" for g in names or [] if f"{pname}[{g}]" not in P.free]
        if missing:
            raise _FieldError(f"params.groups.{pname}", f"every group needs a free value; add {missing[:8]} "
                                                        "to params.free")
    overlap = sorted(plain & set(P.fixed))
    if overlap:
        raise _FieldError("params", f"{overlap} are both free and fixed; keep each in one of params.free/params.fixed")
    if not P.free:
        raise _FieldError("params.free", "no free parameters: give at least one parameter to search")
    if P.fic:
        if model.fic is None:
            raise _FieldError("params.fic", f"model {cfg.model!r} declares no feedback inhibition control "
                                            "(its Model.fic is None): set params.fic to false")
        fic = model.fic.param
        used = [f"params.{sec}" for sec in ("fixed", "maps", "groups") if fic in getattr(P, sec)]
        used += ["params.free"] if any(split_name(n)[0] == fic for n in P.free) else []
        if used:
            raise _FieldError("params.fic", f"FIC sets {fic} in every region, but {fic} is also in {used}: "
                                            "remove it there")
    for name, b in P.free.items():
        pname, kind, _ = split_name(name)
        p = free_param(model, name)
        dlow, dhigh = default_bounds(name, p.low, p.high)
        low = dlow if b.low is None else b.low
        high = dhigh if b.high is None else b.high
        field = f"params.free.{name}"
        if not (math.isfinite(low) and math.isfinite(high)):
            raise _FieldError(field, f"bounds must be finite, got [{low}, {high}]")
        if not low < high:
            raise _FieldError(field, f"inverted bounds: low {low} must be below high {high}")
        if kind != "scale" and (low < p.hard_low or high > p.hard_high):
            raise _FieldError(field, f"bounds [{low}, {high}] leave the hard limits "
                                     f"[{p.hard_low}, {p.hard_high}] of {pname} ({p.unit})")
        if b.log and low <= 0:
            raise _FieldError(field, f"log scale needs low > 0, got {low}")
    for pname, value in P.fixed.items():
        p = model.param(pname)
        if isinstance(value, str):
            if value not in DATA_VALUES:
                raise _FieldError(f"params.fixed.{pname}", f"{value!r} is neither a number nor one of the "
                                                            f"data-derived values {sorted(DATA_VALUES)}")
            if not p.per_region or p.unit != "Hz":
                raise _FieldError(f"params.fixed.{pname}", f"{value!r} gives per-region frequencies in Hz, "
                                                            f"but {pname} is {p.unit} and per_region={p.per_region}")
            continue
        values = value if isinstance(value, list) else [value]
        if isinstance(value, list) and not p.per_region:
            raise _FieldError(f"params.fixed.{pname}", f"{pname} is a scalar parameter; give one number")
        for x in values:
            if not (p.hard_low <= x <= p.hard_high) or not math.isfinite(x):
                raise _FieldError(f"params.fixed.{pname}",
                                  f"value {x} leaves the hard limits [{p.hard_low}, {p.hard_high}] ({p.unit})")


def _check_regional(cfg: StudyConfig, model) -> None:
    """params.maps / params.groups: per-region parameters, known sources, readable files."""
    P = cfg.params
    for pname in sorted(set(P.maps) & set(P.groups)):
        raise _FieldError(f"params.groups.{pname}", f"{pname} has both a map and groups; choose one")
    for section, tokens in (("maps", M.MAP_SOURCES), ("groups", M.GROUP_SOURCES)):
        for pname, src in getattr(P, section).items():
            field = f"params.{section}.{pname}"
            if not model.param(pname).per_region:
                raise _FieldError(field, f"{pname} is one global value in model {cfg.model!r}; only per-region "
                                         "parameters can vary across regions")
            if pname in P.fixed:
                raise _FieldError(field, f"{pname} is also in params.fixed; keep it in one place")
            token = src in tokens if section == "maps" else M.parse_group_source(src) is not None
            if token:
                continue
            if not Path(src).is_file():
                raise _FieldError(field, f"{src!r} is neither one of {sorted(tokens)} nor an existing file "
                                         "(a CSV/TSV table with a 'label' column and a "
                                         f"'{'value' if section == 'maps' else 'group'}' column)")
            try:
                M.table_groups(src) if section == "groups" else M.table_values(src)
            except ConfigError as exc:
                raise _FieldError(field, str(exc)) from None


def _check_sampler(cfg: StudyConfig) -> None:
    spec = SAMPLERS[cfg.sampler.name]
    if len(cfg.objectives) > 1 and not spec.multi_objective:
        raise _FieldError("sampler.name", f"{cfg.sampler.name} is single-objective; use tpe for objective "
                                          f"{cfg.objectives}")
    grid = cfg.sampler.grid
    if not spec.grid:
        if grid is not None:
            raise _FieldError("sampler.grid", f"grid values are only used by sampler 'grid', not {cfg.sampler.name!r}")
        return
    if not grid:
        raise _FieldError("sampler.grid", f"sampler 'grid' needs values for every free parameter: "
                                          f"{sorted(cfg.params.free)}")
    missing = sorted(set(cfg.params.free) - set(grid))
    extra = sorted(set(grid) - set(cfg.params.free))
    if missing:
        raise _FieldError("sampler.grid", f"grid values missing for free parameters {missing}")
    if extra:
        raise _FieldError("sampler.grid", f"grid gives {extra}, which are not free parameters "
                                          f"{sorted(cfg.params.free)}")
    bounds = cfg.free_bounds()
    for pname, values in grid.items():
        if not values:
            raise _FieldError(f"sampler.grid.{pname}", "empty list of grid values")
        if len(set(values)) != len(values):
            raise _FieldError(f"sampler.grid.{pname}", f"repeated grid values {values}")
        low, high, _ = bounds[pname]
        bad = [v for v in values if not low <= v <= high]
        if bad:
            raise _FieldError(f"sampler.grid.{pname}", f"values {bad} lie outside the bounds [{low}, {high}]")
    if cfg.trials is not None and cfg.trials > grid_size(cfg):
        raise _FieldError("trials", f"{cfg.trials} trials exceed the {grid_size(cfg)} grid points; "
                                    "drop `trials` to visit the whole grid once")


class _FieldError(ValueError):
    """A validation error that knows its dotted field path."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message

    @classmethod
    def of(cls, section: str, problems: list[tuple[str, str]]) -> "_FieldError":
        """The first of ``(field, message)`` problems under ``section``, the others appended to its message."""
        (first, msg), rest = problems[0], problems[1:]
        msg += "".join(f"; field '{section}.{f}': {m}" for f, m in rest)
        return cls(f"{section}.{first}", msg)


def _format_validation(exc: ValidationError, where: str) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
        ctx_err = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_err, _FieldError):
            loc = ctx_err.field
            msg = ctx_err.message
        elif err["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
            msg = "unknown key (check spelling; see the config reference in docs/config.md)"
        elif err["type"] == "missing":
            msg = "required field is missing"
        else:
            msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"field '{loc}': {msg}")
    return f"invalid study config {where}: " + "; ".join(lines)


def parse_config(data: Any, where: str = "") -> StudyConfig:
    """Validate a mapping into a :class:`StudyConfig`; raises ConfigError naming the field."""
    if not isinstance(data, dict):
        raise ConfigError(f"study config {where} must be a mapping of fields, got {type(data).__name__}")
    try:
        return StudyConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation(exc, where)) from None


def load_config(path: str | Path, **overrides: Any) -> StudyConfig:
    """Read and validate a YAML study config.

    A relative cohort path is resolved against the current folder, then against the config's
    folder; it is stored absolute so that ``explorer resume`` works from anywhere.
    ``overrides`` are dotted field paths (``{"trials": 10, "ray.actors": 2}``).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"study config {path} not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"study config {path} is not valid YAML: {exc}") from None
    if isinstance(data, dict):
        data = _apply_overrides(data, overrides)
        cohort = data.get("cohort")
        if isinstance(cohort, dict) and isinstance(cohort.get("source"), str):
            cohort["source"] = _resolve_source(cohort["source"], path.parent)
        params = data.get("params")
        for section in ("maps", "groups"):
            table = params.get(section) if isinstance(params, dict) else None
            if isinstance(table, dict):
                for k, v in table.items():
                    if isinstance(v, str) and ("/" in v or "." in v):
                        table[k] = _resolve_source(v, path.parent)
    return parse_config(data, str(path))


def _apply_overrides(data: dict, overrides: dict[str, Any]) -> dict:
    for dotted, value in overrides.items():
        if value is None:
            continue
        node = data
        keys = dotted.split(".")
        for k in keys[:-1]:
            node = node.setdefault(k, {}) if isinstance(node.get(k), dict) or k not in node else node[k]
        node[keys[-1]] = value
    return data


def _resolve_source(source: str, config_dir: Path) -> str:
    if source == "demo" or "://" in source:
        return source
    p = Path(source).expanduser()
    if p.is_absolute():
        return str(p)
    for base in (Path.cwd(), config_dir):
        if (base / p).exists():
            return str((base / p).resolve())
    return source  # the cohort loader reports it as missing, naming the path
