"""Label errors: which labels are likely wrong (confident learning, via cleanlab), and simulated label noise.

Confident learning needs, for every labeled item, class probabilities from a model that did not see that item's
label: a model's in-sample probabilities agree with the labels it was trained on, wrong ones included (a network
memorizes them), so they would hide exactly the errors we look for. `out_of_fold_probs` gets them by K-fold
cross-validation: K models of the cycle's own architecture, each trained on K-1 folds and predicting the held-out
one. For a text project that architecture is a small head on frozen MiniLM embeddings, so a fold costs seconds;
for an image project it is the project's CNN, trained with the cycle's schedule (the ranking is only as good as
the model behind it, and a cheaper stand-in trained on other features would rank another model's doubts).

`rank_label_issues` hands the probabilities to cleanlab: `filter.find_label_issues` (prune by noise rate: how many
labels of each class the confident joint estimates are wrong) decides which items are flagged, and
`rank.get_label_quality_scores` (self-confidence: the out-of-fold probability of the given label) orders them.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from engine.training import TrainConfig, predict_logits, train_classifier

MAX_FOLDS = 5


@dataclass(frozen=True)
class LabelIssues:
    quality: NDArray[np.float64]  # per item, in [0, 1]: lower = more likely wrong
    flagged: NDArray[np.bool_]  # per item: cleanlab counts this label among the estimated errors
    order: NDArray[np.int64]  # item positions, most likely wrong first (ascending quality)
    suggested: NDArray[np.int64]  # per item: the class the out-of-fold model finds most likely
    suggested_probability: NDArray[np.float64]


def fold_ids(y: NDArray[np.int64], *, folds: int, seed: int) -> NDArray[np.int64]:
    """A fold number per item, stratified by class (each class dealt round-robin after a seeded shuffle), so that
    every fold holds out a share of every class and trains on the rest, even a class with fewer items than folds."""
    rng = np.random.default_rng(seed)
    out = np.empty(len(y), dtype=np.int64)
    offset = 0
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        out[members] = (np.arange(len(members)) + offset) % folds
        offset += len(members)  # the next class starts where this one ended: folds stay balanced in size
    return out


def out_of_fold_probs(
    make_model: Callable[[int], nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    num_classes: int,
    config: TrainConfig,
    folds: int = MAX_FOLDS,
    on_fold: Callable[[int, int], None] | None = None,
) -> NDArray[np.float64]:
    """Softmax probabilities [n, num_classes] for every item from a model trained without it (K-fold). Each fold's
    model comes from `make_model(fold)` and trains with `config` (no validation split: a fixed schedule, as a small
    labeled set cannot spare one per fold). `on_fold(done, total)` reports progress."""
    labels = y.numpy().astype(np.int64)
    k = max(2, min(folds, len(labels)))
    assignment = fold_ids(labels, folds=k, seed=config.seed)
    probs = np.zeros((len(labels), num_classes), dtype=np.float64)
    for fold in range(k):
        held = assignment == fold
        model = make_model(fold)
        fold_config = TrainConfig(**{**config.__dict__, "seed": config.seed + fold})
        train_classifier(model, (x[~held], y[~held]), None, num_classes=num_classes, config=fold_config)
        logits = predict_logits(model, (x[held], y[held]))
        probs[held] = torch.softmax(logits.double(), dim=1).numpy()
        if on_fold is not None:
            on_fold(fold + 1, k)
    return probs


def rank_label_issues(labels: NDArray[np.int64], pred_probs: NDArray[np.float64]) -> LabelIssues:
    """cleanlab's confident learning on out-of-fold probabilities: quality, flags and the order to review in."""
    # Imported here: cleanlab pulls pandas and scikit-learn's estimators in, which the scoring workers never need.
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    labels = np.asarray(labels, dtype=np.int64)
    probs = np.clip(np.asarray(pred_probs, dtype=np.float64), 1e-12, None)
    probs = probs / probs.sum(axis=1, keepdims=True)
    with warnings.catch_warnings():
        # "may not flag all label issues in class c": expected for rare classes in early cycles, said in the docs.
        warnings.simplefilter("ignore", UserWarning)
        quality = np.asarray(get_label_quality_scores(labels, probs, method="self_confidence"), dtype=np.float64)
        # n_jobs=1: by default cleanlab forks a multiprocessing pool (one process per core) for the pruning. Forked
        # from a worker that runs PyTorch's thread pool and Celery's threads, a child can inherit a lock no thread
        # will release: the task then waits forever for its pool (a CI run lost 300 s to it). In-process the
        # pruning is linear in the labels, and the result is the same whatever n_jobs is (cleanlab's docs).
        flagged = np.asarray(find_label_issues(labels, probs, filter_by="prune_by_noise_rate", n_jobs=1), dtype=bool)
    order = np.argsort(quality, kind="stable").astype(np.int64)
    suggested = probs.argmax(axis=1).astype(np.int64)
    return LabelIssues(
        quality=quality,
        flagged=flagged,
        order=order,
        suggested=suggested,
        suggested_probability=probs[np.arange(len(labels)), suggested],
    )


def noisy_answer(truth: str, labels: Sequence[str], *, rate: float, seed: int, key: object) -> str:
    """A simulated annotator's answer: the truth, or with probability `rate` another class drawn uniformly. Seeded
    per item (`key`), so an answer does not depend on the order or the batch the item is answered in."""
    if rate <= 0 or len(labels) < 2:
        return truth
    rng = random.Random(f"{seed}:{key}")
    if rng.random() >= rate:
        return truth
    return rng.choice([label for label in labels if label != truth])


@dataclass(frozen=True)
class Noise:
    """Simulated annotators: one with the error rate `rate`, or several with the error rates `annotators`."""

    rate: float = 0.0
    annotators: tuple[float, ...] = ()


def simulated_answers(
    truth: str, labels: Sequence[str], *, rates: Sequence[float], overlap: int, seed: int, key: object
) -> list[tuple[str, str]]:
    """Several simulated annotators ("sim-1", "sim-2", ... with error rates `rates`): `overlap` of them (all when
    fewer) answer the item, taken in turn from a start drawn per item, each with their own seeded noise. Returns
    (annotator, answer) pairs, in the order they answer."""
    if not rates:
        return []
    start = random.Random(f"{seed}:{key}:who").randrange(len(rates))
    who = [(start + j) % len(rates) for j in range(max(1, min(overlap, len(rates))))]
    return [(f"sim-{a + 1}", noisy_answer(truth, labels, rate=rates[a], seed=seed, key=f"{key}:{a}")) for a in who]


def flip_labels(
    y: NDArray[np.int64], *, rate: float, num_classes: int, seed: int
) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Exactly round(rate * n) labels, chosen at random, each moved to another class uniformly; returns the noisy
    labels and which ones were flipped (for benchmarks, where the exact share matters)."""
    rng = np.random.default_rng(seed)
    noisy = np.asarray(y, dtype=np.int64).copy()
    chosen = rng.choice(len(noisy), size=round(rate * len(noisy)), replace=False)
    shift = rng.integers(1, num_classes, size=len(chosen))
    noisy[chosen] = (noisy[chosen] + shift) % num_classes
    flipped = np.zeros(len(noisy), dtype=bool)
    flipped[chosen] = True
    return noisy, flipped
