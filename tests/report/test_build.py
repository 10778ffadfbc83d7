"""The pure parts of explorer.report.build (no Ray, no simulation) against hand-checkable cases."""

from __future__ import annotations

import copy
import json
import math
from collections import Counter

import numpy as np
import pytest
from study_configs import FAST

from explorer.cohort.types import Subject
from explorer.config import parse_config
from explorer.report import build, stats
from explorer.search import subject_spaces, trial_seed

N = 6  # regions of the fake subjects

# ------------------------------------------------------------------------------ helpers


def _sym(rng: np.random.Generator, n: int = N, scale: float = 1.0) -> np.ndarray:
    a = rng.normal(scale=scale, size=(n, n))
    return (a + a.T) / 2


def _fc(rng: np.random.Generator) -> np.ndarray:
    m = np.tanh(_sym(rng))
    np.fill_diagonal(m, 1.0)
    return m


def _subject(rng: np.random.Generator, sid: str, **kw) -> Subject:
    w = np.abs(_sym(rng))
    np.fill_diagonal(w, 0.0)
    lengths = np.abs(_sym(rng, scale=50.0)) + 10.0
    np.fill_diagonal(lengths, 0.0)
    return Subject(id=sid, weights=w, lengths=lengths, labels=[f"R{i}" for i in range(N)], fc=_fc(rng), **kw)


@pytest.fixture
def cfg(tmp_path):
    data = copy.deepcopy(FAST)
    data["studies_dir"] = str(tmp_path / "studies")
    data["params"]["fixed"] = {"f": [0.05, 0.05, 0.06, 0.06, 0.07, 0.07]}  # per-region, numbers (no bold_peak)
    return parse_config(data)


SETTINGS = {"duration_s": 40.0, "dt_ms": 1.0, "noise_sigma": 0.02, "integrator": "euler"}
PARAMS = {"G": 0.5, "a": -0.02, "f": [0.05] * N}


# ------------------------------------------------------------------------------ simulation_key


def test_simulation_key_same_inputs_same_key():
    k1 = build.simulation_key("hopf", dict(SETTINGS), "abc", copy.deepcopy(PARAMS), 7)
    # other dict order, numpy array for a list, int for an integral float: the same simulation
    k2 = build.simulation_key("hopf", dict(reversed(list(SETTINGS.items()))), "abc",
                              {"f": np.array([0.05] * N), "a": -0.02, "G": 0.5}, 7)
    assert k1 == k2
    assert isinstance(k1, str) and len(k1) == 20
    assert build.simulation_key("hopf", {**SETTINGS, "duration_s": 40}, "abc", PARAMS, 7) == k1


@pytest.mark.parametrize("change", [
    {"model": "rww"},
    {"settings": {**SETTINGS, "duration_s": 41.0}},
    {"settings": {**SETTINGS, "integrator": "heun"}},
    {"settings": {**SETTINGS, "velocity": 20.0}},
    {"connectome": "abd"},
    {"params": {**PARAMS, "G": 0.5001}},
    {"params": {**PARAMS, "a": -0.03}},
    {"params": {**PARAMS, "f": [0.05] * (N - 1) + [0.06]}},   # one region of a per-region parameter
    {"params": {**PARAMS, "f": [0.05] * (N - 1)}},            # one region fewer
    {"params": {k: v for k, v in PARAMS.items() if k != "a"}},
    {"seed": 8},
])
def test_simulation_key_changes_with_any_input(change):
    base = {"model": "hopf", "settings": SETTINGS, "connectome": "abc", "params": PARAMS, "seed": 7}
    assert build.simulation_key(**base) != build.simulation_key(**{**base, **change})


def test_simulation_key_ignores_float_noise_below_1e_12():
    k = build.simulation_key("hopf", SETTINGS, "abc", PARAMS, 7)
    noisy = {"G": 0.5 + 1e-14, "a": -0.02 - 1e-14, "f": [0.05 + 1e-15] * N}
    assert build.simulation_key("hopf", {**SETTINGS, "noise_sigma": 0.02 + 1e-14}, "abc", noisy, 7) == k
    # 1e-9 is a real change
    assert build.simulation_key("hopf", SETTINGS, "abc", {**PARAMS, "G": 0.5 + 1e-9}, 7) != k


def test_connectome_digest_depends_on_weights_and_lengths():
    rng = np.random.default_rng(0)
    w, ln = np.abs(_sym(rng)), np.abs(_sym(rng))
    d = build.connectome_digest(w, ln)
    assert d == build.connectome_digest(w.copy(), ln.copy())
    assert d == build.connectome_digest(w.tolist(), ln.tolist())      # arrays hashed as float64
    w2 = w.copy()
    w2[0, 1] += 1e-6
    assert build.connectome_digest(w2, ln) != d
    ln2 = ln.copy()
    ln2[2, 3] += 1.0
    assert build.connectome_digest(w, ln2) != d


# ------------------------------------------------------------------------------ resim_seed


def test_resim_seed_deterministic_and_fresh():
    assert build.resim_seed(0, "s1", 0) == build.resim_seed(0, "s1", 0)
    seeds = {build.resim_seed(0, s, k) for s in ("s1", "s2", "s3") for k in range(5)}
    assert len(seeds) == 15                                   # differs across k and subjects
    assert build.resim_seed(0, "s1", 0) != build.resim_seed(1, "s1", 0)  # and across base seeds
    for base in (0, 1, 42):
        for s in ("s1", "NAP_001"):
            for k in range(20):
                r = build.resim_seed(base, s, k)
                assert isinstance(r, int) and 0 <= r < 2**30
                # never the search's seed of the same subject and number
                assert r != trial_seed(base, s, k)
                assert r not in {trial_seed(base, s, n) for n in range(200)}


# ------------------------------------------------------------------------------ plan


BEST = {"s1": {"G": 0.5, "a": -0.02}, "s2": {"G": 1.5, "a": 0.01}, "s3": {"G": 1.0, "a": -0.05}}
MEDIAN = {"G": 1.0, "a": -0.02}


@pytest.fixture
def subjects():
    rng = np.random.default_rng(11)
    return [_subject(rng, sid) for sid in ("s1", "s2", "s3")]


def _plan(cfg, subjects, best, seeds):
    return build.plan(cfg, subjects, best, seeds, subject_spaces(cfg, subjects))


def _by(requests, kind, subject):
    return [r for r in requests if r["kind"] == kind and r["subject"] == subject]


def test_plan_counts_and_params(cfg, subjects):
    seeds = 2
    payloads, requests = _plan(cfg, subjects, BEST, seeds)
    assert len(requests) == len(build.KINDS) * seeds * len(subjects)
    assert Counter((r["kind"], r["subject"]) for r in requests) == {
        (k, s.id): seeds for k in build.KINDS for s in subjects}
    fixed_f = [0.05, 0.05, 0.06, 0.06, 0.07, 0.07]
    for s in subjects:
        twin, sc_only, params_only = (_by(requests, k, s.id) for k in build.KINDS)
        for r in twin + params_only:
            assert r["params"] == {"f": fixed_f, **BEST[s.id]}
            assert r["params"] == subject_spaces(cfg, subjects)[s.id].expand(BEST[s.id])
        for r in sc_only:                                    # the cohort-median free values, own fixed ones
            assert r["params"]["G"] == pytest.approx(MEDIAN["G"])
            assert r["params"]["a"] == pytest.approx(MEDIAN["a"])
            assert r["params"]["f"] == fixed_f
        assert {r["connectome"] for r in twin + sc_only} == {s.id}
        assert payloads[s.id]["weights"] is s.weights
        assert payloads[s.id]["lengths"] is s.lengths
        assert payloads[s.id]["bold_tr_s"] == 2.0             # simulation.bold_tr_s (these subjects have no TR)


def test_plan_median_of_even_cohort(cfg, subjects):
    rng = np.random.default_rng(5)
    four = subjects + [_subject(rng, "s4")]
    best = {**BEST, "s4": {"G": 2.0, "a": 0.04}}
    _, requests = _plan(cfg, four, best, 1)
    sc_only = [r for r in requests if r["kind"] == "sc_only_twin"]
    assert sorted(r["subject"] for r in sc_only) == sorted(s.id for s in four)   # one per subject (1 seed)
    for r in sc_only:
        assert r["params"]["G"] == pytest.approx((1.0 + 1.5) / 2)
        assert r["params"]["a"] == pytest.approx((-0.02 + 0.01) / 2)


def test_plan_params_only_runs_on_group_mean(cfg, subjects):
    payloads, requests = _plan(cfg, subjects, BEST, 1)
    groups = {r["connectome"] for r in requests if r["kind"] == "params_only_twin"}
    assert len(groups) == 1
    group = groups.pop()
    assert group.startswith(build.GROUP_MEAN)
    assert set(payloads) == {"s1", "s2", "s3", group}
    mean_w = (subjects[0].weights + subjects[1].weights + subjects[2].weights) / 3
    mean_l = (subjects[0].lengths + subjects[1].lengths + subjects[2].lengths) / 3
    np.testing.assert_allclose(payloads[group]["weights"], mean_w, rtol=0, atol=1e-12)
    np.testing.assert_allclose(payloads[group]["lengths"], mean_l, rtol=0, atol=1e-12)
    np.testing.assert_allclose(payloads[group]["fc"], np.mean([s.fc for s in subjects], axis=0), atol=1e-12)
    assert payloads[group]["labels"] == subjects[0].labels
    assert group == f"{build.GROUP_MEAN}-{build.connectome_digest(payloads[group]['weights'], mean_l)}"


def test_plan_seeds_shared_within_subject_and_k(cfg, subjects):
    seeds = 3
    _, requests = _plan(cfg, subjects, BEST, seeds)
    for s in subjects:
        per_kind = {k: [r["seed"] for r in _by(requests, k, s.id)] for k in build.KINDS}
        expected = [build.resim_seed(cfg.sampler.seed, s.id, k) for k in range(seeds)]
        for k in build.KINDS:
            assert per_kind[k] == expected
        assert len(set(expected)) == seeds


def test_plan_keys(cfg, subjects):
    settings = cfg.simulation.simulate_kwargs()
    _, requests = _plan(cfg, subjects, BEST, 2)
    keys = [r["key"] for r in requests]
    assert len(keys) == len(build.KINDS) * 2 * len(subjects)
    assert len(set(keys)) == len(keys)                       # every simulation here is distinct
    own = {s.id: build.connectome_digest(s.weights, s.lengths) for s in subjects}
    for r in requests:
        digest = own[r["subject"]] if r["connectome"] == r["subject"] else r["connectome"]
        assert r["key"] == build.simulation_key(cfg.model, settings, digest, r["params"], r["seed"])
    # same inputs, same plan
    _, again = _plan(cfg, subjects, copy.deepcopy(BEST), 2)
    assert [r["key"] for r in again] == keys


def test_plan_changed_best_only_resimulates_that_subject(cfg, subjects):
    _, before = _plan(cfg, subjects, BEST, 2)
    best = copy.deepcopy(BEST)
    best["s1"]["G"] = 0.6                                  # the median (1.0, -0.02) does not move
    _, after = _plan(cfg, subjects, best, 2)
    changed = {(r["kind"], r["subject"]) for r, q in zip(before, after) if r["key"] != q["key"]}
    assert changed == {("twin", "s1"), ("params_only_twin", "s1")}


def test_plan_identical_simulations_share_a_key(cfg, subjects):
    best = copy.deepcopy(BEST)
    best["s3"] = dict(MEDIAN)                               # s3 is the typical subject: twin == sc_only_twin
    _, requests = _plan(cfg, subjects, best, 2)
    twin = [r["key"] for r in _by(requests, "twin", "s3")]
    sc_only = [r["key"] for r in _by(requests, "sc_only_twin", "s3")]
    assert twin == sc_only
    assert len({r["key"] for r in requests}) == len(requests) - 2


# ------------------------------------------------------------------------------ individuality


def _off_diag_mean(m: np.ndarray) -> float:
    return float(m[~np.eye(m.shape[0], dtype=bool)].mean())


def test_individuality_twins_match_their_subjects():
    rng = np.random.default_rng(3)
    n = 5
    emp = [_fc(rng) for _ in range(n)]
    twin = [e + _sym(rng, scale=0.01) for e in emp]
    sc = [np.abs(_sym(rng)) for _ in range(n)]
    out = build.individuality(twin, emp, sc, None, None)
    assert out["accuracy"] == 1.0 and out["accuracy_subject_to_twin"] == 1.0
    assert out["p_value"] == pytest.approx(1 / math.factorial(n))
    assert out["n"] == n and out["matrix"].shape == (n, n)
    assert out["residual"]["accuracy"] == 1.0
    # empirical baseline: no accuracy, off-diagonal mean of the subjects' FC correlations
    e = out["baselines"]["empirical"]
    assert e["accuracy"] is None and e["p_value"] is None and e["i_diff"] is None
    ups = np.stack([stats.upper(m) for m in emp])
    corr = np.corrcoef(ups)
    hand = sum(corr[i, j] for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    assert e["mean_off_diagonal"] == pytest.approx(hand, abs=1e-12)
    np.testing.assert_allclose(np.diag(e["matrix"]), 1.0, atol=1e-12)
    # twin identification mean off-diagonal is that of the twin x subject matrix
    assert out["mean_off_diagonal"] == pytest.approx(_off_diag_mean(out["matrix"]), abs=1e-12)
    # baselines: SC against empirical FC; no sc_only / params_only given
    assert out["baselines"]["sc"]["matrix"].shape == (n, n)
    np.testing.assert_allclose(out["baselines"]["sc"]["matrix"], stats.similarity_matrix(sc, emp), atol=1e-12)
    assert out["baselines"]["sc_only_twin"] is None and out["baselines"]["params_only_twin"] is None


def test_individuality_baselines_when_given():
    rng = np.random.default_rng(4)
    n = 4
    emp = [_fc(rng) for _ in range(n)]
    twin = [e + _sym(rng, scale=0.01) for e in emp]
    sc = [np.abs(_sym(rng)) for _ in range(n)]
    same = [np.mean(emp, axis=0) for _ in range(n)]            # every twin the same FC: all rows peak alike
    out = build.individuality(twin, emp, sc, same, list(twin))
    assert out["baselines"]["sc_only_twin"]["accuracy"] == 1 / n  # only the row of that common peak hits
    assert out["baselines"]["sc_only_twin"]["accuracy_subject_to_twin"] == 0.0  # columns all tied: failures
    assert out["baselines"]["params_only_twin"]["accuracy"] == 1.0
    assert "median" in out["baselines"]["sc_only_twin"]["note"]


def _typical_subject_case(n: int = 5):
    rng = np.random.default_rng(8)
    common = _sym(rng)
    emp = [common + _sym(rng, scale=0.7) for _ in range(n)]
    mean = np.mean(emp, axis=0)
    twin = [mean + 1e-3 * (e - mean) for e in emp]            # the mean FC + a tiny subject-specific part
    return twin, emp


def test_individuality_typical_subject_effect():
    n = 5
    twin, emp = _typical_subject_case(n)
    out = build.individuality(twin, emp, [np.abs(m) for m in emp], None, None)
    winners = np.argmax(out["matrix"], axis=1)
    assert len(set(winners.tolist())) == 1                     # every twin peaks on the same subject
    assert out["accuracy"] <= 1 / n
    assert out["residual"]["accuracy"] == 1.0
    assert out["residual"]["p_value"] == pytest.approx(1 / math.factorial(n))
    np.testing.assert_allclose(np.diag(out["residual"]["matrix"]), 1.0, atol=1e-9)


# ------------------------------------------------------------------------------ test_retest


class _Cohort:
    def __init__(self, sessions):
        self._sessions = sessions

    def sessions(self):
        return self._sessions


PEOPLE = ["P1", "P2", "P3", "P4"]


def _retest_case():
    rng = np.random.default_rng(21)
    sessions = {p: {"1": f"{p}_ses-1", "2": f"{p}_ses-2"} for p in PEOPLE}
    fitted = [sid for p in PEOPLE for sid in sessions[p].values()]
    base = {p: _fc(rng) for p in PEOPLE}
    best, twin_fc, emp_fc = {}, {}, {}
    for i, p in enumerate(PEOPLE):
        for ses, sid in sessions[p].items():
            best[sid] = {"G": 0.3 * (i + 1), "a": float(rng.uniform(-0.1, 0.05))}
            twin_fc[sid] = base[p] + _sym(rng, scale=0.01)
            emp_fc[sid] = base[p] + _sym(rng, scale=0.01)
    return _Cohort(sessions), fitted, best, twin_fc, emp_fc


def test_test_retest_icc_and_cross_session():
    cohort, fitted, best, twin_fc, emp_fc = _retest_case()
    out = build.test_retest(cohort, fitted, best, ["G", "a"], twin_fc, emp_fc)
    assert out["participants"] == PEOPLE
    assert out["sessions"] == ["1", "2"]
    assert out["icc"]["G"] == pytest.approx(1.0)                # identical across sessions
    assert set(out["icc"]) == {"G", "a"}
    cross = out["cross_session"]
    assert cross["matrix"].shape == (4, 4)
    assert cross["accuracy"] == 1.0 and cross["p_value"] == pytest.approx(1 / 24)
    expected = stats.similarity_matrix([twin_fc[f"{p}_ses-1"] for p in PEOPLE],
                                       [emp_fc[f"{p}_ses-2"] for p in PEOPLE])
    np.testing.assert_allclose(cross["matrix"], expected, atol=1e-12)
    assert out["empirical_fingerprint"]["accuracy"] == 1.0


def test_test_retest_icc_hand_checked():
    cohort, fitted, best, twin_fc, emp_fc = _retest_case()
    data = np.array([[1.0, 2.0], [3.0, 3.0], [5.0, 7.0], [2.0, 2.0]])
    for (x, y), p in zip(data, PEOPLE):
        best[f"{p}_ses-1"]["a"], best[f"{p}_ses-2"]["a"] = x, y
    out = build.test_retest(cohort, fitted, best, ["a"], twin_fc, emp_fc)
    # Shrout & Fleiss ICC(2,1) by hand: n=4, k=2
    gm = data.mean()
    msr = 2 * ((data.mean(axis=1) - gm) ** 2).sum() / 3
    msc = 4 * ((data.mean(axis=0) - gm) ** 2).sum() / 1
    sse = ((data - gm) ** 2).sum() - 3 * msr - msc
    mse = sse / 3
    assert out["icc"]["a"] == pytest.approx((msr - mse) / (msr + mse + 2 * (msc - mse) / 4))


def test_test_retest_needs_two_participants_with_sessions():
    cohort, fitted, best, twin_fc, emp_fc = _retest_case()
    one = _Cohort({"P1": {"1": "P1_ses-1", "2": "P1_ses-2"}, "P2": {"1": "P2_ses-1"}})
    assert build.test_retest(one, fitted, best, ["G"], twin_fc, emp_fc) is None
    # sessions that were not fitted do not count
    only = [s for s in fitted if s.startswith("P1") or s == "P2_ses-1" or s.startswith("P3_ses-1")]
    assert build.test_retest(cohort, only, best, ["G"], twin_fc, emp_fc) is None
    assert build.test_retest(object(), fitted, best, ["G"], twin_fc, emp_fc) is None
    assert build.test_retest(_Cohort({}), fitted, best, ["G"], twin_fc, emp_fc) is None


def test_test_retest_skips_unfitted_participants():
    cohort, fitted, best, twin_fc, emp_fc = _retest_case()
    out = build.test_retest(cohort, [s for s in fitted if s != "P4_ses-2"], best, ["G"], twin_fc, emp_fc)
    assert out["participants"] == ["P1", "P2", "P3"]
    assert out["cross_session"]["matrix"].shape == (3, 3)


# ------------------------------------------------------------------------------ recovery


def test_recovery_hand_checked():
    rng = np.random.default_rng(30)
    subs = [_subject(rng, "s1", phenotype={"true_G": 1.0, "age": 30}),
            _subject(rng, "s2", phenotype={"true_G": "2.0"}),
            _subject(rng, "s3", phenotype={"true_G": 4.0}),
            _subject(rng, "s4", phenotype={"age": 40})]          # no ground truth: left out
    best = {"s1": {"G": 1.1, "a": 0.0}, "s2": {"G": 1.6, "a": 0.0}, "s3": {"G": 4.0, "a": 0.0},
            "s4": {"G": 9.0, "a": 0.0}}
    out = build.recovery(subs, best, ["G", "a"])
    assert set(out) == {"G"}                                    # no true_a anywhere
    g = out["G"]
    assert g["subjects"] == ["s1", "s2", "s3"]
    assert g["true"] == [1.0, 2.0, 4.0] and g["recovered"] == [1.1, 1.6, 4.0]
    np.testing.assert_allclose(g["rel_error"], [0.1, 0.2, 0.0], atol=1e-12)
    assert g["rel_error_median"] == pytest.approx(0.1)


def test_recovery_none_without_truth_and_zero_truth():
    rng = np.random.default_rng(31)
    subs = [_subject(rng, "s1", phenotype={"age": 30}), _subject(rng, "s2")]
    best = {"s1": {"G": 1.0}, "s2": {"G": 2.0}}
    assert build.recovery(subs, best, ["G"]) is None
    zero = [_subject(rng, "s1", phenotype={"true_G": 0.0})]
    out = build.recovery(zero, best, ["G"])
    assert out["G"]["rel_error_median"] is None                # |x - 0| / 0 is undefined


# ------------------------------------------------------------------------------ phenotype_link


def _bh(p):
    p = np.asarray(p, dtype=float)
    m = p.size
    order = np.argsort(p)
    q = np.empty(m)
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, p[i] * m / rank)
        q[i] = running
    return q


def test_phenotype_link_columns_rho_and_q():
    rng = np.random.default_rng(40)
    g = [0.2, 0.9, 0.5, 1.4, 1.1]
    a = [0.01, -0.03, 0.04, 0.0, -0.08]
    noise = [3.0, 1.0, 4.0, 1.5, 9.0]
    subs = [_subject(rng, f"s{i}", phenotype={"age": 10 * g[i] + 5, "score": noise[i], "group": "A",
                                               "true_G": g[i], "sim_seed": i, "flag": True})
            for i in range(5)]
    best = {f"s{i}": {"G": g[i], "a": a[i]} for i in range(5)}
    rows = build.phenotype_link(subs, best, ["G", "a"])
    assert [(r["param"], r["column"]) for r in rows] == [("G", "age"), ("G", "score"), ("a", "age"), ("a", "score")]
    age = rows[0]
    assert age["rho"] == pytest.approx(1.0) and age["n"] == 5
    assert age["p_value"] == pytest.approx(2 / 120)             # identity and reversal reach |rho| = 1
    for r in rows:
        direct = stats.spearman_permutation(np.array([best[s.id][r["param"]] for s in subs]),
                                            np.array([s.phenotype[r["column"]] for s in subs], dtype=float))
        assert r["rho"] == pytest.approx(direct["rho"])
        assert r["p_value"] == pytest.approx(direct["p_value"])
    np.testing.assert_allclose([r["q_value"] for r in rows], _bh([r["p_value"] for r in rows]), atol=1e-12)


def test_phenotype_link_averages_sessions_per_participant():
    rng = np.random.default_rng(41)
    subs, best = [], {}
    d = [5.0, -5.0, 5.0, -5.0]                    # neither session alone is monotone with age; their mean is
    for k in range(4):
        for ses, sign in (("1", 1), ("2", -1)):
            sid = f"P{k}_ses-{ses}"
            subs.append(_subject(rng, sid, participant=f"P{k}", session=ses, phenotype={"age": 20 + k}))
            best[sid] = {"G": k + sign * d[k]}
    first = stats.spearman_permutation(np.array([k + d[k] for k in range(4)]), np.arange(4.0))
    assert first["rho"] < 0.5
    rows = build.phenotype_link(subs, best, ["G"])
    assert len(rows) == 1
    assert rows[0]["n"] == 4                                  # participants, not sessions
    assert rows[0]["rho"] == pytest.approx(1.0)
    assert rows[0]["p_value"] == pytest.approx(2 / 24)


def test_phenotype_link_none_without_numeric_columns():
    rng = np.random.default_rng(42)
    subs = [_subject(rng, f"s{i}", phenotype={"true_G": 1.0, "sim_seed": 3, "site": "x"}) for i in range(4)]
    assert build.phenotype_link(subs, {f"s{i}": {"G": 1.0} for i in range(4)}, ["G"]) is None


# ------------------------------------------------------------------------------ jsonable


def test_jsonable():
    x = {"a": np.array([1.0, np.nan, np.inf]), "b": np.int64(3), "c": np.float32(1.5),
         "d": [(-np.inf, np.bool_(True)), {"e": np.arange(4).reshape(2, 2)}], 1: float("nan"), "s": "t", "n": None}
    out = build.jsonable(x)
    assert out == {"a": [1.0, None, None], "b": 3, "c": 1.5, "d": [[None, True], {"e": [[0, 1], [2, 3]]}],
                   "1": None, "s": "t", "n": None}
    assert type(out["b"]) is int and type(out["c"]) is float and type(out["d"][0][1]) is bool
    assert type(out["d"][1]["e"][0][0]) is int
    json.dumps(out, allow_nan=False)


# ------------------------------------------------------------------------------ notes_for


def test_notes_for_typical_subject_and_small_n():
    n = 5
    twin, emp = _typical_subject_case(n)
    ind = build.individuality(twin, emp, [np.abs(m) for m in emp], None, None)
    ids = [f"s{i}" for i in range(n)]
    report = build.jsonable({"subjects": ids, "individuality": ind})
    notes = " ".join(build.notes_for(report))
    winner = ids[int(np.argmax(ind["matrix"][0]))]
    assert f"{n} of {n} twins match subject {winner} best" in notes
    assert "typical subject" in notes
    assert f"With the cohort-mean FC removed from both sides, {n} of {n} twins" in notes
    assert "cannot mean much" in notes
    assert f"{1 / math.factorial(n):.3g}" in notes


def test_notes_for_no_typical_effect_when_twins_are_individual():
    rng = np.random.default_rng(50)
    n = 5
    emp = [_fc(rng) for _ in range(n)]
    ind = build.individuality([e + _sym(rng, scale=0.01) for e in emp], emp, [np.abs(e) for e in emp], None, None)
    notes = " ".join(build.notes_for(build.jsonable({"subjects": [f"s{i}" for i in range(n)],
                                                     "individuality": ind})))
    assert f"{n} of {n} twins are closer to their own subject" in notes
    assert "typical subject" not in notes


def test_notes_for_large_cohort_has_no_small_n_warning():
    ids = [f"s{i}" for i in range(build.PHENOTYPE_MIN_N)]
    assert not any("cannot mean much" in s for s in build.notes_for({"subjects": ids, "individuality": None}))
    assert any("cannot mean much" in s for s in build.notes_for({"subjects": ids[:9], "individuality": None}))


def test_notes_for_diverged_twins_are_not_a_typical_subject():
    """Twins whose FC is NaN (every seed diverged) have no best match: they must not all 'win' on subject 0."""
    rng = np.random.default_rng(51)
    n = 5
    emp = [_fc(rng) for _ in range(n)]
    twin = [emp[0] + _sym(rng, scale=0.01), emp[1] + _sym(rng, scale=0.01)] + [np.full((N, N), np.nan)] * 3
    ind = build.individuality(twin, emp, [np.abs(e) for e in emp], None, None)
    assert ind["accuracy"] == pytest.approx(2 / n)
    notes = " ".join(build.notes_for(build.jsonable({"subjects": [f"s{i}" for i in range(n)],
                                                     "individuality": ind})))
    assert f"2 of {n} twins are closer to their own subject" in notes
    assert "typical subject" not in notes
    # every twin diverged: no best match anywhere, no crash, no typical-subject claim
    ind = build.individuality([np.full((N, N), np.nan)] * n, emp, [np.abs(e) for e in emp], None, None)
    notes = " ".join(build.notes_for(build.jsonable({"subjects": [f"s{i}" for i in range(n)],
                                                     "individuality": ind})))
    assert f"0 of {n} twins are closer" in notes and "typical subject" not in notes


def test_plan_adds_ec_twins_only_for_usable_ecs(cfg, subjects):
    """A subject with a usable EC gets ec_twin re-simulations on a connectome of its own (the EC as weights,
    the same parameters and seeds as its twin); one without keeps only the global twins."""
    from explorer.report import ec_twins

    best, spaces = BEST, subject_spaces(cfg, subjects)
    a, b = subjects[0].id, subjects[1].id
    ec = {"use": True, "key": "k" * 20, "weights": 2.0 * subjects[0].weights}
    payloads, requests = build.plan(cfg, subjects, best, 2, spaces,
                                    ecs={a: ec, b: {"use": False, "key": "x" * 20, "weights": None}})
    ect = [r for r in requests if r["kind"] == ec_twins.KIND]
    assert [r["subject"] for r in ect] == [a, a]
    name = ec_twins.ec_connectome(a, ec["key"])
    assert {r["connectome"] for r in ect} == {name}
    np.testing.assert_array_equal(payloads[name]["weights"], ec["weights"])
    twin = [r for r in requests if r["kind"] == "twin" and r["subject"] == a]
    assert [r["seed"] for r in ect] == [r["seed"] for r in twin] and ect[0]["params"] == twin[0]["params"]
    assert {r["key"] for r in ect}.isdisjoint(r["key"] for r in twin)
