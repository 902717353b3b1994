"""engine.agreement against published values and against the libraries called directly on the same data."""

from __future__ import annotations

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss

from engine.agreement import (
    Answer,
    category_counts,
    class_alphas,
    cohen_kappa,
    fleiss_kappa,
    krippendorff_alpha,
    reliability_matrix,
    two_rater_kappa,
)

N = np.nan
# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", the nominal example: 4 coders, 12 units,
# values 1-5 (here 0-4), alpha = 0.743.
KRIPPENDORFF_2011 = np.array(
    [
        [0, 1, 2, 2, 1, 0, 3, 0, 1, N, N, N],
        [0, 1, 2, 2, 1, 1, 3, 0, 1, 4, N, 2],
        [N, 2, 2, 2, 1, 2, 3, 1, 1, 4, 0, N],
        [0, 1, 2, 2, 1, 3, 3, 0, 1, 4, 0, N],
    ]
)
# Fleiss (1971) as on Wikipedia's "Fleiss' kappa": 10 subjects, 14 raters, 5 categories, kappa = 0.210.
FLEISS_TABLE = np.array(
    [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
)


def test_alpha_matches_the_published_example_and_the_library() -> None:
    alpha = krippendorff_alpha(KRIPPENDORFF_2011)
    assert alpha == pytest.approx(0.743, abs=5e-4)
    assert alpha == krippendorff.alpha(reliability_data=KRIPPENDORFF_2011[:, :11], level_of_measurement="nominal")


def test_fleiss_matches_the_published_example_through_a_reliability_matrix() -> None:
    # 14 raters per subject, each rater's value laid out so that the counts per subject are the table's.
    matrix = np.array([np.repeat(np.arange(5), row) for row in FLEISS_TABLE], dtype=float).T
    assert (category_counts(matrix, 5) == FLEISS_TABLE).all()
    kappa, items, raters = fleiss_kappa(matrix, 5)
    assert (items, raters) == (10, 14)
    assert kappa == pytest.approx(0.210, abs=5e-4) and kappa == pytest.approx(sm_fleiss(FLEISS_TABLE, method="fleiss"))


def test_fleiss_keeps_only_items_with_the_chosen_number_of_raters() -> None:
    matrix = np.array([[0, 1, 0, 2], [0, 1, 1, N], [0, 0, 1, N]], dtype=float)
    kappa, items, raters = fleiss_kappa(matrix, 3)  # three items have 3 answers, one has 1
    assert (items, raters) == (3, 3)
    assert kappa == pytest.approx(sm_fleiss(category_counts(matrix[:, :3], 3), method="fleiss"))
    assert fleiss_kappa(matrix, 3, raters=2) == (None, 0, 0)


def test_cohen_with_two_raters_only_on_shared_items() -> None:
    a, b = [0, 1, 1, 2, 0, 1, N], [0, 1, 0, 2, 0, 2, 1]
    kappa, shared = two_rater_kappa(np.array([a, b]))
    assert shared == 6 and kappa == pytest.approx(cohen_kappa_score([0, 1, 1, 2, 0, 1], [0, 1, 0, 2, 0, 2]))
    assert two_rater_kappa(np.array([a, b, b])) == (None, 0)
    assert cohen_kappa([], []) is None


def test_undefined_cases_are_none_not_numbers() -> None:
    one_annotator, _, _ = reliability_matrix([Answer("a", 1, 0), Answer("a", 2, 1)])
    assert krippendorff_alpha(one_annotator) is None  # no item with two answers
    same_class = np.array([[0, 0, 0], [0, 0, 0]], dtype=float)
    assert krippendorff_alpha(same_class) is None  # one value only: 0/0
    assert fleiss_kappa(same_class, 2)[0] is None
    assert cohen_kappa([1, 1], [1, 1]) is None
    all_agree = np.array([[0, 1, 2], [0, 1, 2]], dtype=float)
    assert krippendorff_alpha(all_agree) == 1.0 and fleiss_kappa(all_agree, 3)[0] == 1.0


def test_class_alpha_is_the_binary_alpha_of_each_class() -> None:
    alphas = class_alphas(KRIPPENDORFF_2011, 5)
    for c, alpha in enumerate(alphas):
        binary = np.where(np.isnan(KRIPPENDORFF_2011), np.nan, np.equal(KRIPPENDORFF_2011, c).astype(float))
        assert alpha == pytest.approx(krippendorff.alpha(reliability_data=binary, level_of_measurement="nominal"))


def test_reliability_matrix_keeps_the_latest_answer_of_an_annotator() -> None:
    matrix, annotators, items = reliability_matrix([Answer("b", 7, 1), Answer("a", 3, 0), Answer("b", 7, 2)])
    assert annotators == ["a", "b"] and items == [3, 7]
    assert np.array_equal(matrix, np.array([[0, N], [N, 2]]), equal_nan=True)
