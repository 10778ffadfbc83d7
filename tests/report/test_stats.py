"""explorer.report.stats against hand-computed cases."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from explorer.report import stats

# ---------------------------------------------------------------- upper / similarity / residual


def test_upper_is_strict_upper_triangle_row_major():
    a = np.arange(9.0).reshape(3, 3)  # [[0,1,2],[3,4,5],[6,7,8]] -> (0,1),(0,2),(1,2)
    np.testing.assert_array_equal(stats.upper(a), [1.0, 2.0, 5.0])
    with pytest.raises(ValueError, match="square"):
        stats.upper(np.zeros((2, 3)))


def _sym(rng: np.random.Generator, n: int) -> np.ndarray:
    a = rng.normal(size=(n, n))
    return a + a.T


def test_similarity_matrix_equals_corrcoef_of_upper_triangles():
    rng = np.random.default_rng(1)
    rows = [_sym(rng, 7) for _ in range(4)]
    cols = [_sym(rng, 7) for _ in range(5)]
    got = stats.similarity_matrix(rows, cols)
    assert got.shape == (4, 5)
    full = np.corrcoef(np.stack([stats.upper(m) for m in rows + cols]))
    np.testing.assert_allclose(got, full[:4, 4:], atol=1e-12, rtol=0)


def test_similarity_matrix_constant_triangle_gives_nan_row_and_col():
    rng = np.random.default_rng(2)
    const = np.ones((5, 5))
    got = stats.similarity_matrix([_sym(rng, 5), const], [const, _sym(rng, 5), _sym(rng, 5)])
    assert np.isnan(got[1]).all() and np.isnan(got[:, 0]).all()
    assert np.isfinite(got[0, 1:]).all()


def test_similarity_matrix_rejects_mixed_sizes():
    with pytest.raises(ValueError, match="same N"):
        stats.similarity_matrix([np.eye(3)], [np.eye(4)])
    with pytest.raises(ValueError, match="same N"):
        stats.similarity_matrix([np.eye(3), np.eye(4)], [np.eye(3)])


def test_residual_subtracts_the_mean_and_sums_to_zero():
    a, b = np.array([[0.0, 2.0], [2.0, 0.0]]), np.array([[0.0, 4.0], [4.0, 0.0]])
    ra, rb = stats.residual([a, b])  # mean off-diagonal = 3 -> -1 and +1
    np.testing.assert_array_equal(ra, [[0.0, -1.0], [-1.0, 0.0]])
    np.testing.assert_array_equal(rb, [[0.0, 1.0], [1.0, 0.0]])
    rng = np.random.default_rng(3)
    res = stats.residual([_sym(rng, 6) for _ in range(5)])
    np.testing.assert_allclose(np.mean(res, axis=0), 0.0, atol=1e-12)


# ---------------------------------------------------------------- identification


def test_i_diff_hand_case():
    m = np.array([[0.9, 0.2, 0.1], [0.3, 0.8, 0.4], [0.0, 0.5, 0.7]])
    # diagonal mean = (0.9 + 0.8 + 0.7) / 3 = 0.8
    # off-diagonal mean = (0.2 + 0.1 + 0.3 + 0.4 + 0.0 + 0.5) / 6 = 1.5 / 6 = 0.25
    out = stats.identification(m)
    assert out["i_diff"] == pytest.approx(0.55)
    assert out["accuracy"] == 1.0 and out["accuracy_subject_to_twin"] == 1.0
    assert out["n"] == 3


def test_accuracy_differs_by_direction():
    m = np.array([[0.5, 0.6, 0.0], [0.4, 0.7, 0.0], [0.0, 0.0, 0.9]])
    # rows: twin 0 best matches subject 1 (0.6 > 0.5) -> wrong; twins 1, 2 right -> 2/3
    # cols: subject 0 -> twin 0 (0.5 > 0.4), subject 1 -> twin 1 (0.7 > 0.6), subject 2 -> twin 2 -> 3/3
    out = stats.identification(m)
    assert out["accuracy"] == pytest.approx(2 / 3)
    assert out["accuracy_subject_to_twin"] == 1.0


def test_ties_fail_and_nan_is_minus_inf():
    m = np.array([[0.5, 0.5, 0.0], [np.nan, 0.7, 0.1], [0.2, np.nan, np.nan]])
    # row 0: tie 0.5 = 0.5 -> wrong; row 1: 0.7 beats NaN and 0.1 -> right; row 2: diagonal NaN -> wrong
    out = stats.identification(m)
    assert out["accuracy"] == pytest.approx(1 / 3)
    # i_diff ignores NaN: diag (0.5 + 0.7) / 2 = 0.6, off (0.5 + 0 + 0.1 + 0.2) / 4 = 0.2
    assert out["i_diff"] == pytest.approx(0.4)


@pytest.mark.parametrize("n, p", [(3, 1 / 6), (4, 1 / 24)])
def test_exact_p_perfect_diagonal(n, p):
    # accuracy 1 under a relabelling only for the identity: 1 of n! permutations
    got, method = stats.identification_p_value(np.eye(n))
    assert got == pytest.approx(p)
    assert method == f"exact over all {math.factorial(n)} permutations"


def test_exact_p_one_of_three_right():
    m = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    # strict argmax = (0, 2, 1), observed 1 correct. Permutations of 3 matching (0, 2, 1) in >= 1 place:
    # all 6 minus the 2 derangements of it = 4 -> p = 4/6
    p, _ = stats.identification_p_value(m)
    assert p == pytest.approx(2 / 3)


def test_exact_p_zero_accuracy_is_one():
    m = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])  # every twin picks the next subject
    out = stats.identification(m)
    assert out["accuracy"] == 0.0 and out["p_value"] == 1.0


def test_exact_p_matches_brute_force_column_permutation():
    rng = np.random.default_rng(4)
    m = rng.normal(size=(6, 6)) + 1.0 * np.eye(6)
    obs = stats.identification(m)["accuracy"]
    perms = list(itertools.permutations(range(6)))
    count = sum(stats.identification(m[:, list(pi)], n_perm=1)["accuracy"] >= obs for pi in perms)
    p, _ = stats.identification_p_value(m)
    assert p == pytest.approx(count / len(perms))


def test_monte_carlo_p_for_large_n():
    p, method = stats.identification_p_value(np.eye(10), n_perm=2000)
    # only the identity (1 in 10!) reaches accuracy 1: count is 0 -> p = 1 / 2001
    assert method == "Monte Carlo, 2000 permutations"
    assert p == pytest.approx(1 / 2001)
    # chance-level matrix: p somewhere in (1/(1+n_perm), 1], reproducible for a seed
    m = np.random.default_rng(5).normal(size=(40, 40))
    p1, _ = stats.identification_p_value(m, n_perm=3000, seed=7)
    assert 0.01 < p1 <= 1.0
    assert stats.identification_p_value(m, n_perm=3000, seed=7)[0] == p1
    shifted = np.roll(np.eye(12), 1, axis=1)  # accuracy 0 -> every permutation counts
    assert stats.identification_p_value(shifted, n_perm=500) == (1.0, "Monte Carlo, 500 permutations")


def test_identification_rejects_non_square():
    with pytest.raises(ValueError, match="square"):
        stats.identification(np.zeros((2, 3)))


# ---------------------------------------------------------------- ICC(2,1)


def test_icc_shrout_fleiss_1979_example():
    x = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]])
    # n = 6, k = 4, total 127, CF = 127^2 / 24 = 16129/24, sum x^2 = 841
    # SST = 841 - 16129/24 = 4055/24
    # SSR = (24^2 + 12^2 + 26^2 + 16^2 + 30^2 + 19^2) / 4 - CF = 2913/4 - 16129/24 = 1349/24 -> MSR = 1349/120
    # SSC = (46^2 + 15^2 + 26^2 + 40^2) / 6 - CF = 4617/6 - 16129/24 = 2339/24 -> MSC = 2339/72
    # SSE = (4055 - 1349 - 2339)/24 = 367/24 -> MSE = 367/360
    # ICC = (MSR - MSE) / (MSR + 3 MSE + 4 (MSC - MSE) / 6); times 360: 3680 / 12700 = 184/635 = 0.2898
    assert stats.icc_2_1(x) == pytest.approx(184 / 635, rel=1e-12)
    assert round(stats.icc_2_1(x), 2) == 0.29


def test_icc_perfect_agreement_nan_rows_and_degenerate():
    x = np.array([[1.0, 1.0, 1.0], [2.0, 2.0, 2.0], [5.0, 5.0, 5.0], [np.nan, 3.0, 9.0]])
    assert stats.icc_2_1(x) == pytest.approx(1.0)  # the NaN row is dropped
    assert math.isnan(stats.icc_2_1(np.array([[1.0, 2.0]])))  # n = 1
    assert math.isnan(stats.icc_2_1(np.array([[1.0], [2.0]])))  # k = 1


# ---------------------------------------------------------------- Spearman


@pytest.mark.parametrize("sign", [1, -1])
def test_spearman_exact_perfectly_monotone(sign):
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    out = stats.spearman_permutation(x, sign * x**3)
    # |rho| = 1 only for the identity and the reversal: 2 of 5! = 120
    assert out["rho"] == pytest.approx(sign)
    assert out["p_value"] == pytest.approx(2 / 120)
    assert out["p_method"] == "exact over all 120 permutations" and out["n"] == 5


def test_spearman_drops_nan_and_small_n():
    out = stats.spearman_permutation([1.0, np.nan, 2.0, 3.0, 4.0], [2.0, 5.0, np.nan, 6.0, 8.0])
    assert out["n"] == 3 and out["rho"] == pytest.approx(1.0)  # pairs (1,2) (3,6) (4,8)
    assert out["p_value"] == pytest.approx(2 / 6)
    small = stats.spearman_permutation([1.0, 2.0], [2.0, 1.0])
    assert small["n"] == 2 and math.isnan(small["rho"]) and math.isnan(small["p_value"])


def test_spearman_monte_carlo_matches_scipy_rho():
    rng = np.random.default_rng(6)
    x = rng.normal(size=30)
    y = x + rng.normal(size=30)
    out = stats.spearman_permutation(x, y, n_perm=2000)
    from scipy.stats import spearmanr

    assert out["rho"] == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)
    assert out["p_method"] == "Monte Carlo, 2000 permutations"
    assert 1 / 2001 <= out["p_value"] < 0.05


# ---------------------------------------------------------------- FDR, relative error


def test_fdr_bh_hand_case_with_nan():
    # sorted 0.01, 0.03, 0.04, 0.20 (m = 4): p * m / rank = 0.04, 0.06, 0.05333, 0.20
    # running min from the top: 0.20, 0.05333, min(0.06, 0.05333) = 0.05333, 0.04
    q = stats.fdr_bh([0.01, 0.04, np.nan, 0.03, 0.20])
    np.testing.assert_allclose(q, [0.04, 0.16 / 3, np.nan, 0.16 / 3, 0.20], rtol=1e-12)
    assert np.isnan(stats.fdr_bh([np.nan])).all() and stats.fdr_bh([]).shape == (0,)


def test_rel_error():
    got = stats.rel_error([2.0, -4.0, 0.0], [3.0, -3.0, 1.0])  # 1/2, 1/4, nan
    np.testing.assert_array_equal(got, [0.5, 0.25, np.nan])
