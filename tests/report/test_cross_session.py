"""Cross-session individuality: the edge statistics of report/stats.py and report/cross_session.py,
on synthetic matrices whose truth is known."""

from __future__ import annotations

import json

import numpy as np
import pytest

from explorer.report import stats
from explorer.report.build import jsonable
from explorer.report.cross_session import METHODS, cross_session, pick_sessions, within_session_note

N = 12


def _sym(x: np.ndarray) -> np.ndarray:
    return (x + x.T) / 2


def _cohort(n_people: int, individual: float, noise: float, seed: int = 0, labels=("1", "2")):
    """sessions map and FC per subject id: FC = tanh(shared + individual * own pattern + noise * fresh)."""
    rng = np.random.default_rng(seed)
    shared = _sym(rng.standard_normal((N, N)))
    sessions, fc = {}, {}
    for p in range(n_people):
        own = _sym(rng.standard_normal((N, N)))
        for ses in labels:
            sid = f"P{p:02d}_ses-{ses}"
            sessions.setdefault(f"P{p:02d}", {})[ses] = sid
            m = np.tanh(shared + individual * own + noise * _sym(rng.standard_normal((N, N))))
            np.fill_diagonal(m, 1.0)
            fc[sid] = m
    return sessions, fc


# -- stats ----------------------------------------------------------------------------------------
def test_edge_index_upper_for_symmetric_offdiagonal_for_asymmetric_and_mask():
    rng = np.random.default_rng(0)
    s = _sym(rng.standard_normal((4, 4)))
    a = rng.standard_normal((4, 4))
    assert len(stats.edge_index([s, s])[0]) == 6
    r, c = stats.edge_index([s, a])
    assert len(r) == 12 and not np.any(r == c)
    mask = np.zeros((4, 4), bool)
    mask[0, 1] = mask[2, 0] = True
    assert [tuple(x) for x in np.transpose(stats.edge_index([a], mask))] == [(0, 1), (2, 0)]
    with pytest.raises(ValueError, match="mask has shape"):
        stats.edge_index([a], np.ones((3, 3), bool))


def test_similarity_matrix_on_edges_is_corrcoef_of_those_entries():
    rng = np.random.default_rng(1)
    mats = [rng.standard_normal((5, 5)) for _ in range(3)]
    edges = stats.edge_index(mats)
    want = np.corrcoef([m[edges] for m in mats])
    np.testing.assert_allclose(stats.similarity_matrix(mats, mats, edges), want, atol=1e-12)
    # default is still the upper triangle
    np.testing.assert_allclose(stats.similarity_matrix(mats, mats), np.corrcoef([stats.upper(m) for m in mats]),
                               atol=1e-12)


def test_edgewise_icc_identical_sessions_is_one_and_independent_near_zero():
    rng = np.random.default_rng(2)
    a = [_sym(rng.standard_normal((8, 8))) for _ in range(60)]
    np.testing.assert_allclose(stats.edgewise_icc(a, a), 1.0)
    b = [_sym(rng.standard_normal((8, 8))) for _ in range(60)]
    icc = stats.edgewise_icc(a, b)
    assert icc.shape == (28,)
    assert abs(np.median(icc)) < 0.1 and np.all(icc < 0.5)


def test_edgewise_icc_matches_icc_2_1_per_edge_asymmetric_and_nan():
    rng = np.random.default_rng(3)
    a = [rng.standard_normal((5, 5)) for _ in range(7)]
    b = [m + 0.7 * rng.standard_normal((5, 5)) for m in a]
    b[2] = b[2].copy()
    b[2][0, 3] = np.nan                      # participant 2 dropped on that edge only
    icc = stats.edgewise_icc(a, b)
    edges = stats.edge_index(a + b)
    assert icc.shape == (20,)                # asymmetric: every off-diagonal edge
    for e, (i, j) in enumerate(zip(*edges)):
        want = stats.icc_2_1(np.array([[x[i, j], y[i, j]] for x, y in zip(a, b)]))
        assert icc[e] == pytest.approx(want, abs=1e-12)
    # an edge that is zero everywhere has no variance: NaN, not a number
    z = [np.eye(3)] * 4
    assert np.isnan(stats.edgewise_icc(z, z)).all()


def test_ledoit_wolf_matches_the_published_estimate():
    covariance = pytest.importorskip("sklearn.covariance")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((40, 15)) @ rng.standard_normal((15, 15))
    cov, d = stats.ledoit_wolf(x)
    want_cov, want_d = covariance.ledoit_wolf(x)
    assert d == pytest.approx(want_d, rel=1e-10) and 0 < d < 1
    np.testing.assert_allclose(cov, want_cov, atol=1e-10)


def test_partial_correlation_recovers_a_gaussian_graphical_model():
    """A chain graph: precision tridiagonal, so regions two or more apart are conditionally independent."""
    n = 6
    prec = np.eye(n) + np.diag(np.full(n - 1, -0.4), 1) + np.diag(np.full(n - 1, -0.4), -1)
    rng = np.random.default_rng(5)
    ts = rng.multivariate_normal(np.zeros(n), np.linalg.inv(prec), size=20000)
    pc = stats.partial_correlation(ts)
    d = np.sqrt(np.diag(prec))
    truth = -prec / np.outer(d, d)
    off = ~np.eye(n, dtype=bool)
    zero = off & (prec == 0)
    assert np.abs(pc[zero]).max() < 0.03                       # the graph's missing edges
    np.testing.assert_allclose(pc[off & ~zero], truth[off & ~zero], atol=0.03)
    assert np.allclose(np.diag(pc), 1.0) and np.allclose(pc, pc.T)
    # neighbours' neighbours: Pearson FC is far from zero there; partial correlation removed it
    two = np.abs(np.subtract.outer(np.arange(n), np.arange(n))) == 2
    assert np.abs(np.corrcoef(ts, rowvar=False)[two]).min() > 0.15 and np.abs(pc[two]).max() < 0.03


def test_partial_correlation_full_shrinkage_and_bad_input():
    rng = np.random.default_rng(6)
    ts = rng.standard_normal((50, 4)) + rng.standard_normal((50, 1))
    np.testing.assert_allclose(stats.partial_correlation(ts, shrinkage=1.0), np.eye(4), atol=1e-12)
    ts[:, 2] = 3.0
    with pytest.raises(ValueError, match=r"regions \[2\] are constant"):
        stats.partial_correlation(ts)
    with pytest.raises(ValueError, match="shrinkage must lie"):
        stats.partial_correlation(rng.standard_normal((50, 4)), shrinkage=1.5)


# -- sessions --------------------------------------------------------------------------------------
def test_pick_sessions_takes_the_pair_most_participants_have_and_says_who_is_left_out():
    sessions = {"A": {"pre": "A_pre", "post": "A_post"}, "B": {"pre": "B_pre", "post": "B_post"},
                "C": {"pre": "C_pre", "post": "C_post"}, "D": {"post": "D_post", "late": "D_late"}}
    fitted = ["A_pre", "A_post", "B_pre", "B_post", "C_pre", "D_post", "D_late"]
    a, b, pairs, excluded = pick_sessions(sessions, fitted)
    assert (a, b) == ("pre", "post")
    assert pairs == {"A": ("A_pre", "A_post"), "B": ("B_pre", "B_post")}
    assert set(excluded) == {"C", "D"} and "post" in excluded["C"] and "pre" in excluded["D"]
    assert pick_sessions({"A": {"1": "A1", "2": "A2"}}, ["A1", "A2"]) is None   # one participant: nothing to identify


def test_individual_pattern_is_identified_both_ways_with_exact_p():
    sessions, fc = _cohort(5, individual=1.0, noise=0.3)
    xs = cross_session(sessions, list(fc), fc)
    assert xs["sessions"] == ["1", "2"] and xs["directions"] == [["1", "2"], ["2", "1"]]
    emp = xs["methods"]["empirical_fc"]
    for d in emp["directions"]:
        assert (d["hits"], d["n"], d["accuracy"]) == (5, 5, 1.0)
        assert d["p_value"] == pytest.approx(1 / 120) and "exact" in d["p_method"]
        assert d["self_r"] > 0.8 and d["i_diff"] > 0.2 and d["residual"]["i_diff"] > d["i_diff"]
        assert d["fit_r"] is None                          # not a twin
    for m in ("ec_twin_simulated", "ec_twin_analytic", "global_twin", "partial_corr", "ec"):
        assert xs["methods"][m] is None                    # no input: None, not zeros
    assert xs["icc"]["empirical_fc"]["median"] > 0.5 and xs["icc"]["ec"] is None
    assert "session 1 → 2" in xs["headline"] and "2 → 1" in xs["headline"]


def test_pure_noise_is_near_chance():
    sessions, fc = _cohort(30, individual=0.0, noise=1.0, seed=7)
    xs = cross_session(sessions, list(fc), fc, n_perm=2000)
    for d in xs["methods"]["empirical_fc"]["directions"]:
        assert d["hits"] <= 4 and d["p_value"] > 0.05 and "Monte Carlo" in d["p_method"]
        assert abs(d["residual"]["i_diff"]) < 0.1
    assert abs(xs["icc"]["empirical_fc"]["median"]) < 0.15


def test_an_overfitted_twin_fits_perfectly_and_identifies_no_one_across_sessions():
    """What the cross-session test is for: a twin that copies its own session's noise fits with r = 1
    on that session, and the unseen session shows it carries no fingerprint."""
    sessions, fc = _cohort(20, individual=0.0, noise=1.0, seed=8)
    xs = cross_session(sessions, list(fc), fc, global_twin_fc=fc, n_perm=2000)
    g = xs["methods"]["global_twin"]
    assert g["twin"] is True
    for d in g["directions"]:
        assert d["fit_r"] == pytest.approx(1.0)
        assert d["hits"] <= 4 and d["p_value"] > 0.05


def test_twins_against_the_other_sessions_empirical_fc():
    sessions, fc = _cohort(6, individual=1.0, noise=0.3, seed=9)
    rng = np.random.default_rng(9)
    twin = {sid: np.tanh(np.arctanh(np.clip(m, -0.99, 0.99)) + 0.5 * _sym(rng.standard_normal((N, N))))
            for sid, m in fc.items()}
    xs = cross_session(sessions, list(fc), fc, ec_twin_simulated_fc=twin, wall_s={"ec_twin_simulated": 4.2})
    t = xs["methods"]["ec_twin_simulated"]
    assert t["wall_s"] == 4.2 and t["missing"] == []
    ab = t["directions"][0]
    ids_a = [xs["subjects"][p][0] for p in xs["participants"]]
    ids_b = [xs["subjects"][p][1] for p in xs["participants"]]
    want = stats.similarity_matrix([twin[i] for i in ids_a], [fc[i] for i in ids_b])
    np.testing.assert_allclose(ab["matrix"], np.round(want, 4))
    assert ab["self_r"] == pytest.approx(np.median(np.diag(want)))
    fit = np.diag(stats.similarity_matrix([twin[i] for i in ids_a], [fc[i] for i in ids_a]))
    assert ab["fit_r"] == pytest.approx(np.median(fit)) and ab["fit_r"] > ab["self_r"]
    assert ab["hits"] == 6
    assert "EC twin, simulated identifies 6/6" in xs["headline"]


def test_a_missing_subject_is_never_a_hit_and_is_listed():
    sessions, fc = _cohort(5, individual=1.0, noise=0.3, seed=10)
    twin = {sid: m for sid, m in fc.items() if sid != "P03_ses-1"}
    twin["P01_ses-2"] = np.full((N, N), np.nan)       # a twin whose every re-simulation diverged
    xs = cross_session(sessions, list(fc), fc, ec_twin_analytic_fc=twin)
    t = xs["methods"]["ec_twin_analytic"]
    assert t["missing"] == ["P03_ses-1", "P01_ses-2"]
    ab, ba = t["directions"]
    assert ab["hits"] == 4 and np.isnan(np.asarray(ab["matrix"], float)[3]).all()
    assert ba["hits"] == 4 and np.isnan(np.asarray(ba["matrix"], float)[1]).all()


def test_ec_is_compared_on_the_common_mask_so_the_sc_zero_pattern_cannot_identify():
    """EC with an individual SC mask but random strengths: all off-diagonal edges identify everyone through
    the zeros alone; on the edges every EC was fitted on, nothing is left to identify."""
    sessions, fc = _cohort(8, individual=0.0, noise=1.0, seed=11)
    rng = np.random.default_rng(11)
    ec, masks = {}, {}
    for p, d in sessions.items():
        mask = rng.random((N, N)) < 0.6
        mask[:4, :4] = True                               # edges everyone shares
        np.fill_diagonal(mask, False)
        for sid in d.values():
            ec[sid] = np.where(mask, rng.random((N, N)), 0.0)
            masks[sid] = mask
    fake = cross_session(sessions, list(fc), fc, ec=ec)["methods"]["ec"]
    assert all(d["hits"] == 8 for d in fake["directions"]) and "zero pattern" in fake["edges"]
    xs = cross_session(sessions, list(fc), fc, ec=ec, ec_masks=masks)
    honest = xs["methods"]["ec"]
    common = np.logical_and.reduce(list(masks.values()))
    assert honest["n_edges"] == common.sum() >= 12 and "mask" in honest["edges"]
    assert all(d["hits"] <= 3 for d in honest["directions"])
    assert xs["icc"]["ec"]["n_edges"] == common.sum()


def test_partial_correlation_row_and_icc_and_json():
    sessions, fc = _cohort(5, individual=1.0, noise=0.3, seed=12)
    rng = np.random.default_rng(12)
    pc = {sid: stats.partial_correlation(rng.standard_normal((200, N)) @ (np.eye(N) + 0.3 * m)) for sid, m in fc.items()}
    xs = cross_session(sessions, list(fc), fc, partial_corr=pc)
    assert xs["methods"]["partial_corr"]["directions"][0]["n"] == 5
    assert xs["icc"]["partial_corr"]["edges"] == "upper triangle"
    q = xs["icc"]["partial_corr"]
    assert q["q1"] <= q["median"] <= q["q3"] and q["n_edges"] == N * (N - 1) // 2
    doc = json.loads(json.dumps(jsonable(xs), allow_nan=False))
    assert list(doc["methods"]) == list(METHODS) and doc["methods"]["ec"] is None


def test_bad_inputs_say_what_is_wrong():
    sessions, fc = _cohort(3, individual=1.0, noise=0.3)
    with pytest.raises(ValueError, match="unknown methods"):
        cross_session(sessions, list(fc), fc, wall_s={"ec_twins": 1.0})
    with pytest.raises(ValueError, match="no empirical FC"):
        cross_session(sessions, list(fc), {k: v for k, v in fc.items() if k != "P01_ses-2"})
    with pytest.raises(ValueError, match=r"ec of subject P00_ses-1 has shape \(3, 3\)"):
        cross_session(sessions, list(fc), fc, ec={"P00_ses-1": np.eye(3)})
    assert cross_session({}, [], {}) is None


def test_within_session_note_names_the_problem_and_the_fix():
    note = within_session_note()
    assert "cannot tell a fingerprint" in note and "overfitting" in note and "split: 2" in note
