"""The vectorisable exp/log and the counter-based normal generator."""

from __future__ import annotations

import numpy as np
from numba import njit
from scipy import stats

from explorer.models.vecmath import hash64, normal_pair, seed_key, vexp, vlog


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


def test_normals_are_standard_and_streams_differ():
    z = np.empty(400_000)
    _normals(seed_key(7), 200_000, z)
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1.0) < 0.01
    assert stats.kstest(z, "norm").pvalue > 1e-3
    assert abs(np.corrcoef(z[0::2], z[1::2])[0, 1]) < 0.01
    z2 = np.empty(400_000)
    _normals(seed_key(8), 200_000, z2)
    assert abs(np.corrcoef(z, z2)[0, 1]) < 0.01
