"""Batch tiling and the SIMD coupling gather: same bits at any tiling; the tile size follows L2."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from explorer.models import get_model
from explorer.models.arrays import param_array
from explorer.sim import kernel as K
from explorer.sim.connectome import build_connectome
from explorer.sim.kernel import (BOLD_BALLOON, accumulate_ring_group, accumulate_ring_rows,
                                 buffer_bytes, tile_fits_l2, tile_width)
from explorer.sim.simulator import initial_state, run_batch

KEYS = ("x", "tavg", "bold", "active", "diverged_step")


def _net(n: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    w = rng.random((n, n)) * (rng.random((n, n)) < 0.7)
    np.fill_diagonal(w, 0.0)
    return w / w.max(), rng.uniform(5.0, 80.0, (n, n))


def _run(model, params, seeds, tile, dtype, heun=False, noise=0.01, dt_ms=0.1, n_steps=600):
    m = get_model(model)
    w, ln = _net()
    conn = build_connectome(w, ln, 10.0, dt_ms)
    p = param_array(m, params, conn.n)
    x0 = initial_state(m, conn.n, seeds)
    sigma = np.array([noise * (b % 3) for b in range(len(seeds))])  # some trials without noise
    return run_batch(m, conn, p, x0, seeds, n_steps=n_steps, dt_ms=dt_ms, noise_sigma=sigma, n_skip=100,
                     tavg_n=20, bold_mode=BOLD_BALLOON, bold_tr_n=100, bold_sub_n=10, heun=heun,
                     dtype=dtype, tile=tile)


@pytest.mark.parametrize("model,dtype,heun", [("rww_ei", np.float32, False), ("rww_ei", np.float64, True),
                                              ("hopf", np.float64, False), ("hopf", np.float32, True)])
def test_tiled_equals_untiled_bit_for_bit(model, dtype, heun):
    B = 37
    seeds = list(range(100, 100 + B))
    G = np.linspace(0.1, 1.5, B)
    params = [{"G": float(g)} for g in G]
    if model == "hopf":  # a trial on a large limit cycle amid damped ones
        params[20] = {"G": 2.0, "a": 10.0}
    whole = _run(model, params, seeds, 0, dtype, heun)
    assert whole["tile"] == 0
    for tile in (16, 32, None):  # tiles of 16 + 16 + 5, of 32 + 5, and the automatic size
        tiled = _run(model, params, seeds, tile, dtype, heun)
        for key in KEYS:
            assert np.array_equal(whole[key], tiled[key]), (tile, key)
    # and each tile equals its trials run alone
    one = _run(model, params[30:31], seeds[30:31], None, dtype, heun)
    for key in ("x", "tavg", "bold"):
        assert np.array_equal(one[key][..., 0], whole[key][..., 30]), key


def test_tile_of_a_diverging_hopf_trial_is_flagged():
    B = 37
    seeds = list(range(B))
    params = [{"G": 0.2}] * B
    params[20] = {"G": 500.0}  # diverges (as in test_divergence.py), in the second tile of 16
    out = _run("hopf", params, seeds, 16, np.float64, n_steps=400, dt_ms=100.0)
    assert out["active"].tolist() == [b != 20 for b in range(B)]
    assert out["diverged_step"][20] >= 0 and (out["diverged_step"][np.arange(B) != 20] == -1).all()


@njit
def _gather(acc, buf, offs, wgt, k0, k1):   # the plain gather: rows at offs (>= 0), no shift, no wrap
    accumulate_ring_rows(acc, buf, offs, wgt, k0, k1, 0, 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("M", [1, 5, 8, 16, 17, 40, 64, 100, 129])
def test_the_gather_is_the_documented_sum(dtype, M):
    rng = np.random.default_rng(M)
    buf = rng.standard_normal(5000).astype(dtype)
    nnz = 11
    offs = rng.integers(0, 5000 - M, nnz).astype(np.int64)
    wgt = rng.random(nnz).astype(dtype)
    for k0, k1 in ((0, nnz), (3, 10), (4, 5), (6, 6)):
        acc = np.full(M, np.nan, dtype=dtype)
        _gather(acc, buf, offs, wgt, k0, k1)
        even = np.zeros(M, dtype=dtype)
        odd = np.zeros(M, dtype=dtype)
        for n, k in enumerate(range(k0, k1)):
            term = wgt[k] * buf[offs[k]:offs[k] + M]
            if n % 2 == 0:
                even = even + term
            else:
                odd = odd + term
        assert np.array_equal(acc, even + odd), (k0, k1)
        plain = sum((wgt[k].astype(np.float64) * buf[offs[k]:offs[k] + M] for k in range(k0, k1)), np.zeros(M))
        np.testing.assert_allclose(acc, plain, rtol=1e-5 if dtype == np.float32 else 1e-13, atol=1e-5)


@njit
def _ring(acc, buf, base, wgt, rowptr, shift, wrap, M, grouped):
    n = rowptr.shape[0] - 1
    i0 = 0
    if grouped:
        while i0 + K._GROUP_ROWS <= n:
            accumulate_ring_group(acc, buf, base, wgt, rowptr, i0, shift, wrap)
            i0 += K._GROUP_ROWS
    for i in range(i0, n):
        accumulate_ring_rows(acc[i * M:(i + 1) * M], buf, base, wgt, rowptr[i], rowptr[i + 1], shift, wrap)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ring_gathers_equal_the_plain_gather_bit_for_bit(dtype):
    """accumulate_ring_rows (per row) and accumulate_ring_group (4 one-vector rows at once) give the
    bits of the plain gather at the wrapped offsets ``base + shift (+ wrap if < 0)``."""
    rng = np.random.default_rng(5)
    M = 64 // np.dtype(dtype).itemsize
    n, wrap = 11, 4000
    rowptr = np.concatenate([[0], np.cumsum(rng.integers(0, 9, n))]).astype(np.int64)
    nnz = int(rowptr[-1])
    buf = rng.standard_normal(wrap + M).astype(dtype)
    base = rng.integers(-wrap + 1, wrap - M - 500, nnz).astype(np.int64)
    wgt = rng.random(nnz).astype(dtype)
    shift = 500
    offs = base + shift
    offs[offs < 0] += wrap
    want = np.empty(n * M, dtype=dtype)
    for i in range(n):
        _gather(want[i * M:(i + 1) * M], buf, offs, wgt, rowptr[i], rowptr[i + 1])
    for grouped in (False, True):
        got = np.full(n * M, np.nan, dtype=dtype)
        _ring(got, buf, base, wgt, rowptr, shift, wrap, M, grouped)
        assert np.array_equal(got, want), grouped


def test_tile_width_keeps_the_buffer_in_l2_in_whole_vectors():
    l2 = 1 << 20
    # the gw benchmark (80 regions, 173 slots): one vector of trials, whose buffer (0.84 MiB) fits
    assert tile_width(80, 173, 1, np.float32, l2) == 16 and tile_fits_l2(80, 173, 1, np.float32, 16, l2)
    assert tile_width(80, 173, 1, np.float64, l2) == 8 and tile_fits_l2(80, 173, 1, np.float64, 8, l2)
    # two coupled states (hopf): rows of NC x trials, so half as many trials per vector
    assert tile_width(80, 173, 2, np.float32, l2) == 8 and tile_fits_l2(80, 173, 2, np.float32, 8, l2)
    assert tile_width(80, 173, 2, np.float64, l2) == 4 and tile_fits_l2(80, 173, 2, np.float64, 4, l2)
    # a per-region kernel needs MIN_TILE trials: beyond L2 here
    assert tile_width(80, 173, 2, np.float32, l2, flat=False) == K.MIN_TILE
    assert not tile_fits_l2(80, 173, 2, np.float32, K.MIN_TILE, l2)
    # a small network: many trials per tile, whole vectors, the largest that keeps to L2_SHARE
    for dtype, step in ((np.float32, 16), (np.float64, 8)):
        t = tile_width(20, 30, 1, dtype, l2)
        assert t % step == 0 and t > K.MIN_TILE
        assert buffer_bytes(20, 30, 1, dtype, t) <= K.L2_SHARE * l2 < buffer_bytes(20, 30, 1, dtype, t + step)
        assert tile_fits_l2(20, 30, 1, dtype, t, l2)


def test_flat_and_per_region_kernels_agree_bit_for_bit(monkeypatch):
    from explorer.sim import simulator

    for name in ("rww_ei", "rww", "wilson_cowan"):
        assert K.kernel_mode(get_model(name)) == K.FLAT
    # hopf declares a diffusive coupling: the kernel folds - wsum_i z_i into its coupling input
    assert K.kernel_mode(get_model("hopf")) == K.FLAT_DIFFUSIVE
    B = 21
    seeds = list(range(B))
    for model, dtype in (("rww_ei", np.float64), ("wilson_cowan", np.float32), ("hopf", np.float64),
                         ("hopf", np.float32)):
        params = [{"G": float(g)} for g in np.linspace(0.1, 1.0, B)]
        for heun in (False, True):
            flat = _run(model, params, seeds, 8, dtype, heun)
            monkeypatch.setattr(simulator, "get_kernel", lambda m: K.get_kernel(m, K.PER_REGION))
            per_region = _run(model, params, seeds, 8, dtype, heun)
            monkeypatch.undo()
            for key in KEYS:
                assert np.array_equal(flat[key], per_region[key]), (model, dtype, heun, key)


def test_kernel_mode_follows_the_declared_coupling():
    from dataclasses import replace

    hopf, rww = get_model("hopf"), get_model("rww")
    assert K.kernel_mode(replace(hopf, name="hopf_general", coupling="general")) == K.PER_REGION
    # a linear coupling of two states: no flat kernel for it (one coupled state only)
    assert K.kernel_mode(replace(hopf, name="hopf_linear", coupling="linear")) == K.PER_REGION
    assert K.kernel_mode(replace(rww, name="rww_diffusive", coupling="diffusive")) == K.FLAT_DIFFUSIVE


def test_l2_size_is_read_from_the_machine():
    assert K._parse_size("1024K") == 1 << 20
    assert K._parse_size("2 MiB (2 instances)") == 2 << 20
    size, source = K.l2_cache()
    assert size > 0 and source in ("sysfs", "lscpu", "fallback")
    info = K.machine_info()
    assert info["cores"] >= 1 and info["l2_per_core_bytes"] == size
    assert info["isa"] in ("AVX-512", "AVX2", "AVX", "SSE", "unknown") and info["cpu_model"]


def test_float32_kernel_runs_in_float32_with_float64_monitors():
    """dtype float32: the kernel's state, parameters, dt and buffer are float32 (one specialisation),
    the monitors float64."""
    from numba import types

    out = _run("rww_ei", [{"G": 0.5}] * 3, [1, 2, 3], None, np.float32, n_steps=200)
    assert out["x"].dtype == np.float32 and out["bold"].dtype == np.float64 and out["tavg"].dtype == np.float64
    kernel = K.get_kernel(get_model("rww_ei"))
    sig = next(s for s in kernel.nopython_signatures if s.args[0].dtype == types.float32)
    x, buf, p, dt = sig.args[0], sig.args[1], sig.args[2], sig.args[12]
    assert x.dtype == buf.dtype == p.dtype == dt == types.float32
    assert sig.args[-1].dtype == types.float64  # bold
