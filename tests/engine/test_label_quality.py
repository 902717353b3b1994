"""engine.label_quality: K-fold out-of-fold probabilities, cleanlab's ranking of planted label errors, and the
simulated annotator's noise."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from engine.architectures import TextHead
from engine.label_quality import flip_labels, fold_ids, noisy_answer, out_of_fold_probs, rank_label_issues
from engine.training import TrainConfig


def blobs(n: int, k: int, *, dim: int = 16, spread: float = 1.6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """k Gaussian classes whose clouds overlap (about 10% Bayes error at spread 1.6): not separable by eye."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim)) * 2.0
    y = rng.integers(0, k, size=n)
    x = centres[y] + rng.normal(size=(n, dim)) * spread
    return x.astype(np.float32), y.astype(np.int64)


def test_planted_flipped_labels_rank_near_the_top() -> None:
    x, y = blobs(400, 4)
    noisy, flipped = flip_labels(y, rate=0.05, num_classes=4, seed=1)
    assert flipped.sum() == 20 and (noisy[flipped] != y[flipped]).all() and (noisy[~flipped] == y[~flipped]).all()
    folds_seen: list[tuple[int, int]] = []
    probs = out_of_fold_probs(
        lambda fold: TextHead(4, in_dim=16, dropout=0.1),
        torch.from_numpy(x),
        torch.from_numpy(noisy),
        num_classes=4,
        config=TrainConfig(epochs=20, min_steps=100, seed=3),
        folds=5,
        on_fold=lambda done, total: folds_seen.append((done, total)),
    )
    assert folds_seen == [(f, 5) for f in range(1, 6)]
    assert probs.shape == (400, 4) and np.allclose(probs.sum(axis=1), 1.0)
    issues = rank_label_issues(noisy, probs)
    top = issues.order[:20]  # the top 5%
    share = flipped[top].mean()
    # Chance is 5%; confident learning on out-of-fold probabilities finds most planted errors first.
    assert share >= 0.6, share
    # The ranking is ascending label quality, and flagged items are mostly the planted ones.
    assert np.all(np.diff(issues.quality[issues.order]) >= 0)
    assert flipped[issues.flagged].mean() > 0.5
    # For a flipped item found at the top, the suggestion is usually the true class.
    found = [p for p in top if flipped[p]]
    assert np.mean([issues.suggested[p] == y[p] for p in found]) >= 0.7


def test_ranking_forks_no_process_pool(monkeypatch: Any) -> None:
    """cleanlab forks one process per core by default; forked from a worker running PyTorch's and Celery's threads,
    a child can wait forever on a lock it inherited (a label-quality task hung in CI). The ranking runs in-process."""
    import cleanlab.filter

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("rank_label_issues started a multiprocessing pool")

    monkeypatch.setattr(cleanlab.filter.multiprocessing, "Pool", refuse)
    _, y = blobs(300, 5)
    noisy, flipped = flip_labels(y, rate=0.1, num_classes=5, seed=2)
    probs = np.full((300, 5), 0.05)
    probs[np.arange(300), y] = 0.8  # a model that knows the truth: the flipped labels are the ones flagged
    issues = rank_label_issues(noisy, probs)
    assert issues.flagged[flipped].all() and not issues.flagged[~flipped].any()


def test_out_of_fold_means_the_model_never_saw_the_item() -> None:
    # Pure noise features: a model that saw an item's label memorizes it; out of fold it cannot guess it.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 32)).astype(np.float32)
    y = rng.integers(0, 2, size=200).astype(np.int64)
    probs = out_of_fold_probs(
        lambda fold: TextHead(2, in_dim=32, dropout=0.0),
        torch.from_numpy(x),
        torch.from_numpy(y),
        num_classes=2,
        config=TrainConfig(epochs=60, min_steps=200, seed=0, weight_decay=0.0),
    )
    accuracy = (probs.argmax(axis=1) == y).mean()
    assert 0.3 < accuracy < 0.7, accuracy


def test_folds_are_stratified_and_balanced() -> None:
    y = np.asarray([0] * 23 + [1] * 7 + [2] * 3)
    f = fold_ids(y, folds=5, seed=4)
    assert set(f) == set(range(5))
    sizes = np.bincount(f)
    assert sizes.max() - sizes.min() <= 1
    for c in (0, 1):  # every fold holds out a share of every class with at least `folds` members
        assert set(f[y == c]) == set(range(5))


def test_noisy_answer_is_seeded_per_item_and_flips_about_the_rate() -> None:
    labels = ["a", "b", "c"]
    answers = [noisy_answer("a", labels, rate=0.2, seed=5, key=f"k{i}") for i in range(2000)]
    assert answers == [noisy_answer("a", labels, rate=0.2, seed=5, key=f"k{i}") for i in range(2000)]
    wrong = sum(a != "a" for a in answers) / len(answers)
    assert 0.16 < wrong < 0.24
    assert {a for a in answers if a != "a"} == {"b", "c"}
    assert noisy_answer("a", labels, rate=0.0, seed=5, key="k1") == "a"
    assert answers != [noisy_answer("a", labels, rate=0.2, seed=6, key=f"k{i}") for i in range(2000)]
