"""Classification metrics in numpy (checked against scikit-learn in the tests).

Macro averages are taken over the classes present in y_true or y_pred, like scikit-learn's ``average="macro"``
without ``labels``: early active-learning cycles have test splits where some labels never occur, and averaging their
undefined F1 as 0 would report a model as worse than it is. Per-class arrays still cover every class (0 where
undefined, with support telling which ones are empty).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike


@dataclass(frozen=True)
class ClassificationMetrics:
    accuracy: float
    macro_f1: float
    precision: list[float]
    recall: list[float]
    f1: list[float]
    support: list[int]
    confusion: list[list[int]]  # rows = true class, columns = predicted class

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def flat(self, prefix: str, labels: list[str] | None = None) -> dict[str, float]:
        """Scalar metrics for MLflow: ``{prefix}_accuracy``, ``{prefix}_macro_f1``, ``{prefix}_f1_<label>``..."""
        names = labels or [str(i) for i in range(len(self.f1))]
        out = {f"{prefix}_accuracy": self.accuracy, f"{prefix}_macro_f1": self.macro_f1}
        for i, name in enumerate(names):
            safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
            out[f"{prefix}_precision_{safe}"] = self.precision[i]
            out[f"{prefix}_recall_{safe}"] = self.recall[i]
            out[f"{prefix}_f1_{safe}"] = self.f1[i]
        return out


def confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike, num_classes: int) -> np.ndarray:
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    if t.shape != p.shape:
        raise ValueError(f"y_true {t.shape} and y_pred {p.shape} differ")
    if t.size and (min(t.min(), p.min()) < 0 or max(t.max(), p.max()) >= num_classes):
        raise ValueError("labels must be in [0, num_classes)")
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def classification_metrics(y_true: ArrayLike, y_pred: ArrayLike, num_classes: int) -> ClassificationMetrics:
    cm = confusion_matrix(y_true, y_pred, num_classes)
    tp = np.diag(cm).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    support = cm.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        denom = precision + recall
        f1 = np.where(denom > 0, 2 * precision * recall / denom, 0.0)
    present = (support > 0) | (predicted > 0)
    total = int(cm.sum())
    return ClassificationMetrics(
        accuracy=float(tp.sum() / total) if total else 0.0,
        macro_f1=float(f1[present].mean()) if present.any() else 0.0,
        precision=[float(v) for v in precision],
        recall=[float(v) for v in recall],
        f1=[float(v) for v in f1],
        support=[int(v) for v in support],
        confusion=cm.tolist(),
    )


def bootstrap_interval(
    confusion: ArrayLike, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of accuracy and macro-F1 over the evaluated items.

    Resampling items with replacement is resampling the confusion matrix's cells from a multinomial with the cells'
    shares, so no per-item predictions are needed. Macro-F1 follows `classification_metrics` (classes present in the
    resample's truth or predictions).
    """
    cm = np.asarray(confusion, dtype=np.int64)
    k = cm.shape[0]
    n = int(cm.sum())
    if n == 0:
        return {"accuracy": (0.0, 0.0), "macro_f1": (0.0, 0.0)}
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, cm.ravel() / n, size=n_boot).reshape(n_boot, k, k).astype(np.float64)
    tp = np.diagonal(draws, axis1=1, axis2=2)
    predicted, support = draws.sum(axis=1), draws.sum(axis=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = (support > 0) | (predicted > 0)
    macro = (f1 * present).sum(axis=1) / np.maximum(present.sum(axis=1), 1)
    accuracy = tp.sum(axis=1) / n
    tail = (1 - level) / 2 * 100
    return {
        "accuracy": (float(np.percentile(accuracy, tail)), float(np.percentile(accuracy, 100 - tail))),
        "macro_f1": (float(np.percentile(macro, tail)), float(np.percentile(macro, 100 - tail))),
    }
