"""Intervals and paired tests (reasoning_lab.stats), checked against hand-worked cases."""

import math

import pytest

from reasoning_lab.stats import bootstrap_ci, holm, mcnemar_p, paired_bootstrap, paired_p_value, wilson


def test_holm_matches_a_hand_worked_case():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_paired_bootstrap_and_wilson_bracket_their_estimates():
    a = [False] * 50 + [True] * 50
    b = [True] * 70 + [False] * 30
    low, high = paired_bootstrap(a, b)
    assert low < 0.2 < high
    assert wilson(0, 10)[0] == 0.0 and 0.0 < wilson(0, 10)[1] < 0.35 and wilson(50, 100) == pytest.approx([0.4038, 0.5962], abs=1e-3)


def test_sign_flip_test_is_one_sided_and_exact_for_no_difference():
    assert paired_p_value([1.0, 2.0], [1.0, 2.0]) == 1.0
    assert paired_p_value([2.0] * 20, [1.0] * 20) < 0.001 and paired_p_value([1.0] * 20, [2.0] * 20) > 0.99



def test_bootstrap_ci_brackets_the_mean_and_is_seeded():
    values = [1.0] * 30 + [0.0] * 70
    low, high = bootstrap_ci(values, 2000, seed=0)
    assert low < 0.3 < high and 0.18 < low and high < 0.42
    assert bootstrap_ci(values, 2000, seed=0) == [low, high]
    assert bootstrap_ci([1.0] * 10, 500, 0) == [1.0, 1.0] and bootstrap_ci([], 10, 0) == [0.0, 0.0]


def test_mcnemar_counts_only_the_discordant_pairs():
    # both right on 40, both wrong on 25, B only right on 30, A only right on 5: 2 * P(X <= 5), X ~ Bin(35, 1/2)
    a = [True] * 40 + [False] * 25 + [False] * 30 + [True] * 5
    b = [True] * 40 + [False] * 25 + [True] * 30 + [False] * 5
    assert mcnemar_p(a, b) == pytest.approx(2 * sum(math.comb(35, i) for i in range(6)) / 2**35)
    assert mcnemar_p(a, a) == 1.0
