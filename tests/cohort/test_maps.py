"""Regional heterogeneity maps and region groups (explorer.cohort.maps)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from explorer.cohort import demo
from explorer.cohort.maps import (
    GROUP_SOURCES,
    MAP_SOURCES,
    fc_gradient,
    fc_networks,
    group_names,
    groups_from_file,
    map_from_file,
    normalise_map,
    parse_group_source,
    read_region_table,
    sc_strength,
)
from explorer.errors import ConfigError

LABELS = ["A_L", "A_R", "B_L", "B_R", "C_L", "C_R"]


def contingency(a, b) -> np.ndarray:
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    t = np.zeros((ai.max() + 1, bi.max() + 1), dtype=int)
    np.add.at(t, (ai, bi), 1)
    return t


def planted_gradient(n: int = 60, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """FC_ij = exp(-|g_i - g_j| / 0.2) for a known g, skewed towards 1 so that regions with high g
    have more close neighbours, i.e. higher mean FC (what the sign convention keys on)."""
    rng = np.random.default_rng(seed)
    g = np.sqrt(rng.permutation(np.linspace(0.0, 1.0, n)))
    fc = np.exp(-np.abs(g[:, None] - g[None, :]) / 0.2)
    return g, fc


def planted_blocks(sizes=(10, 12, 8, 10), seed: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Block-diagonal FC (0.6 within, 0.1 between, plus noise), regions shuffled."""
    rng = np.random.default_rng(seed)
    truth = np.repeat(np.arange(len(sizes)), sizes)
    truth = truth[rng.permutation(truth.size)]
    fc = np.where(truth[:, None] == truth[None, :], 0.6, 0.1) + 0.08 * rng.standard_normal((truth.size,) * 2)
    fc = (fc + fc.T) / 2
    np.fill_diagonal(fc, 1.0)
    return truth, fc


def blocks_on_a_gradient(sizes=(10, 12, 8, 10), seed: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Blocks laid along a gradient g (block b holds g in [b, b + 0.9] / 4), so that the top-10%
    affinity stays connected across block borders and the principal gradient is well defined."""
    rng = np.random.default_rng(seed)
    truth = np.repeat(np.arange(len(sizes)), sizes)
    g = np.concatenate([b + np.linspace(0.0, 0.9, n) for b, n in enumerate(sizes)]) / len(sizes)
    p = rng.permutation(truth.size)
    truth, g = truth[p], g[p]
    fc = (
        np.where(truth[:, None] == truth[None, :], 0.2, 0.1)
        + 0.4 * np.exp(-np.abs(g[:, None] - g[None, :]) / 0.1)
        + 0.03 * rng.standard_normal((truth.size,) * 2)
    )
    fc = (fc + fc.T) / 2
    np.fill_diagonal(fc, 1.0)
    return truth, fc


@pytest.fixture(scope="module")
def cohort():
    return demo()


# --- normalise_map / sc_strength -------------------------------------------------------------


def test_normalise_map_scales_to_unit_range():
    m = normalise_map([2.0, 4.0, 3.0, 6.0], "test map")
    assert m.dtype == np.float64
    np.testing.assert_allclose(m, [0.0, 0.5, 0.25, 1.0])


@pytest.mark.parametrize("values", [[1.0, 1.0, 1.0], [0.0, np.nan, 1.0], [0.0, np.inf, 1.0]])
def test_normalise_map_refuses_constant_or_non_finite(values):
    with pytest.raises(ConfigError, match="my-map"):
        normalise_map(values, "my-map")


def test_sc_strength_is_row_sums_without_diagonal():
    # W[i, j] = j -> i: row sums are incoming weights; the diagonal (5) must be ignored
    w = np.array([[5.0, 1.0, 2.0], [0.0, 5.0, 1.0], [4.0, 0.0, 5.0]])
    np.testing.assert_allclose(sc_strength(w), [2 / 3, 0.0, 1.0])  # strengths 3, 1, 4


def test_sc_strength_refuses_nan():
    w = np.ones((3, 3))
    w[0, 1] = np.nan
    with pytest.raises(ConfigError, match="subject s1's SC"):
        sc_strength(w, what="subject s1's SC")


# --- fc_gradient ---------------------------------------------------------------------------


def test_fc_gradient_recovers_planted_gradient_with_positive_sign():
    g, fc = planted_gradient()
    grad = fc_gradient(fc)
    assert grad.shape == g.shape and grad.min() == 0.0 and grad.max() == 1.0
    rho = spearmanr(grad, g)[0]
    assert rho > 0.9  # not only |rho|: the sign convention (positive with mean FC) points along g
    mean_fc = (fc.sum(1) - 1.0) / (fc.shape[0] - 1)
    assert np.corrcoef(grad, mean_fc)[0, 1] > 0
    # deterministic, and equivariant under a relabelling of the regions
    np.testing.assert_array_equal(fc_gradient(fc), grad)
    p = np.random.default_rng(5).permutation(g.size)
    np.testing.assert_allclose(fc_gradient(fc[np.ix_(p, p)]), grad[p], atol=1e-9)


def test_fc_gradient_sign_makes_noisy_subjects_agree():
    g, fc = planted_gradient(seed=3)
    rng = np.random.default_rng(4)
    grads = []
    for _ in range(4):  # "subjects": the same planted gradient plus independent symmetric noise
        noise = 0.05 * rng.standard_normal(fc.shape)
        grads.append(fc_gradient(fc + (noise + noise.T) / 2))
    for grad in grads:
        assert spearmanr(grad, g)[0] > 0.9
        assert spearmanr(grad, grads[0])[0] > 0.9


def test_fc_gradient_refuses_nan_and_bad_shape():
    _, fc = planted_gradient(n=20)
    fc[3, 4] = np.nan
    with pytest.raises(ConfigError, match="subject s7's FC.*NaN"):
        fc_gradient(fc, what="subject s7's FC")
    with pytest.raises(ConfigError, match="square"):
        fc_gradient(np.ones((3, 4)))


# --- fc_networks ---------------------------------------------------------------------------


@pytest.mark.parametrize("planted", [planted_blocks, blocks_on_a_gradient])
def test_fc_networks_recovers_planted_blocks_deterministically(planted):
    truth, fc = planted()
    nets = fc_networks(fc, 4)
    assert len(nets) == truth.size
    assert sorted(group_names(nets)) == ["net1", "net2", "net3", "net4"]
    t = contingency(truth, nets)
    # each planted block falls into exactly one net, and each net is exactly one block
    assert np.all((t > 0).sum(axis=1) == 1) and np.all((t > 0).sum(axis=0) == 1)
    assert fc_networks(fc, 4) == nets


def test_fc_networks_names_survive_a_relabelling_of_the_regions():
    truth, fc = blocks_on_a_gradient()
    nets = fc_networks(fc, 4)
    p = np.random.default_rng(9).permutation(truth.size)
    assert fc_networks(fc[np.ix_(p, p)], 4) == [nets[i] for i in p]


def test_fc_networks_names_follow_the_principal_gradient():
    truth, fc = blocks_on_a_gradient()
    nets = np.array(fc_networks(fc, 4))
    grad = fc_gradient(fc)
    means = [grad[nets == f"net{j}"].mean() for j in range(1, 5)]
    assert means == sorted(means)


@pytest.mark.parametrize("k", [1, 21, 0])
def test_fc_networks_refuses_k_out_of_range(k):
    _, fc = planted_blocks()  # N = 40
    with pytest.raises(ConfigError, match=r"2 <= k <= N/2 = 20"):
        fc_networks(fc, k)


# --- real data -----------------------------------------------------------------------------


def test_gradient_and_networks_on_the_demo_cohort(cohort):
    s = cohort.subjects[0]
    t0 = time.perf_counter()
    grad = fc_gradient(s.fc)
    t1 = time.perf_counter()
    nets = fc_networks(s.fc, 7)
    t2 = time.perf_counter()
    print(f"\n{s.id} (N={s.n_regions}): fc_gradient {1e3 * (t1 - t0):.1f} ms, fc_networks7 {1e3 * (t2 - t1):.1f} ms")
    assert grad.shape == (80,) and grad.min() == 0.0 and grad.max() == 1.0
    mean_fc = (s.fc.sum(1) - np.diag(s.fc)) / 79
    assert np.corrcoef(grad, mean_fc)[0, 1] > 0
    assert len(nets) == 80
    assert sorted(group_names(nets)) == [f"net{j}" for j in range(1, 8)]
    assert all(nets.count(f"net{j}") >= 1 for j in range(1, 8))
    assert t2 - t0 < 2.0
    # visual cortex is one network (bilateral calcarine / cuneus / lingual regions together)
    visual = {nets[s.labels.index(lab)] for lab in ("Calcarine_L", "Calcarine_R", "Cuneus_L", "Cuneus_R")}
    assert len(visual) == 1


# --- region tables -------------------------------------------------------------------------


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_map_from_file_in_label_order_with_shuffled_rows(tmp_path):
    p = write(tmp_path, "map.csv", "label,value\nC_R,5\nA_L,0\nB_R,3\nA_R,1\nC_L,4\nB_L,2\n")
    np.testing.assert_allclose(map_from_file(p, LABELS), [0.0, 0.2, 0.4, 0.6, 0.8, 1.0])


def test_groups_from_tsv_in_label_order(tmp_path):
    p = write(tmp_path, "groups.tsv", "group\tlabel\tnote\nvis\tC_L\tx\nmotor\tA_R\t\nvis\tC_R\ty\n"
              "motor\tA_L\tz\nassoc\tB_R\tz\nassoc\tB_L\tz\n")
    groups = groups_from_file(p, LABELS)
    assert groups == ["motor", "motor", "assoc", "assoc", "vis", "vis"]
    assert group_names(groups) == ["motor", "assoc", "vis"]


def test_read_region_table_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.csv.*not found"):
        read_region_table(tmp_path / "nope.csv", LABELS, "value")


def test_read_region_table_missing_column_lists_found_ones(tmp_path):
    p = write(tmp_path, "t.csv", "region,val\nA_L,1\n")
    with pytest.raises(ConfigError) as e:
        read_region_table(p, LABELS, "value")
    msg = str(e.value)
    assert str(p) in msg and "['label', 'value']" in msg and "['region', 'val']" in msg


def test_read_region_table_duplicate_label(tmp_path):
    rows = "".join(f"{lab},1\n" for lab in LABELS) + "B_L,2\n"
    p = write(tmp_path, "t.csv", "label,value\n" + rows)
    with pytest.raises(ConfigError, match=r"t\.csv: duplicate label.*'B_L' \(rows 4 and 8\)"):
        read_region_table(p, LABELS, "value")


def test_read_region_table_unknown_labels_show_the_cohorts_labels(tmp_path):
    rows = "".join(f"{lab},1\n" for lab in LABELS) + "".join(f"X{i},1\n" for i in range(7))
    p = write(tmp_path, "t.csv", "label,value\n" + rows)
    with pytest.raises(ConfigError) as e:
        read_region_table(p, LABELS, "value")
    msg = str(e.value)
    assert str(p) in msg and "7 label(s) the cohort does not have" in msg
    assert "'X0', 'X1', 'X2', 'X3', 'X4' (and 2 more)" in msg and "'X5'" not in msg
    assert "look like 'A_L', 'A_R', 'B_L' (and 3 more)" in msg


def test_read_region_table_missing_cohort_labels(tmp_path):
    p = write(tmp_path, "t.csv", "label,value\nA_L,1\n")
    with pytest.raises(ConfigError) as e:
        read_region_table(p, LABELS, "value")
    msg = str(e.value)
    assert str(p) in msg and "5 cohort label(s) missing from the file: 'A_R', 'B_L', 'B_R', 'C_L', 'C_R'" in msg


def test_read_region_table_empty_cell(tmp_path):
    rows = "".join(f"{lab},{'' if lab == 'B_R' else 1}\n" for lab in LABELS)
    p = write(tmp_path, "t.csv", "label,value\n" + rows)
    with pytest.raises(ConfigError, match=r"t\.csv: empty cell.*label 'B_R' \(row 5\) column 'value'"):
        read_region_table(p, LABELS, "value")


def test_map_from_file_non_numeric_value(tmp_path):
    rows = "".join(f"{lab},{'high' if lab == 'C_L' else 1}\n" for lab in LABELS)
    p = write(tmp_path, "t.csv", "label,value\n" + rows)
    with pytest.raises(ConfigError, match=r"t\.csv: value 'high' of label 'C_L' is not a finite number"):
        map_from_file(p, LABELS)


def test_map_from_file_constant_map_names_the_file(tmp_path):
    p = write(tmp_path, "flat.csv", "label,value\n" + "".join(f"{lab},2\n" for lab in LABELS))
    with pytest.raises(ConfigError, match=r"flat\.csv.*constant"):
        map_from_file(p, LABELS)


# --- sources -------------------------------------------------------------------------------


def test_sources_and_parse_group_source():
    assert set(MAP_SOURCES) == {"sc_strength", "fc_gradient", "fc_gradient_cohort"}
    assert all(isinstance(v, str) and v and "\n" not in v for v in {**MAP_SOURCES, **GROUP_SOURCES}.values())
    assert "fc_networks<k>" in GROUP_SOURCES
    assert parse_group_source("fc_networks7") == 7
    assert parse_group_source("fc_networks12") == 12
    assert parse_group_source("fc_networks") is None
    assert parse_group_source("groups.csv") is None
    assert parse_group_source("fc_networks7.csv") is None
