from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix as sk_confusion
from sklearn.metrics import f1_score, precision_recall_fscore_support

from engine.metrics import classification_metrics


def test_against_scikit_learn_with_a_class_never_seen() -> None:
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 4, size=200)  # class 4 never occurs nor is predicted
    y_pred = np.where(rng.random(200) < 0.7, y_true, rng.integers(0, 3, size=200))
    m = classification_metrics(y_true, y_pred, num_classes=5)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=range(5), zero_division=0)
    np.testing.assert_allclose(m.precision, p)
    np.testing.assert_allclose(m.recall, r)
    np.testing.assert_allclose(m.f1, f)
    assert m.support == list(s)
    assert m.macro_f1 == pytest.approx(f1_score(y_true, y_pred, average="macro", zero_division=0))
    assert m.accuracy == pytest.approx(np.mean(y_true == y_pred))
    assert m.confusion == sk_confusion(y_true, y_pred, labels=range(5)).tolist()
    flat = m.flat("test", ["a", "b", "c", "d", "e f"])
    assert flat["test_f1_e_f"] == 0.0 and "test_macro_f1" in flat


def test_empty_input() -> None:
    m = classification_metrics([], [], num_classes=3)
    assert m.accuracy == 0.0 and m.macro_f1 == 0.0 and m.confusion == [[0] * 3] * 3
