"""The batched integration kernel: one numba function per model (built from its ``dfun``).

Loop order: tile -> time -> phase -> (region, trial), with the trial innermost and contiguous:

- state ``x`` [state, region, trial], parameters ``p`` [param, region, trial];
- batch tiles: :func:`~explorer.sim.simulator.run_batch` runs a batch as tiles of
  :func:`model_tile_width` trials (rww_ei: sized so that a tile's delay buffer stays in the L2 cache;
  hopf: rows of one gather chunk), each tile with its own time loop and its own delay buffer (one,
  reused); trials are independent, so tiling changes no bit of any trial;
- delays: a ring buffer of the coupled states ``buf`` [slot, region, coupled state, trial] holding
  the last ``max_delay + 1`` steps; the connectome in CSR form (row = receiving region i,
  ``col`` = sending region j, integer delay in steps per nonzero), so that
  ``c_i = sum_j W_ij z_j(t - d_ij)``; the buffer is read through a flat 1-D view, each nonzero being
  one contiguous row of NC * B values (``c[cc, b]`` flat, every coupled state at once) at offset
  ``slot * N * NC * B + col * NC * B``, computed per nonzero as it is gathered (wrapping around the
  ring). The gather is explicit SIMD (:func:`accumulate_ring_rows`): per chunk of 4 vectors of 64
  bytes the partial sums stay in registers over the whole row, one load, multiply and add per vector
  and nonzero; rows of one vector (rww_ei's tiles of 8 float64 or 16 float32 trials) are gathered 4
  regions at a time (:func:`accumulate_ring_group`), their sums interleaved. It is bound by
  the bandwidth from L2/L3 (measured on a Zen 4 core: ~2.5-3.5 cycles per 64-byte vector and
  nonzero from L2 or L3, ~1.2 from L1). The caller allocates ``buf`` on a 64-byte boundary and the
  kernel puts ``c`` on one too (numpy's large arrays start 16 bytes into a page, which made every
  512-bit load straddle two cache lines: ~30% slower);
- precision: one float type per kernel specialisation, the type of ``x`` (``dtype``): state,
  parameters, ``dt``, bounds, noise amplitudes, buffer, weights, coupling, ``dfun``, noise and update
  all in float64, or all in float32 (16 lanes per 512-bit vector instead of 8, half the memory
  traffic; the models write their constants with :func:`~explorer.models.vecmath.flt` so that
  numba does not promote them to float64); the monitors' accumulators (temporal average, BOLD
  input and Balloon-Windkessel state) are float64 either way, reading the state and widening it;
- phases of a step, each over every (region, trial) pair: coupling of every region; the right-hand
  side ``dfun``, one call over region x trial as one batch axis of N * B lanes (:func:`kernel_mode`,
  from the model's declared ``coupling``: its loop is then vectorised at any tile width; hopf's
  diffusive ``- wsum_i z_i``, one number per region, is folded into its coupling input first, in the
  state's type as its ``dfun`` computes it), else one call per region; noise; Heun's predictor; the
  update, clamp and bounds check; the monitors' accumulators. ``dfun`` reads only region i's own state and the coupling only the ring buffer
  (written at the start of the step), so the phase order computes exactly what a region-by-region
  loop does, bit for bit (tests/sim/test_tiling.py compares the flat and per-region kernels);
- noise: counter-based per-trial streams (``hash64(key_b, counter)`` + Box-Muller in the state's
  type, :func:`~explorer.models.vecmath.gauss_pair`), the counter being (step, region, pair): a
  trial's draws do not depend on the batch or tile it runs in;
- monitors online (temporal average, Balloon-Windkessel BOLD or sampled state): no trajectory
  at dt resolution is ever held, memory is O(tile x N x max delay + B x N x samples kept);
- divergence per trial: a trial whose state leaves the model bounds (or is NaN) is frozen and its
  step recorded; the others are untouched (the update counts the lanes of active trials that left
  their bounds, and only a step that has some reduces them per trial).
"""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from explorer.models.base import Model
from explorer.models.vecmath import flt, gauss_pair, hash64
from explorer.sim.bold import balloon_signal, balloon_step
from explorer.sim.jitcache import cache_kernel

BOLD_OFF, BOLD_BALLOON, BOLD_SAMPLE = 0, 1, 2

# ---- the coupling gather, as explicit SIMD ------------------------------------------------------
#: vectors of 64 bytes accumulated side by side per chunk of a row (in registers, over all nonzeros)
_CHUNK_VECTORS = 4


def _splat(builder, lane, w):
    """``w`` in every lane of ``lane`` (a vector type), or ``w`` itself for a scalar lane."""
    nl = lane.count if isinstance(lane, ir.VectorType) else 1
    if nl == 1:
        return w
    v = builder.insert_element(ir.Constant(lane, ir.Undefined), w, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(v, ir.Constant(lane, ir.Undefined),
                                  ir.Constant(ir.VectorType(ir.IntType(32), nl), [0] * nl))


def _lane_ptr(builder, lane, base, index):
    p = cgutils.gep(builder, base, index)
    return builder.bitcast(p, lane.as_pointer()) if isinstance(lane, ir.VectorType) else p


def _emit_term(builder, buf_p, offs_p, wgt_p, shift, wrap, k, m0, lane, units, align, slots):
    """slots[u] += wgt[k] * buf[o + m0 + u lanes] (one load, multiply and add per unit), the row
    ``o = offs[k] + shift``, plus ``wrap`` where that is negative."""
    i64 = ir.IntType(64)
    nl = lane.count if isinstance(lane, ir.VectorType) else 1
    o = builder.add(builder.load(cgutils.gep(builder, offs_p, k)), shift)
    o = builder.select(builder.icmp_signed("<", o, ir.Constant(i64, 0)), builder.add(o, wrap), o)
    w = _splat(builder, lane, builder.load(cgutils.gep(builder, wgt_p, k)))
    row = builder.add(o, m0)
    for u in range(units):
        r = builder.load(_lane_ptr(builder, lane, buf_p, builder.add(row, ir.Constant(i64, u * nl))), typ=lane)
        r.align = align
        builder.store(builder.fadd(builder.load(slots[u], typ=lane), builder.fmul(w, r)), slots[u])


def _emit_rows(builder, acc_p, buf_p, offs_p, wgt_p, k0, k1, shift, wrap, m0, lane, units, align):
    """acc[m0 : m0 + units lanes] = E + O, E (O) the sum of wgt[k] * buf[offs[k] + m] over the even
    (odd) positions k - k0 of [k0, k1), each accumulated in order from +0.0 (no fused multiply-add);
    the rows as :func:`_emit_term` computes them."""
    i64 = ir.IntType(64)
    nl = lane.count if isinstance(lane, ir.VectorType) else 1
    zero = ir.Constant(lane, None)
    even = [cgutils.alloca_once(builder, lane) for _ in range(units)]
    odd = [cgutils.alloca_once(builder, lane) for _ in range(units)]
    for sl in even + odd:
        builder.store(zero, sl)
    term = (builder, buf_p, offs_p, wgt_p, shift, wrap)
    two = ir.Constant(i64, 2)
    npairs = builder.udiv(builder.sub(k1, k0), two)
    with cgutils.for_range(builder, npairs) as loop:
        k = builder.add(k0, builder.mul(loop.index, two))
        _emit_term(*term, k, m0, lane, units, align, even)
        _emit_term(*term, builder.add(k, ir.Constant(i64, 1)), m0, lane, units, align, odd)
    last = builder.add(k0, builder.mul(npairs, two))
    with builder.if_then(builder.icmp_signed("<", last, k1)):
        _emit_term(*term, last, m0, lane, units, align, even)
    for u in range(units):
        sm = builder.fadd(builder.load(even[u], typ=lane), builder.load(odd[u], typ=lane))
        st = builder.store(sm, _lane_ptr(builder, lane, acc_p, builder.add(m0, ir.Constant(i64, u * nl))))
        st.align = align


#: rows of one vector gathered side by side (:func:`_emit_row_group`)
_GROUP_ROWS = 4


def _emit_row_group(builder, acc_p, buf_p, offs_p, wgt_p, rowptr_p, i0, shift, wrap, lane, align):
    """Rows ``i0 .. i0 + _GROUP_ROWS - 1`` of one vector each (``acc[i]`` = the vector at ``i`` lanes):
    the sums of :func:`_emit_rows`, with the same terms in the same order per row, but the rows'
    even and odd sums interleaved over their common pairs (2 x _GROUP_ROWS independent chains of
    additions instead of 2: a one-vector row is otherwise bound by the latency of its additions),
    then each row's own rest."""
    i64 = ir.IntType(64)
    nl = lane.count
    G = _GROUP_ROWS
    zero = ir.Constant(lane, None)
    two = ir.Constant(i64, 2)
    m0 = ir.Constant(i64, 0)
    term = (builder, buf_p, offs_p, wgt_p, shift, wrap)
    k0 = [builder.load(cgutils.gep(builder, rowptr_p, builder.add(i0, ir.Constant(i64, g)))) for g in range(G + 1)]
    even = [[cgutils.alloca_once(builder, lane)] for _ in range(G)]
    odd = [[cgutils.alloca_once(builder, lane)] for _ in range(G)]
    npairs = [builder.udiv(builder.sub(k0[g + 1], k0[g]), two) for g in range(G)]
    common = npairs[0]
    for g in range(G):
        builder.store(zero, even[g][0])
        builder.store(zero, odd[g][0])
        if g:
            common = builder.select(builder.icmp_unsigned("<", npairs[g], common), npairs[g], common)
    with cgutils.for_range(builder, common) as loop:
        for g in range(G):
            k = builder.add(k0[g], builder.mul(loop.index, two))
            _emit_term(*term, k, m0, lane, 1, align, even[g])
            _emit_term(*term, builder.add(k, ir.Constant(i64, 1)), m0, lane, 1, align, odd[g])
    for g in range(G):
        start = builder.add(k0[g], builder.mul(common, two))
        with cgutils.for_range(builder, builder.sub(npairs[g], common)) as loop:
            k = builder.add(start, builder.mul(loop.index, two))
            _emit_term(*term, k, m0, lane, 1, align, even[g])
            _emit_term(*term, builder.add(k, ir.Constant(i64, 1)), m0, lane, 1, align, odd[g])
        last = builder.add(k0[g], builder.mul(npairs[g], two))
        with builder.if_then(builder.icmp_signed("<", last, k0[g + 1])):
            _emit_term(*term, last, m0, lane, 1, align, even[g])
        sm = builder.fadd(builder.load(even[g][0], typ=lane), builder.load(odd[g][0], typ=lane))
        dst = builder.mul(builder.add(i0, ir.Constant(i64, g)), ir.Constant(i64, nl))
        st = builder.store(sm, _lane_ptr(builder, lane, acc_p, dst))
        st.align = align


def _rows_args_ok(acc, buf, rows, wgt) -> bool:
    """Whether the gather's arguments are 1-D contiguous arrays of one float dtype (int64 ``rows``)."""
    return (isinstance(acc, types.Array) and acc.dtype in (types.float32, types.float64)
            and isinstance(buf, types.Array) and buf.dtype == acc.dtype
            and isinstance(wgt, types.Array) and wgt.dtype == acc.dtype
            and isinstance(rows, types.Array) and rows.dtype == types.int64
            and all(a.ndim == 1 and a.layout == "C" for a in (acc, buf, rows, wgt)))


def _rows_codegen(context, builder, signature, args):
    """The gather of :func:`accumulate_ring_rows`."""
    acc_v, buf_v, rows_v, wgt_v, k0, k1, shift, wrap = args
    aty, bty, oty, wty = signature.args[:4]
    acc_a = context.make_array(aty)(context, builder, acc_v)
    buf_a = context.make_array(bty)(context, builder, buf_v)
    rows_a = context.make_array(oty)(context, builder, rows_v)
    wgt_a = context.make_array(wty)(context, builder, wgt_v)
    fty = context.get_value_type(aty.dtype)
    size = 4 if aty.dtype == types.float32 else 8
    V = 64 // size
    vec = ir.VectorType(fty, V)
    i64 = ir.IntType(64)
    M = cgutils.unpack_tuple(builder, acc_a.shape, 1)[0]
    ptrs = (acc_a.data, buf_a.data, rows_a.data, wgt_a.data, k0, k1, shift, wrap)
    C = _CHUNK_VECTORS * V
    n_chunks = builder.udiv(M, ir.Constant(i64, C))
    with cgutils.for_range(builder, n_chunks) as loop:
        _emit_rows(builder, *ptrs, builder.mul(loop.index, ir.Constant(i64, C)), vec,
                   _CHUNK_VECTORS, size)
    done = builder.mul(n_chunks, ir.Constant(i64, C))
    n_vec = builder.udiv(builder.sub(M, done), ir.Constant(i64, V))
    with cgutils.for_range(builder, n_vec) as loop:
        _emit_rows(builder, *ptrs, builder.add(done, builder.mul(loop.index, ir.Constant(i64, V))),
                   vec, 1, size)
    done = builder.add(done, builder.mul(n_vec, ir.Constant(i64, V)))
    # the rest (< V lanes): one 256-bit and one 128-bit vector where they fit, then single lanes
    for lanes in (V // 2, V // 4):
        if lanes < 2:
            continue
        fits = builder.icmp_signed(">=", builder.sub(M, done), ir.Constant(i64, lanes))
        here = builder.block
        with builder.if_then(fits):
            _emit_rows(builder, *ptrs, done, ir.VectorType(fty, lanes), 1, size)
            after = builder.add(done, ir.Constant(i64, lanes))
            inner = builder.block
        merged = builder.phi(i64)
        merged.add_incoming(after, inner)
        merged.add_incoming(done, here)
        done = merged
    with cgutils.for_range(builder, builder.sub(M, done)) as loop:
        _emit_rows(builder, *ptrs, builder.add(done, loop.index), fty, 1, size)
    return context.get_dummy_value()


@intrinsic
def accumulate_ring_rows(typingctx, acc, buf, base, wgt, k0, k1, shift, wrap):
    """``acc[m] = sum_k wgt[k] * buf[offs[k] + m]`` over nonzeros ``k0 <= k < k1``, every ``m < len(acc)``,
    with the rows of a ring buffer ``offs[k] = base[k] + shift``, plus ``wrap`` where that is negative,
    computed per nonzero as it is gathered (no pass over every nonzero per step).

    Explicit 512-bit vectors: per chunk of ``_CHUNK_VECTORS`` vectors of ``acc`` the partial sums stay
    in registers over all the row's nonzeros (one load, multiply and add per vector and nonzero, no
    round trip through memory), then whole vectors, a 256-bit and a 128-bit one, then single lanes.
    The order of the sum is fixed (even and odd positions summed apart from +0.0, then added), the
    same in every lane and in the scalar tail: a trial gets the same bits at any batch size or tiling.
    ``acc``, ``buf``, ``wgt``: 1-D contiguous, one float dtype; ``base``: int64; ``shift``, ``wrap``: int64.
    """
    if not _rows_args_ok(acc, buf, base, wgt):
        return None
    return types.void(acc, buf, base, wgt, types.int64, types.int64, types.int64, types.int64), _rows_codegen


@intrinsic
def accumulate_ring_group(typingctx, acc, buf, base, wgt, rowptr, i0, shift, wrap):
    """:func:`accumulate_ring_rows` of rows ``i0 .. i0 + _GROUP_ROWS - 1`` at once when each row is one
    64-byte vector (``acc[i * V : (i + 1) * V]`` the row of region i, V = 8 float64 or 16 float32
    lanes: one coupled state, 8 or 16 trials): the same terms in the same order per row (the same
    bits), the rows' sums interleaved (:func:`_emit_row_group`). ``rowptr``: int64 CSR row pointers."""
    if not (_rows_args_ok(acc, buf, base, wgt) and isinstance(rowptr, types.Array)
            and rowptr.dtype == types.int64 and rowptr.ndim == 1 and rowptr.layout == "C"):
        return None
    sig = types.void(acc, buf, base, wgt, rowptr, types.int64, types.int64, types.int64)

    def codegen(context, builder, signature, args):
        acc_v, buf_v, base_v, wgt_v, rowptr_v, i0, shift, wrap = args
        arrs = [context.make_array(t)(context, builder, v) for t, v in zip(signature.args[:5], args[:5])]
        fty = context.get_value_type(signature.args[0].dtype)
        size = 4 if signature.args[0].dtype == types.float32 else 8
        _emit_row_group(builder, *(a.data for a in arrs), i0, shift, wrap, ir.VectorType(fty, 64 // size), size)
        return context.get_dummy_value()

    return sig, codegen


# ---- batch tiling: the delay buffer of one tile in L2 -------------------------------------------
#: L2 size per core assumed when the machine does not say (sysfs, lscpu)
L2_FALLBACK = 1 << 20
#: share of L2 the delay buffer of a tile may take (the tile's state, parameters, coupling inputs and
#: monitors and the connectome's arrays need the rest)
L2_SHARE = 0.75
#: smallest tile of a per-region kernel (``PER_REGION``, :func:`model_tile_width`): per region, LLVM
#: vectorises the batch loop of a model's right-hand side only from ~24 trials on (below, its runtime
#: alias checks do not pay and the loop runs scalar, 3-4x slower per trial). The flat kernels run
#: ``dfun`` over region x trial, vectorised at any width: rww_ei (``FLAT``, one coupled state and an
#: expensive ``dfun`` over 17 parameters) runs fastest in its L2-sized tiles (16 or 8 trials), hopf
#: (``FLAT_DIFFUSIVE``) in rows of one gather chunk (16 or 32 trials).
MIN_TILE = 32


def _sysfs_l2() -> int | None:
    root = "/sys/devices/system/cpu/cpu0/cache"
    try:
        entries = sorted(os.listdir(root))
    except OSError:
        return None
    for e in entries:
        try:
            with open(os.path.join(root, e, "level")) as f:
                level = f.read().strip()
            with open(os.path.join(root, e, "type")) as f:
                kind = f.read().strip()
            with open(os.path.join(root, e, "size")) as f:
                size = f.read().strip()
        except OSError:
            continue
        if level == "2" and kind in ("Unified", "Data"):
            return _parse_size(size)
    return None


def _parse_size(text: str) -> int | None:
    """'1024K', '1 MiB', '2 MiB (2 instances)' (the first number and unit) in bytes."""
    import re

    m = re.match(r"\s*([0-9.]+)\s*([KMG]?)(i?B)?", text)
    if not m:
        return None
    return int(float(m.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[m.group(2)])


def _lscpu_l2() -> int | None:
    """L2 per core from ``lscpu`` ("2 MiB (2 instances)" is 1 MiB per instance)."""
    import re
    import subprocess

    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10,
                             env={**os.environ, "LC_ALL": "C"}).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        if line.startswith("L2"):
            value = line.split(":", 1)[1]
            total = _parse_size(value)
            m = re.search(r"\((\d+) instances?\)", value)
            if total and m:
                return total // max(1, int(m.group(1)))
            return total
    return None


_L2: list[tuple[int, str]] = []


def l2_cache() -> tuple[int, str]:
    """(L2 bytes per core, where it was read: "sysfs", "lscpu" or "fallback")."""
    if not _L2:
        size, src = _sysfs_l2(), "sysfs"
        if not size:
            size, src = _lscpu_l2(), "lscpu"
        if not size:
            size, src = L2_FALLBACK, "fallback"
        _L2.append((int(size), src))
    return _L2[0]


def buffer_bytes(n_regions: int, n_slots: int, n_coupled: int, dtype, trials: int) -> int:
    """Bytes of the delay ring buffer for ``trials`` trials."""
    return n_slots * n_regions * n_coupled * np.dtype(dtype).itemsize * trials


def tile_width(n_regions: int, n_slots: int, n_coupled: int, dtype, l2_bytes: int | None = None,
               flat: bool = True) -> int:
    """Trials per tile: as many as keep the tile's delay buffer within ``L2_SHARE`` of the L2 cache,
    in steps that make a nonzero's row (``n_coupled`` x trials) whole 64-byte vectors (16 float32 or
    8 float64 trials for one coupled state, 8 or 4 for two), and at least one step; for a per-region
    kernel (``flat=False``) at least ``MIN_TILE``. The buffer of the smallest tile may still exceed L2
    (long delays, many regions): :func:`tile_fits_l2` says."""
    l2 = l2_bytes or l2_cache()[0]
    step = max(1, 64 // (max(1, n_coupled) * np.dtype(dtype).itemsize))
    per_trial = max(1, buffer_bytes(n_regions, n_slots, n_coupled, dtype, 1))
    fit = int(L2_SHARE * l2) // per_trial
    width = max(step, fit - fit % step)
    return width if flat else max(MIN_TILE, width)


def tile_fits_l2(n_regions: int, n_slots: int, n_coupled: int, dtype, trials: int,
                 l2_bytes: int | None = None) -> bool:
    """Whether the delay buffer of a tile of ``trials`` trials fits the L2 cache."""
    l2 = l2_bytes or l2_cache()[0]
    return buffer_bytes(n_regions, n_slots, n_coupled, dtype, trials) <= l2


def machine_info() -> dict[str, Any]:
    """Cores, CPU model, vector ISA (AVX-512, AVX2, ...), L2 per core, and numba's target CPU."""
    flags: set[str] = set()
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not model and line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                elif not flags and line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    if not model:
        import platform

        model = platform.processor() or platform.machine()
    isa = ("AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "AVX" if "avx" in flags
           else "SSE" if "sse2" in flags else "unknown")
    try:
        import llvmlite.binding as llvm

        target = llvm.get_host_cpu_name()
    except Exception:  # pragma: no cover - llvmlite always ships with numba
        target = "unknown"
    l2, src = l2_cache()
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 1
    return dict(cores=os.cpu_count() or 1, cores_usable=usable, cpu_model=model, isa=isa,
                l2_per_core_bytes=l2, l2_source=src, llvm_target_cpu=target)


_KERNELS: dict[tuple[str, int], Callable[..., Any]] = {}


def get_kernel(model: Model, mode: int | None = None) -> Callable[..., Any]:
    """The (lazily compiled) kernel of ``model``; built once per process, model name and mode.

    ``mode``: how ``dfun`` runs (:func:`kernel_mode`, the default; ``PER_REGION`` always works).
    """
    mode = kernel_mode(model) if mode is None else int(mode)
    key = (model.name, mode)
    k = _KERNELS.get(key)
    if k is None:
        k = _KERNELS[key] = build_kernel(model, mode)
    return k


#: kernel modes: ``dfun`` per region; once over region x trial; once, with ``- wsum_i z_i`` folded in
PER_REGION, FLAT, FLAT_DIFFUSIVE = 0, 1, 2


def kernel_mode(model: Model) -> int:
    """How the kernel runs ``model.dfun``, from the model's declared ``coupling``: ``FLAT`` (once per step
    over all regions and trials as one batch axis, so that its loop is vectorised at any tile width) for
    ``"linear"`` with one coupled state; ``FLAT_DIFFUSIVE`` for ``"diffusive"`` (hopf): the kernel folds
    ``- wsum_i z_i`` into the coupling input, in the state's type as ``dfun`` computes it (the same bits);
    else ``PER_REGION``."""
    if model.coupling == "diffusive":
        return FLAT_DIFFUSIVE
    if model.coupling == "linear" and len(model.coupled_states) == 1:
        return FLAT
    return PER_REGION


def model_tile_width(model: Model, n_regions: int, n_slots: int, dtype, l2_bytes: int | None = None) -> int:
    """Trials per tile for ``model``'s kernel: ``FLAT`` (one coupled state, rww_ei), the L2-sized
    :func:`tile_width`, down to one vector of trials; ``FLAT_DIFFUSIVE`` (hopf) at least as many trials as
    make a nonzero's row one chunk of the gather (``_CHUNK_VECTORS`` vectors: 16 float64 or 32 float32
    trials for two coupled states): measured on the gw benchmark (Zen 4, 1 MiB L2, 80 regions, 173
    slots), hopf float64 runs 10-20% faster in tiles of 16 than in its L2-sized tiles of 4 (one vector
    per nonzero, whose per-nonzero work and the per-step work of 4x more tiles outweigh the cache) or
    in tiles of 32 (a 7 MB buffer); ``PER_REGION``: at least ``MIN_TILE``."""
    mode = kernel_mode(model)
    nc = len(model.coupled_states)
    width = tile_width(n_regions, n_slots, nc, dtype, l2_bytes, flat=mode != PER_REGION)
    if mode == FLAT_DIFFUSIVE:
        width = max(width, _CHUNK_VECTORS * 64 // (nc * np.dtype(dtype).itemsize))
    return width


def build_kernel(model: Model, mode: int | None = None) -> Callable[..., Any]:
    """Build the numba kernel of ``model`` (compiled on first call, per dtype, or loaded from the on-disk
    cache of an earlier process: :mod:`explorer.sim.jitcache`); ``mode``: see :func:`get_kernel`."""
    dfun = model.dfun
    NS = len(model.states)
    CS = np.array(model.coupled_states, dtype=np.int64)
    NC = len(CS)
    MODE = kernel_mode(model) if mode is None else int(mode)
    if MODE == FLAT and NC != 1:
        raise ValueError(f"model {model.name!r}: a plain flat kernel needs exactly one coupled state")
    noise_row = np.full(NS, -1, dtype=np.int64)
    for r, s in enumerate(model.noise_states):
        noise_row[s] = r
    NNOISE = len(model.noise_states)
    NPAIR = (NNOISE + 1) // 2
    BSTATE = int(model.bold_state)

    @njit(error_model="numpy", nogil=True, inline="always")
    def rhs(xs, xsf, call, cd, c2, p, pf, wsum, zero, dx, out):
        """dx/dt of state ``xs`` [state, region, trial] (``xsf``: its flat view) into ``out`` [state, region x trial]:
        one dfun call over all (region, trial), or one per region; ``zero``: 0 in the state's type."""
        N = xs.shape[1]
        B = xs.shape[2]
        if MODE == FLAT:
            dfun(xsf, 0, c2, pf, zero, out, N * B)
        elif MODE == FLAT_DIFFUSIVE:
            for cc in range(NC):
                sc = CS[cc]
                for i in range(N):
                    s_i = wsum[i]
                    for b in range(B):
                        cd[cc, i * B + b] = call[i, cc, b] - s_i * xs[sc, i, b]
            dfun(xsf, 0, cd, pf, zero, out, N * B)
        else:
            for i in range(N):
                dfun(xs, i, call[i], p, wsum[i], dx, B)
                for sv in range(NS):
                    for b in range(B):
                        out[sv, i * B + b] = dx[sv, b]

    @njit(error_model="numpy", nogil=True)
    def kernel(x, buf, p, rowptr, col, wgt, dly, wsum, amp, keys, n_steps, n_skip, dt, heun,
               lo, hi, clo, chi, active, div_step,
               tavg_n, tavg, bold_mode, bold_sub, bold_tr, bw, bold_dt_s, bold):
        N = x.shape[1]
        B = x.shape[2]
        L = buf.shape[0]
        NB = N * B
        M = NC * B
        # coupling inputs of every region [region, coupled state, trial] in the buffer's precision,
        # on a 64-byte boundary (full-vector stores)
        craw = np.zeros(N * M + 64, dtype=buf.dtype)
        c0 = ((-craw.ctypes.data) % 64) // craw.itemsize
        cflat = craw[c0:c0 + N * M]
        call = cflat.reshape((N, NC, B))
        # derivatives and noise of every (region, trial) as one axis [state, region x trial]
        # in the state's type (float64, or float32 for a float32 kernel), as are dt, p, bounds, wsum, amp
        fty = x.dtype
        zero = flt(0.0, dt)
        dxa = np.zeros((NS, NB), dtype=fty)
        dx2a = np.zeros((NS, NB), dtype=fty) if heun else np.zeros((NS, 1), dtype=fty)
        dx = np.zeros((NS, B), dtype=fty)
        nza = np.zeros((2 * NPAIR, NB), dtype=fty)
        xt = np.zeros((NS, N, B), dtype=fty) if heun else np.zeros((NS, 1, 1), dtype=fty)
        ok = np.ones(B, dtype=np.bool_)
        tacc = np.zeros((NS, N, B)) if tavg_n > 0 else np.zeros((NS, 1, 1))
        taccf = tacc.reshape((NS, 1, tacc.shape[1] * tacc.shape[2]))
        zacc = np.zeros((N, B))
        yout = np.zeros((N, B))
        # flat views: (region, trial) as one batch axis of NB, for dfun (flat kernels) and haemodynamics
        xf = x.reshape((NS, 1, NB))
        xtf = xt.reshape((NS, 1, xt.shape[1] * xt.shape[2]))
        pf = p.reshape((p.shape[0], 1, NB))
        c2 = cflat.reshape((1, N * M))  # flat kernels (NC == 1): the coupling input [1, region x trial]
        cd = np.zeros((NC, NB), dtype=fty) if MODE == FLAT_DIFFUSIVE else np.zeros((NC, 1), dtype=fty)  # c - wsum_i z_i
        bwf = bw.reshape((4, 1, NB))
        zaccf = zacc.reshape((1, NB))
        youtf = yout.reshape((1, NB))
        noisy = False
        for b in range(B):
            if amp[b] != zero:
                noisy = True
        # per lane (region i, trial b) of the flat axis: its region, the trial's noise key, amplitude,
        # activity, and whether its state stayed within bounds
        lreg = np.empty(NB, dtype=np.uint64)
        lkey = np.empty(NB, dtype=np.uint64)
        lamp = np.empty(NB, dtype=fty)
        lact = np.empty(NB, dtype=np.bool_)
        lok = np.ones(NB, dtype=np.bool_)
        lok2 = lok.reshape((N, B))
        for i in range(N):
            for b in range(B):
                lreg[i * B + b] = np.uint64(i)
                lkey[i * B + b] = keys[b]
                lamp[i * B + b] = amp[b]
                lact[i * B + b] = active[b]
        # the ring buffer as one flat vector, each (slot, region) row being the NC * B coupled values
        # [cc, b]. Nonzero k's row at step t starts at ``slot * RS + base[k]`` (+ L * RS when that
        # wraps below 0), with ``base[k] = col * M - delay * RS`` (accumulate_ring_rows adds both)
        RS = N * M
        LRS = L * RS
        VL = 64 // buf.itemsize  # lanes of a 64-byte vector
        bf = buf.reshape(-1)
        nnz = col.shape[0]
        base = np.empty(nnz, dtype=np.int64)
        for k in range(nnz):
            base[k] = col[k] * M - dly[k] * RS
        kt = 0
        kb = 0
        for t in range(n_steps):
            slot = t % L
            sb = slot * RS
            for j in range(N):
                for cc in range(NC):
                    sc = CS[cc]
                    for b in range(B):
                        buf[slot, j, cc, b] = x[sc, j, b]
            recording = t >= n_skip
            # long-range input: every nonzero of row i gathered once, all coupled states at once
            i0 = 0
            if M == VL:  # rows of one vector: _GROUP_ROWS rows at once
                while i0 + _GROUP_ROWS <= N:
                    accumulate_ring_group(cflat, bf, base, wgt, rowptr, i0, sb, LRS)
                    i0 += _GROUP_ROWS
            for i in range(i0, N):
                accumulate_ring_rows(cflat[i * M:(i + 1) * M], bf, base, wgt, rowptr[i], rowptr[i + 1], sb, LRS)
            # right-hand side of every region: one call over all (region, trial), or one per region
            rhs(x, xf, call, cd, c2, p, pf, wsum, zero, dx, dxa)
            if noisy:
                for q in range(NPAIR):
                    for m in range(NB):
                        ctr = (np.uint64(t * N) + lreg[m]) * np.uint64(NPAIR) + np.uint64(q)
                        z0, z1 = gauss_pair(hash64(lkey[m], ctr), zero)
                        nza[2 * q, m] = z0 * lamp[m]
                        nza[2 * q + 1, m] = z1 * lamp[m]
            if heun:
                for sv in range(NS):
                    r = noise_row[sv]
                    lo_c = clo[sv]
                    hi_c = chi[sv]
                    for m in range(NB):
                        v = xf[sv, 0, m] + dt * dxa[sv, m]
                        if r >= 0:
                            v += nza[r, m]
                        v = lo_c if v < lo_c else v
                        v = hi_c if v > hi_c else v
                        xtf[sv, 0, m] = v
                rhs(xt, xtf, call, cd, c2, p, pf, wsum, zero, dx, dx2a)
                half = flt(0.5, dt)
                for sv in range(NS):
                    for m in range(NB):
                        dxa[sv, m] = half * (dxa[sv, m] + dx2a[sv, m])
            # Euler(-Maruyama) update of every (region, trial), clamped; bounds checked per lane, and
            # ``nbad`` counts the lanes of active trials that left them this step
            nbad = 0
            for sv in range(NS):
                r = noise_row[sv]
                lo_c = clo[sv]
                hi_c = chi[sv]
                lo_b = lo[sv]
                hi_b = hi[sv]
                if r >= 0 and noisy:
                    for m in range(NB):
                        old = xf[sv, 0, m]
                        v = old + dt * dxa[sv, m] + nza[r, m]
                        v = lo_c if v < lo_c else v
                        v = hi_c if v > hi_c else v
                        inb = (v >= lo_b) & (v <= hi_b)
                        lok[m] = lok[m] & inb
                        nbad += 1 if lact[m] and not inb else 0
                        xf[sv, 0, m] = v if lact[m] else old
                else:
                    for m in range(NB):
                        old = xf[sv, 0, m]
                        v = old + dt * dxa[sv, m]
                        v = lo_c if v < lo_c else v
                        v = hi_c if v > hi_c else v
                        inb = (v >= lo_b) & (v <= hi_b)
                        lok[m] = lok[m] & inb
                        nbad += 1 if lact[m] and not inb else 0
                        xf[sv, 0, m] = v if lact[m] else old
            if tavg_n > 0 and recording:
                for sv in range(NS):
                    for m in range(NB):
                        taccf[sv, 0, m] += xf[sv, 0, m]
            if bold_mode == 1:
                for m in range(NB):
                    zaccf[0, m] += xf[BSTATE, 0, m]
            # per-trial divergence bookkeeping (only in a step where some active trial left its bounds)
            if nbad > 0:
                for i in range(N):
                    for b in range(B):
                        ok[b] = ok[b] & lok2[i, b]
                for b in range(B):
                    if active[b] and not ok[b]:
                        active[b] = False
                        div_step[b] = t
                        for i in range(N):
                            lact[i * B + b] = False
            # monitors
            if bold_mode == 1 and (t + 1) % bold_sub == 0:
                balloon_step(bwf, zaccf, 1.0 / bold_sub, bold_dt_s)
                zacc[:, :] = 0.0
            if recording:
                rec = t + 1 - n_skip
                if tavg_n > 0 and rec % tavg_n == 0:
                    for sv in range(NS):
                        for i in range(N):
                            for b in range(B):
                                tavg[kt, sv, i, b] = tacc[sv, i, b] / tavg_n
                                tacc[sv, i, b] = 0.0
                    kt += 1
                if bold_mode > 0 and rec % bold_tr == 0:
                    if bold_mode == 1:
                        balloon_signal(bwf, youtf)
                        for i in range(N):
                            for b in range(B):
                                bold[kb, i, b] = yout[i, b]
                    else:
                        for i in range(N):
                            for b in range(B):
                                bold[kb, i, b] = x[BSTATE, i, b]
                    kb += 1
        return kt, kb

    return cache_kernel(kernel, model, MODE)
