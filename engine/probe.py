"""The linear probe: the floor every head on frozen features must reach (issue 19).

A multinomial logistic regression (scikit-learn, L-BFGS) with class-balanced weights on the same features the head
sees. Its regularisation is one fixed rule for every dataset, never tuned per dataset: ``C = PROBE_C`` on the
features as the product gives them (MiniLM embeddings are L2-normalised). The value was the strongest of the four
rules tried on the development seeds of both frozen-feature datasets together (C = 1 or 10 on the raw embeddings,
C = 0.1 or 1 after standardising; docs/models.md), which makes the floor as hard as we could make it, not easier.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from engine.metrics import ClassificationMetrics, classification_metrics

PROBE_C = 10.0
MAX_ITER = 5000  # L-BFGS to convergence: a probe stopped early would be a weaker floor than it claims to be


def linear_probe(x: ArrayLike, y: ArrayLike, *, c: float = PROBE_C, seed: int = 0) -> Any:
    """A fitted class-balanced logistic regression on ``x`` (features) and ``y`` (class indices)."""
    from sklearn.linear_model import LogisticRegression  # scikit-learn is slow to import: only when a probe runs

    probe = LogisticRegression(C=c, class_weight="balanced", max_iter=MAX_ITER, random_state=seed)
    return probe.fit(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.int64))


def probe_predict(probe: Any, x: ArrayLike) -> NDArray[np.int64]:
    """Predicted class indices (of the classes the probe saw in training)."""
    return np.asarray(probe.predict(np.asarray(x, dtype=np.float64)), dtype=np.int64)


def probe_metrics(
    x_train: ArrayLike, y_train: ArrayLike, x_test: ArrayLike, y_test: ArrayLike, num_classes: int
) -> ClassificationMetrics:
    """Test metrics of the probe trained on the training labels only, by the engine's own metric code (the same
    macro-F1 the heads are measured with)."""
    probe = linear_probe(x_train, y_train)
    return classification_metrics(np.asarray(y_test), probe_predict(probe, x_test), num_classes)
