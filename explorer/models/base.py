"""What a neural-mass model is: a parameter table, state names and a numba right-hand side.

A model is data plus one pure numba function. The generic engine in :mod:`explorer.sim`
does delays, coupling, noise, batching and monitors.

The right-hand side has the signature::

    dfun(x, i, c, p, wsum_i, dx, B)   # numba @njit, returns nothing

- ``x``:  state, float array [state, region, batch];
- ``i``:  the region to evaluate;
- ``c``:  long-range input of region i, [coupled state, batch]: ``sum_j W_ij z_j(t - d_ij)``
  for each coupled state z (``Model.coupled_states``), *without* G (the model applies G);
- ``p``:  parameters [param, region, batch], rows in ``Model.params`` order;
- ``wsum_i``: ``sum_j W_ij`` (for diffusive coupling ``sum_j W_ij (z_j - z_i)``); how ``dfun`` may use
  it is declared by ``Model.coupling`` (:data:`COUPLINGS`), which picks the kernel's mode;
- ``dx``: output [state, batch], the time derivative in the model's time unit.

It loops over the batch itself (``for b in range(B)``) so that the batch loop is innermost and
vectorised; it must use only arithmetic and :mod:`explorer.models.vecmath` (no libm calls).
The arrays are all float64 or all float32 (``dtype="float32"``; ``wsum_i`` then is a float32 too):
write float constants as ``flt(c, like)`` (:func:`~explorer.models.vecmath.flt`), else numba
computes the expression in float64 (still correct, but at half the SIMD width).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from math import inf
from typing import Any, Callable, Literal, get_args

from explorer.errors import ModelError


@dataclass(frozen=True)
class Param:
    """One model parameter. ``low``/``high`` are the default search bounds; ``hard_*`` the physical limits.

    ``per_region``: the parameter may take one value per region (every local parameter; the global
    coupling G may not).
    """

    name: str
    default: float
    low: float
    high: float
    unit: str
    doc: str
    hard_low: float = -inf
    hard_high: float = inf
    per_region: bool = True


#: How ``dfun`` uses its long-range input (declared by each model, read by the kernel):
#: ``"linear"``: ``c`` only, never ``wsum_i`` (the kernel may pass 0 for it);
#: ``"diffusive"``: ``c`` and ``wsum_i`` only as ``c - wsum_i * z_i`` with ``z`` the coupled states of region
#: i, computed in the state's type (the kernel may fold the term into ``c`` and pass 0 for ``wsum_i``);
#: ``"general"``: ``c`` and ``wsum_i`` in any way (the kernel calls ``dfun`` region by region).
Coupling = Literal["linear", "diffusive", "general"]
COUPLINGS: tuple[str, ...] = get_args(Coupling)


@dataclass(frozen=True)
class FicSpec:
    """Feedback inhibition control, a model capability: before each simulation, per-region parameter
    ``param`` is solved so that every region's excitatory rate sits at a target (Hz) on the noise-free
    fixed point (``params.fic`` in a study config).

    param: the per-region parameter FIC sets (rww_ei: ``J_I``); a config may not also give it.
    solver: ``"module:function"`` of ``f(p, weights, target_hz)``, ``p`` the [param, region, batch] array
        and ``weights`` (N, N), returning an object with ``<param>`` [region, batch], ``converged`` [batch]
        and ``reason`` (per batch). Named rather than imported: the solver reads the model's own rows.
    """

    param: str
    solver: str

    def solve(self, p: Any, weights: Any, target_hz: float) -> Any:
        """The solver's result for parameter array ``p`` on connectome ``weights`` at ``target_hz`` (Hz)."""
        module, _, name = self.solver.partition(":")
        return getattr(importlib.import_module(module), name)(p, weights, target_hz)


@dataclass(frozen=True)
class Model:
    """A neural-mass model: parameters, states, coupling, noise, BOLD input, bounds and ``dfun``.

    Attributes beyond the shared contract:
        coupling: how ``dfun`` uses ``c`` and ``wsum_i`` (:data:`COUPLINGS`); the kernel's mode follows it,
            and the model contract tests check it against what ``dfun`` computes.
        coupled_states: every state coupled through the connectome (``coupled`` is the first).
        noise_states: states that receive additive noise ``sqrt(dt) * sigma * N(0, 1)``.
        bold_state: the state that drives the BOLD monitor (or is sampled as BOLD).
        bounds: per state (low, high); a trial leaving them (or NaN/inf) is flagged as diverged.
        clamp: per state (low, high) or None; the state is clipped after every step (TVB style).
        init: per state (low, high); initial values are uniform draws from the trial's seed,
            held constant as the delay history.
        time_unit_ms: the model's time unit in ms (1 for ms models, 1000 for models in s).
        noise_doc: the unit and convention of ``noise_sigma`` for this model.
        fic: its feedback inhibition control (:class:`FicSpec`), or None when it has none.
    """

    name: str
    doc: str
    params: tuple[Param, ...]
    states: tuple[str, ...]
    coupled: int
    dfun: Callable[..., Any] = field(repr=False, compare=False)
    coupling: Coupling
    coupled_states: tuple[int, ...] = ()
    noise_states: tuple[int, ...] = ()
    bold_state: int = 0
    bounds: tuple[tuple[float, float], ...] = ()
    clamp: tuple[tuple[float, float] | None, ...] = ()
    init: tuple[tuple[float, float], ...] = ()
    time_unit_ms: float = 1.0
    noise_doc: str = ""
    references: tuple[str, ...] = ()
    fic: FicSpec | None = None

    def __post_init__(self) -> None:
        n = len(self.states)
        if self.coupling not in COUPLINGS:
            raise ModelError(f"model {self.name!r}: coupling={self.coupling!r} is not one of "
                             f"{', '.join(map(repr, COUPLINGS))}; declare how its dfun uses c and wsum_i")
        if not self.coupled_states:
            object.__setattr__(self, "coupled_states", (self.coupled,))
        if not self.noise_states:
            object.__setattr__(self, "noise_states", tuple(range(n)))
        if not self.bounds:
            object.__setattr__(self, "bounds", tuple((-inf, inf) for _ in range(n)))
        if not self.clamp:
            object.__setattr__(self, "clamp", tuple(None for _ in range(n)))
        if not self.init:
            object.__setattr__(self, "init", tuple((0.0, 0.0) for _ in range(n)))
        names = [p.name for p in self.params]
        if "G" not in names:
            raise ValueError(f"model {self.name!r} must declare the global coupling parameter 'G'")
        if len(set(names)) != len(names):
            raise ValueError(f"model {self.name!r} declares a parameter twice")
        for attr in ("bounds", "clamp", "init"):
            if len(getattr(self, attr)) != n:
                raise ValueError(f"model {self.name!r}: {attr} needs one entry per state ({n})")

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def defaults(self) -> dict[str, float]:
        """Default value of every parameter."""
        return {p.name: p.default for p in self.params}

    def param(self, name: str) -> Param:
        """The parameter called ``name``; ModelError listing the valid names otherwise."""
        for p in self.params:
            if p.name == name:
                return p
        raise ModelError(
            f"model {self.name!r} has no parameter {name!r}; valid names: {', '.join(self.param_names)}"
        )

    def index(self, name: str) -> int:
        """Row of parameter ``name`` in the [param, region, batch] array."""
        return self.param_names.index(self.param(name).name)
