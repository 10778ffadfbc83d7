"""simulate(): validate a batch of parameter sets, run the model's kernel, return an xarray Dataset.

:func:`simulate_arrays` is the same without xarray (the actors' hot path); :func:`to_dataset` wraps it.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from explorer.errors import OptionError, SimulationError
from explorer.models import Model, get_model
from explorer.models.arrays import param_array
from explorer.models.vecmath import seed_key
from explorer.sim.bold import init_state
from explorer.sim.connectome import Connectome, build_connectome
from explorer.sim.kernel import BOLD_BALLOON, BOLD_OFF, BOLD_SAMPLE, get_kernel, model_tile_width
from explorer.sim.settings import DTYPES, RunSettings

#: target length of a Balloon-Windkessel sub-step (ms); the largest divisor of the TR below it is used
BOLD_SUBSTEP_MS = 1.0
_DTYPES = {name: np.dtype(name).type for name in DTYPES}
#: simulate()'s keyword defaults: the one set, RunSettings'
_D = RunSettings()
_COMPILED: set[tuple[str, str]] = set()


def _steps(value_ms: float, dt_ms: float, what: str) -> int:
    """``value_ms / dt_ms`` as an exact integer number of steps, else SimulationError."""
    if not (isinstance(value_ms, (int, float, np.integer, np.floating)) and math.isfinite(value_ms)):
        raise SimulationError(f"{what} must be a finite number, got {value_ms!r}")
    n = value_ms / dt_ms
    r = round(n)
    if abs(n - r) > 1e-6 * max(1.0, abs(n)):
        raise SimulationError(f"{what} = {value_ms} ms is not a multiple of dt_ms = {dt_ms}; "
                              f"choose values that are whole multiples of dt")
    return int(r)


def _is_default(name: str, value: Any) -> bool:
    """Whether a simulate() run-setting keyword was left at (or set to) RunSettings' default."""
    default = getattr(_D, name)
    return isinstance(value, (int, float, str, np.integer, np.floating)) and value == default


def _noise_array(noise_sigma: Any, B: int) -> np.ndarray | None:
    """noise_sigma as a float array (scalar or one per trial), or None when it is not numeric."""
    if isinstance(noise_sigma, (str, bytes)):
        return None
    try:
        sigma = np.asarray(noise_sigma, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if sigma.ndim > 1 or (sigma.ndim == 1 and sigma.shape[0] != B):
        raise SimulationError(f"noise_sigma has shape {sigma.shape} but there are {B} parameter sets; "
                              "give one per trial or a single number")
    return sigma


def _check_run(run: Mapping[str, Any], bold_tr_s: Any, sigma: np.ndarray | None) -> None:
    """SimulationError naming each bad argument: the run settings' one check, :meth:`RunSettings.problems`."""
    noise: Any = run["noise_sigma"]
    if sigma is not None:  # per-trial values: check the first bad one (or any, when all are fine)
        flat = sigma.reshape(-1)
        bad = ~np.isfinite(flat) | (flat < 0)
        noise = float(flat[int(np.argmax(bad))]) if flat.size else 0.0
    try:
        RunSettings(**{**run, "noise_sigma": noise, "bold_tr_s": bold_tr_s})
    except OptionError as exc:
        raise SimulationError("; ".join(f"{f}: {m}" for f, m in exc.problems)) from None


def _seeds(seed: int | Sequence[int], B: int) -> list[int]:
    if isinstance(seed, (int, np.integer)):
        return [int(seed) + b for b in range(B)]
    seeds = [int(s) for s in seed]
    if len(seeds) != B:
        raise SimulationError(f"seed has {len(seeds)} entries but there are {B} parameter sets; "
                              f"give one seed per trial or a single int")
    return seeds


def initial_state(model: Model, n: int, seeds: Sequence[int]) -> np.ndarray:
    """Initial state [state, region, batch]: uniform in the model's init ranges, from each trial's seed."""
    ns = len(model.states)
    x0 = np.empty((ns, n, len(seeds)))
    lo = np.array([r[0] for r in model.init])[:, None]
    hi = np.array([r[1] for r in model.init])[:, None]
    for b, s in enumerate(seeds):
        u = np.random.default_rng([int(s) & 0xFFFFFFFFFFFFFFFF, 0x1A17]).random((ns, n))
        x0[:, :, b] = lo + (hi - lo) * u
    return x0


def run_batch(model: Model, conn: Connectome, p: np.ndarray, x0: np.ndarray, seeds: Sequence[int], *,
              n_steps: int, dt_ms: float, noise_sigma: float | np.ndarray = 0.0, n_skip: int = 0,
              tavg_n: int = 0, bold_mode: int = BOLD_OFF, bold_tr_n: int = 0, bold_sub_n: int = 1,
              heun: bool = False, dtype=np.float64, history: str = "constant",
              tile: int | None = None) -> dict[str, Any]:
    """Run the kernel on prepared inputs (the engine behind :func:`simulate`).

    ``history``: "constant" (the initial state fills the delay buffer) or "zero".
    ``tile``: trials per tile; the batch runs tile after tile, each with its own time loop and a
    delay buffer of ``tile`` trials (:func:`~explorer.sim.kernel.model_tile_width`, the default, sizes
    it for the caches); the last tile may be smaller. 0 runs the whole batch at once.
    Trials are independent, so any tiling gives the same bits.
    ``dtype``: the kernel's float type: the state, parameters, equations, noise, delay buffer and
    coupling all in it; the monitors (temporal average, BOLD) are float64 either way.
    Returns the raw arrays: x (final state, in ``dtype``), tavg [Kt, state, region, batch],
    bold [Kb, region, batch], active, diverged_step, wall_s, tile.
    """
    N, B = x0.shape[1], x0.shape[2]
    cs = list(model.coupled_states)
    NS = len(model.states)
    L = conn.max_delay + 1
    width = model_tile_width(model, N, L, dtype) if tile is None else int(tile)
    if width < 0:
        raise SimulationError(f"tile must be >= 0, got {tile}")
    kernel = get_kernel(model)
    fty = np.dtype(dtype).type
    x = np.array(x0, dtype=fty, order="C")
    p = np.ascontiguousarray(p, dtype=fty)
    amp = np.ascontiguousarray((np.broadcast_to(np.asarray(noise_sigma, dtype=np.float64), (B,))
                                * math.sqrt(dt_ms / model.time_unit_ms)).astype(fty))
    keys = np.array([seed_key(s) for s in seeds], dtype=np.uint64)
    lo = np.array([b[0] for b in model.bounds], dtype=fty)
    hi = np.array([b[1] for b in model.bounds], dtype=fty)
    clo = np.array([-np.inf if c is None else c[0] for c in model.clamp], dtype=fty)
    chi = np.array([np.inf if c is None else c[1] for c in model.clamp], dtype=fty)
    wgt = conn.weight.astype(fty)
    wsum = conn.wsum.astype(fty)
    active = np.ones(B, dtype=np.bool_)
    div_step = np.full(B, -1, dtype=np.int64)
    n_rec = n_steps - n_skip
    kt = n_rec // tavg_n if tavg_n > 0 else 0
    kb = n_rec // bold_tr_n if bold_mode != BOLD_OFF else 0
    tavg = np.zeros((kt, NS, N, B))
    bold = np.zeros((kb, N, B))
    W = width if width > 0 else B
    buf = _aligned_zeros((L, N, len(cs), W), dtype)  # one tile's delay buffer, reused tile after tile
    t0 = time.perf_counter()
    for b0 in range(0, B, W):
        b1 = min(b0 + W, B)
        nb = b1 - b0
        sel = slice(b0, b1)
        if nb == B:  # one tile: the kernel writes the outputs in place
            xt, tt, bt, act, dst = x, tavg, bold, active, div_step
        else:
            xt = np.ascontiguousarray(x[:, :, sel])
            tt = np.zeros((kt, NS, N, nb))
            bt = np.zeros((kb, N, nb))
            act = np.ones(nb, dtype=np.bool_)
            dst = np.full(nb, -1, dtype=np.int64)
        tb = buf if nb == W else buf.reshape(-1)[:L * N * len(cs) * nb].reshape(L, N, len(cs), nb)
        if history == "constant":
            tb[:] = xt[cs].transpose(1, 0, 2)[None]
        else:
            tb[:] = 0.0
        got_t, got_b = kernel(xt, tb, np.ascontiguousarray(p[:, :, sel]), conn.rowptr, conn.col, wgt, conn.delay,
                              wsum, np.ascontiguousarray(amp[sel]), np.ascontiguousarray(keys[sel]),
                              int(n_steps), int(n_skip), fty(dt_ms / model.time_unit_ms), bool(heun),
                              lo, hi, clo, chi, act, dst, int(tavg_n), tt, int(bold_mode), int(bold_sub_n),
                              int(max(bold_tr_n, 1)), init_state(N, nb), float(bold_sub_n * dt_ms / 1000.0), bt)
        assert got_t == kt and got_b == kb
        if nb != B:
            x[:, :, sel] = xt
            tavg[..., sel] = tt
            bold[..., sel] = bt
            active[sel] = act
            div_step[sel] = dst
    wall = time.perf_counter() - t0
    return dict(x=x, tavg=tavg, bold=bold, active=active, diverged_step=div_step, wall_s=wall, tile=width)


def _aligned_zeros(shape: tuple[int, ...], dtype, align: int = 64) -> np.ndarray:
    """A C-contiguous zero array starting on an ``align``-byte boundary.

    numpy's large allocations start 16 bytes into a page, so without this every 64-byte vector
    load from the delay buffer straddles two cache lines (measured: ~30% of the hopf kernel).
    """
    dt = np.dtype(dtype)
    n = int(np.prod(shape))
    raw = np.zeros(n * dt.itemsize + align, dtype=np.uint8)
    off = (-raw.ctypes.data) % align
    return raw[off:off + n * dt.itemsize].view(dt).reshape(shape)


def _bold_substep(n_tr: int, n_skip: int, dt_ms: float) -> int:
    g = math.gcd(n_tr, n_skip) if n_skip > 0 else n_tr
    best = 1
    for d in range(1, g + 1):
        if g % d == 0 and d * dt_ms <= BOLD_SUBSTEP_MS + 1e-9:
            best = d
    return best


def warmup(model: str | Model, dtype: str = "float64") -> float:
    """JIT-compile the model's kernel for ``dtype`` (all code paths); returns the compile seconds."""
    m = get_model(model)
    if dtype not in _DTYPES:
        raise SimulationError(f"dtype: must be one of {list(DTYPES)}, got {dtype!r}")
    t0 = time.perf_counter()
    conn = build_connectome(np.array([[0.0, 1.0], [1.0, 0.0]]), np.ones((2, 2)), 1.0, 1.0)
    p = param_array(m, [{}], 2)
    x0 = initial_state(m, 2, [0])
    run_batch(m, conn, p, x0, [0], n_steps=4, dt_ms=1.0, noise_sigma=0.001, tavg_n=2,
              bold_mode=BOLD_BALLOON, bold_tr_n=2, bold_sub_n=1, dtype=_DTYPES[dtype])
    _COMPILED.add((m.name, dtype))
    return time.perf_counter() - t0


@dataclass
class SimResult:
    """A simulated batch as plain arrays (:func:`simulate_arrays`); :func:`to_dataset` wraps it in xarray.

    bold: (trial, time, region) or None (BOLD off); tavg: (trial, tavg_time, region, state) or None;
    diverged: (trial,) bool (its rows of bold/tavg are NaN); diverged_step: (trial,) int, -1 = fine;
    noise_sigma, seeds: (trial,); labels: region labels; states: the model's state names;
    attrs: the run settings and timings (as :func:`simulate`'s Dataset attrs).
    """

    bold: np.ndarray | None
    tavg: np.ndarray | None
    diverged: np.ndarray
    diverged_step: np.ndarray
    noise_sigma: np.ndarray
    seeds: np.ndarray
    labels: list[str]
    states: list[str]
    attrs: dict[str, Any]


def simulate(model: str | Model, weights, lengths,
             params: Sequence[Mapping[str, Any]] | Mapping[str, Any] | None = None, **kwargs: Any) -> xr.Dataset:
    """Simulate a batch of parameter sets of one model on one connectome.

    The run settings (duration_s, dt_ms, velocity, noise_sigma, transient_s, integrator, dtype,
    bold_monitor) default to :class:`~explorer.sim.settings.RunSettings`'s and are checked by
    :meth:`RunSettings.problems <explorer.sim.settings.RunSettings.problems>`, as a study config's are.

    Args:
        model: registered model name ("rww_ei", "rww", "hopf", "wilson_cowan") or a Model.
        weights: (N, N) weights, ``W[i, j]`` = connection from region j onto region i, used as given.
        lengths: (N, N) tract lengths in mm (>= 0); delays ``round(L / velocity / dt_ms)`` steps.
        params: one mapping per trial (a single mapping = one trial); missing names take defaults;
            per-region parameters may be length-N arrays.
        duration_s: recorded duration in s (after the transient).
        dt_ms: integration step in ms.
        velocity: conduction velocity in m/s (= mm/ms); ``inf`` means no delays.
        noise_sigma: additive noise amplitude, ``sqrt(dt) * sigma * N(0, 1)`` with dt in the model's
            time unit (see ``Model.noise_doc``); 0 = deterministic; one value, or one per trial.
        seed: int (trial b uses seed + b) or one seed per trial. Batch == singles, bit for bit.
        tavg_ms: temporal-average period in ms (None = off).
        bold_tr_s: BOLD sampling period in s (None = off); a multiple of dt. Default 2 s (RunSettings'
            default, None, means "the cohort's TR", which simulate() does not know).
        transient_s: simulated seconds discarded before the monitors record.
        integrator: "euler" (Euler-Maruyama) or "heun" (stochastic Heun).
        dtype: "float64" or "float32": the precision of the simulation (state, parameters, model
            equations, noise, delay buffer and coupling); the monitors (BOLD, temporal average) integrate
            in float64 either way. float32 is faster (16 SIMD lanes instead of 8); measured on the gw
            connectome (60 s of rww_ei and hopf, with and without noise) its BOLD differed from float64's
            by < 1.5e-4 of the BOLD range and its FC correlated > 0.99999 with float64's.
        bold_monitor: "balloon" (Balloon-Windkessel on the model's BOLD state) or "sample"
            (the BOLD state itself sampled every TR, as Deco 2017 does with the Hopf model).
        labels: region labels (default "0".."N-1").
        settings: a RunSettings instead of the run-setting keywords above (giving both, with a keyword
            off its default, is an error); its ``bold_tr_s``, unless None, replaces ``bold_tr_s``.
            Its ``repeats`` is not used here.

    Returns:
        xarray Dataset: ``bold`` (trial, time, region), ``tavg`` (trial, tavg_time, region, state),
        ``diverged`` (trial,) bool, ``diverged_step`` (trial,) int (-1 = fine). Times in s from the
        end of the transient, at the end of each sampling period. Diverged trials are all-NaN.
        attrs: model, dt_ms, velocity, noise_sigma, seeds, duration_s, transient_s, wall_s, compile_s, ...
    """
    return to_dataset(simulate_arrays(model, weights, lengths, params, **kwargs))


def to_dataset(r: SimResult) -> xr.Dataset:
    """A :class:`SimResult` as the xarray Dataset :func:`simulate` returns."""
    B = r.diverged.shape[0]
    data_vars: dict[str, Any] = {
        "diverged": (("trial",), r.diverged),
        "diverged_step": (("trial",), r.diverged_step),
    }
    coords: dict[str, Any] = {"trial": np.arange(B), "region": r.labels, "seed": (("trial",), r.seeds)}
    if r.bold is not None:
        data_vars["bold"] = (("trial", "time", "region"), r.bold)
        coords["time"] = (np.arange(r.bold.shape[1]) + 1) * r.attrs["bold_tr_s"]
    if r.tavg is not None:
        data_vars["tavg"] = (("trial", "tavg_time", "region", "state"), r.tavg)
        coords["tavg_time"] = (np.arange(r.tavg.shape[1]) + 1) * r.attrs["tavg_ms"] / 1000.0
        coords["state"] = r.states
    data_vars["noise_sigma"] = (("trial",), r.noise_sigma)
    return xr.Dataset(data_vars, coords=coords, attrs=dict(r.attrs))


def simulate_arrays(model: str | Model, weights, lengths,
                    params: Sequence[Mapping[str, Any]] | Mapping[str, Any] | None = None,
                    duration_s: float = _D.duration_s, dt_ms: float = _D.dt_ms, velocity: float = _D.velocity,
                    noise_sigma: float | Sequence[float] = _D.noise_sigma, seed: int | Sequence[int] = 0,
                    tavg_ms: float | None = None, bold_tr_s: float | None = 2.0, transient_s: float = _D.transient_s,
                    integrator: str = _D.integrator, dtype: str = _D.dtype, bold_monitor: str = _D.bold_monitor,
                    labels: Sequence[str] | None = None, settings: RunSettings | None = None) -> SimResult:
    """:func:`simulate`'s arrays, without xarray: the actors' hot path (same arguments, same checks)."""
    m = get_model(model)
    if params is None:
        params = [{}]
    elif isinstance(params, Mapping):
        params = [params]
    else:
        params = list(params)
    if len(params) == 0:
        raise SimulationError("params is empty; give at least one parameter set (a mapping)")
    run = dict(duration_s=duration_s, dt_ms=dt_ms, velocity=velocity, noise_sigma=noise_sigma,
               transient_s=transient_s, integrator=integrator, dtype=dtype, bold_monitor=bold_monitor)
    if settings is not None:
        clash = sorted(k for k, v in run.items() if not _is_default(k, v))
        if clash:
            raise SimulationError(f"run settings given both as settings= and as keywords {clash}; give one")
        run = {k: getattr(settings, k) for k in run}
        if settings.bold_tr_s is not None:
            bold_tr_s = settings.bold_tr_s
    sigma = _noise_array(run["noise_sigma"], len(params))
    _check_run(run, bold_tr_s, sigma)
    duration_s, dt_ms, velocity, transient_s = run["duration_s"], run["dt_ms"], run["velocity"], run["transient_s"]
    integrator, dtype, bold_monitor = run["integrator"], run["dtype"], run["bold_monitor"]
    n_rec = _steps(duration_s * 1000.0, dt_ms, "duration_s")
    n_skip = _steps(transient_s * 1000.0, dt_ms, "transient_s")
    tavg_n = 0
    if tavg_ms is not None:
        if not (tavg_ms > 0):
            raise SimulationError(f"tavg_ms must be > 0 ms or None, got {tavg_ms!r}")
        tavg_n = _steps(tavg_ms, dt_ms, "tavg_ms")
        if tavg_n > n_rec:
            raise SimulationError(f"tavg_ms = {tavg_ms} is longer than duration_s = {duration_s}")
    bold_mode, tr_n, sub_n = BOLD_OFF, 0, 1
    if bold_tr_s is not None:
        tr_n = _steps(bold_tr_s * 1000.0, dt_ms, "bold_tr_s")
        bold_mode = BOLD_BALLOON if bold_monitor == "balloon" else BOLD_SAMPLE
        if bold_mode == BOLD_BALLOON:
            sub_n = _bold_substep(tr_n, n_skip, dt_ms)

    conn = build_connectome(weights, lengths, float(velocity), float(dt_ms))
    N = conn.n
    if labels is None:
        labels = [str(i) for i in range(N)]
    labels = [str(lb) for lb in labels]
    if len(labels) != N:
        raise SimulationError(f"{len(labels)} labels for {N} regions")
    B = len(params)
    p = param_array(m, params, N)
    seeds = _seeds(seed, B)
    x0 = initial_state(m, N, seeds)

    compile_s = 0.0
    if (m.name, dtype) not in _COMPILED:
        compile_s = warmup(m, dtype)
    out = run_batch(m, conn, p, x0, seeds, n_steps=n_rec + n_skip, dt_ms=float(dt_ms),
                    noise_sigma=sigma, n_skip=n_skip, tavg_n=tavg_n, bold_mode=bold_mode,
                    bold_tr_n=tr_n, bold_sub_n=sub_n, heun=integrator == "heun", dtype=_DTYPES[dtype])

    diverged = ~out["active"]
    bold = tavg = None
    if bold_mode != BOLD_OFF:
        bold = np.ascontiguousarray(out["bold"].transpose(2, 0, 1))
        bold[diverged] = np.nan
    if tavg_n > 0:
        tavg = np.ascontiguousarray(out["tavg"].transpose(3, 0, 2, 1))
        tavg[diverged] = np.nan
    attrs = dict(model=m.name, dt_ms=float(dt_ms), velocity=float(velocity),
                 seeds=np.array(seeds, dtype=np.int64), duration_s=float(duration_s),
                 transient_s=float(transient_s), integrator=integrator, dtype=dtype, bold_monitor=bold_monitor,
                 bold_tr_s=float(bold_tr_s) if bold_tr_s is not None else float("nan"),
                 tavg_ms=float(tavg_ms) if tavg_ms is not None else float("nan"),
                 bold_substep_ms=float(sub_n * dt_ms), max_delay_steps=conn.max_delay,
                 wall_s=float(out["wall_s"]), compile_s=float(compile_s))
    return SimResult(bold=bold, tavg=tavg, diverged=diverged, diverged_step=out["diverged_step"],
                     noise_sigma=np.broadcast_to(sigma, (B,)).astype(np.float64),
                     seeds=np.array(seeds, dtype=np.int64), labels=labels, states=list(m.states), attrs=attrs)


#: simulate() takes exactly simulate_arrays()'s arguments (and shows them to help() and IDEs)
simulate.__signature__ = inspect.signature(simulate_arrays).replace(return_annotation=xr.Dataset)
