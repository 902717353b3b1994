"""Inter-annotator agreement: Krippendorff's alpha, Fleiss' and Cohen's kappa, from the well-kept libraries.

Plain Python (no Django). Answers are class indices; a reliability matrix is annotators x items with NaN where an
annotator did not answer an item (Krippendorff's own layout). Each statistic is None where it is undefined rather
than a number that would mislead: alpha needs some item with two answers and at least two distinct values overall
(if everyone always gave the same one class, the expected disagreement is 0 and alpha is 0/0), Fleiss' kappa needs
items with the same number of answers, Cohen's kappa exactly two raters on shared items.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class Answer:
    annotator: str
    item: int
    value: int  # class index


def reliability_matrix(answers: Sequence[Answer]) -> tuple[NDArray[np.float64], list[str], list[int]]:
    """(matrix [annotators, items] with NaN for no answer, annotators, items), both sorted. An annotator's later
    answer on the same item replaces the earlier one (Label Studio allows one annotation per annotator a task)."""
    annotators = sorted({a.annotator for a in answers})
    items = sorted({a.item for a in answers})
    row = {name: i for i, name in enumerate(annotators)}
    col = {item: j for j, item in enumerate(items)}
    matrix = np.full((len(annotators), len(items)), np.nan)
    for a in answers:
        matrix[row[a.annotator], col[a.item]] = a.value
    return matrix, annotators, items


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def krippendorff_alpha(matrix: NDArray[np.float64]) -> float | None:
    """Nominal Krippendorff's alpha over the items with at least two answers; None where undefined."""
    import krippendorff

    pairable = (~np.isnan(matrix)).sum(axis=0) >= 2
    if not pairable.any():
        return None
    try:
        return _finite(krippendorff.alpha(reliability_data=matrix[:, pairable], level_of_measurement="nominal"))
    except ValueError:  # one value only in the data: no expected disagreement to compare with
        return None


def class_alphas(matrix: NDArray[np.float64], n_classes: int) -> list[float | None]:
    """Per class c, the nominal alpha of "c or not c" (each class one-vs-rest): how reliably annotators agree on
    whether an item is c."""
    out: list[float | None] = []
    for c in range(n_classes):
        binary = np.where(np.isnan(matrix), np.nan, (matrix == c).astype(np.float64))
        out.append(krippendorff_alpha(binary))
    return out


def category_counts(matrix: NDArray[np.float64], n_classes: int) -> NDArray[np.int64]:
    """[items, classes]: how many answers each item got for each class (Fleiss' table)."""
    counts = np.zeros((matrix.shape[1], n_classes), dtype=np.int64)
    for j in range(matrix.shape[1]):
        for value in matrix[:, j][~np.isnan(matrix[:, j])]:
            counts[j, int(value)] += 1
    return counts


def fleiss_kappa(
    matrix: NDArray[np.float64], n_classes: int, *, raters: int | None = None
) -> tuple[float | None, int, int]:
    """(Fleiss' kappa, items used, raters per item) over the items with exactly `raters` answers (default: the most
    common count of at least two). Fleiss' kappa assumes the same number of ratings per item; items with more or
    fewer are left out rather than the statistic bent. (None, 0, 0) where no such items exist."""
    from statsmodels.stats.inter_rater import fleiss_kappa as _fleiss

    per_item = (~np.isnan(matrix)).sum(axis=0)
    if raters is None:
        common = Counter(int(n) for n in per_item if n >= 2).most_common(1)
        raters = common[0][0] if common else 0
    keep = per_item == raters
    if raters < 2 or not keep.any():
        return None, 0, 0
    table = category_counts(matrix[:, keep], n_classes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # 0/0 when every answer is one class: reported as None
        value = _fleiss(table, method="fleiss")
    return _finite(value), int(keep.sum()), raters


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float | None:
    """Cohen's kappa of two raters' paired answers (scikit-learn); None with no pair or where undefined."""
    from sklearn.metrics import cohen_kappa_score

    if not a:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn warns where kappa is undefined: reported as None
        return _finite(cohen_kappa_score(list(a), list(b)))


def two_rater_kappa(matrix: NDArray[np.float64]) -> tuple[float | None, int]:
    """(Cohen's kappa, shared items) when exactly two annotators answered; (None, 0) otherwise."""
    if matrix.shape[0] != 2:
        return None, 0
    shared = ~np.isnan(matrix).any(axis=0)
    a, b = matrix[0, shared].astype(int).tolist(), matrix[1, shared].astype(int).tolist()
    return cohen_kappa(a, b), int(shared.sum())
