"""The vectorisable exp/log and the counter-based normal generator."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit
from scipy import stats

from explorer.models.vecmath import flt, gauss_pair, hash64, normal_pair, seed_key, vexp, vlog


@njit
def _exp(x, out):
    for i in range(x.size):
        out[i] = vexp(x[i])


@njit
def _log(x, out):
    for i in range(x.size):
        out[i] = vlog(x[i])


@njit
def _normals(key, n, out):
    for i in range(n):
        z0, z1 = normal_pair(hash64(key, np.uint64(i)))
        out[2 * i] = z0
        out[2 * i + 1] = z1


@njit
def _normals32(key, n, out):
    for i in range(n):
        z0, z1 = gauss_pair(hash64(key, np.uint64(i)), np.float32(0.0))
        out[2 * i] = z0
        out[2 * i + 1] = z1


def test_exp_matches_numpy():
    x = np.concatenate([np.linspace(-700, 700, 20001), np.random.default_rng(0).uniform(-5, 5, 20000)])
    out = np.empty_like(x)
    _exp(x, out)
    np.testing.assert_allclose(out, np.exp(x), rtol=1e-15, atol=0)


def test_log_matches_numpy():
    x = np.exp(np.random.default_rng(1).uniform(-700, 700, 20000))
    x = np.concatenate([x, np.random.default_rng(2).uniform(0.5, 2.0, 20000)])
    out = np.empty_like(x)
    _log(x, out)
    np.testing.assert_allclose(out, np.log(x), rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("fill,dtype", [(_normals, np.float64), (_normals32, np.float32)])
def test_normals_are_standard_and_streams_differ(fill, dtype):
    z = np.empty(400_000, dtype=dtype)
    fill(seed_key(7), 200_000, z)
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1.0) < 0.01
    assert stats.kstest(z, "norm").pvalue > 1e-3
    assert abs(np.corrcoef(z[0::2], z[1::2])[0, 1]) < 0.01
    z2 = np.empty(400_000, dtype=dtype)
    fill(seed_key(8), 200_000, z2)
    assert abs(np.corrcoef(z, z2)[0, 1]) < 0.01


@njit
def _flt_of(like):
    return flt(1e-3, like)


def test_float32_exp_keeps_float32_and_is_accurate():
    x = np.concatenate([np.linspace(-87, 88, 20001), np.random.default_rng(0).uniform(-5, 5, 20000)])
    x = x.astype(np.float32)
    out = np.empty_like(x)
    _exp(x, out)   # compiled again for float32 input: vexp in float32
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, np.exp(x.astype(np.float64)), rtol=3e-7, atol=0)


def test_flt_gives_the_constant_in_the_type_of_its_argument():
    assert _flt_of(np.float32(1.0)) == float(np.float32(1e-3)) and _flt_of(1.0) == 1e-3
    returns = {str(sig.args[0]): str(sig.return_type) for sig in _flt_of.nopython_signatures}
    assert returns == {"float32": "float32", "float64": "float64"}


def test_float32_normals_are_the_float64_draws_to_round_off():
    z = np.empty(400_000, dtype=np.float32)
    _normals32(seed_key(7), 200_000, z)
    # the float64 pair's uniforms cut to 23 bits: the same draws, but for round-off and the tails
    z64 = np.empty(400_000)
    _normals(seed_key(7), 200_000, z64)
    diff = np.abs(z - z64)
    assert np.quantile(diff, 0.999) < 2e-5 and diff.max() < 5e-3
