"""The one ranking of trials (explorer.scoring.ranking): ties, non-finite values, direction, k."""

from __future__ import annotations

import math

import pytest

from explorer.scoring.ranking import best_values, objective_of, rank


def test_rank_maximise_and_minimise_order_by_value():
    values = {10: 0.2, 11: 0.9, 12: -0.5, 13: 0.4}
    assert rank(values, maximise=True) == [11, 13, 10, 12]
    assert rank(values, maximise=False) == [12, 10, 13, 11]


def test_rank_puts_every_non_finite_value_last_in_input_order():
    values = {"a": math.nan, "b": 0.1, "c": math.inf, "d": -math.inf, "e": 0.3}
    assert rank(values, maximise=True) == ["e", "b", "a", "c", "d"]
    assert rank(values, maximise=False) == ["b", "e", "a", "c", "d"]


def test_rank_keeps_input_order_for_ties_either_way():
    values = {5: 1.0, 2: 1.0, 7: 0.5, 3: 1.0}
    assert rank(values, maximise=True) == [5, 2, 3, 7]
    assert rank(values, maximise=False) == [7, 5, 2, 3]


@pytest.mark.parametrize("k, expected", [(None, [1, 0, 2]), (2, [1, 0]), (5, [1, 0, 2]), (0, []), (-1, [])])
def test_rank_k_takes_the_first_k(k, expected):
    assert rank({0: 0.5, 1: 0.7, 2: math.nan}, maximise=True, k=k) == expected


def test_rank_of_nothing_is_empty():
    assert rank({}, maximise=True, k=3) == []


def test_best_values_drops_non_finite_and_keeps_the_best_k():
    assert best_values([0.1, math.nan, 0.8, 0.3, -math.inf], maximise=True, k=2) == [0.8, 0.3]
    assert best_values([0.1, math.nan, 0.8, 0.3], maximise=False) == [0.1, 0.3, 0.8]


def test_objective_of_reads_a_stored_score_before_combining():
    scores = {"fc_r": 0.5, "fcd_ks": 0.2, "fc_r - fcd_ks": 99.0}
    assert objective_of(scores, "fc_r") == 0.5
    assert objective_of(scores, "fc_r - fcd_ks") == 99.0  # stored under its own name
    assert objective_of(scores, "fc_r-fcd_ks") == pytest.approx(0.3)  # computed from its scores


def test_objective_of_reads_none_and_missing_scores_as_nan():
    assert math.isnan(objective_of({"fc_r": None}, "fc_r"))
    assert math.isnan(objective_of({"fc_r": 0.5}, "fc_r + fc_r_residual"))
