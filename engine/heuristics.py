"""Acquisition heuristics on MC-dropout per-sample probabilities.

Every heuristic takes probabilities shaped ``[N, C, T]`` (N items, C classes, T MC iterations; ``[N, C]`` is read as
T = 1) and returns one float64 per item where **higher = more informative**, the one meaning of a score in alweb.

Why not baal's classes: they take whatever the model outputs and guess (``to_prob`` softmaxes the WHOLE array as
soon as one value does not look like a probability, so a single NaN item silently changes every other item's score),
``Margin``/``Certainty`` rank ascending, and non-finite scores are replaced by a value that sorts the item last. Here
the inputs are always probabilities, the formulas are explicit and the non-finite policy is written down. The tests
check equality with baal fed the same (finite) probabilities, and show both baal behaviours above.

NON-FINITE POLICY: an item whose probabilities contain NaN or ±inf in any class or iteration gets the heuristic's
**upper bound** (log C for BALD and entropy, 1 for margin, 1 - 1/C for least confidence, 1 - ceil(T/C)/T for the
variation ratio). A model that produced garbage for an item should put that item in front of a human, not hide it at
the end of the queue as baal does. Each item is computed on its own (a uniform placeholder replaces the broken one),
so no NaN leaks into neighbouring items.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

SeedLike = int | Sequence[int] | None
FloatArray = NDArray[np.float64]

# Floor for log(BALD) in PowerBALD: items with exactly zero mutual information get a finite, very low key so they
# are sampled last (and in random order) instead of producing -inf ties.
_LOG_FLOOR = 1e-12


class Heuristic(Protocol):
    def __call__(self, probs: ArrayLike, *, seed: SeedLike = 0) -> FloatArray: ...


def as_samples(probs: ArrayLike) -> tuple[FloatArray, NDArray[np.bool_]]:
    """Return ``(p [N, C, T] float64 with non-finite items replaced by uniform, mask of those items)``.

    float64 on purpose: BALD is a difference of two entropies of similar size; in float32 it loses ~1e-6 and can go
    negative, which is exactly the baal pitfall FACTS.md warns about.
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim == 2:
        p = p[:, :, None]
    if p.ndim != 3:
        raise ValueError(f"expected probabilities shaped [N, C, T] or [N, C], got {p.shape}")
    if p.shape[1] < 2:
        raise ValueError("need at least 2 classes (a binary task is 2 classes, not 1 sigmoid output)")
    bad = np.asarray(~np.isfinite(p).all(axis=(1, 2)), dtype=np.bool_)
    if bad.any():
        p = p.copy()
        p[bad] = 1.0 / p.shape[1]
    return p, bad


def _entropy(p: FloatArray, axis: int = 1) -> FloatArray:
    # 0 * log 0 = 0 without warnings: take log of 1 where p == 0.
    return np.asarray(-np.sum(p * np.log(np.where(p > 0.0, p, 1.0)), axis=axis), dtype=np.float64)


def _finish(scores: FloatArray, bad: NDArray[np.bool_], upper: float) -> FloatArray:
    if bad.any():
        scores = scores.copy()
        scores[bad] = upper
    return scores


def bald(probs: ArrayLike, *, seed: SeedLike = 0) -> FloatArray:
    """Mutual information H[mean_t p] - mean_t H[p]; tiny negative float noise clipped to 0. Upper bound log C."""
    p, bad = as_samples(probs)
    scores = _entropy(p.mean(axis=2)) - _entropy(p).mean(axis=1)
    return _finish(np.maximum(scores, 0.0), bad, math.log(p.shape[1]))


def entropy(probs: ArrayLike, *, seed: SeedLike = 0) -> FloatArray:
    """Predictive entropy H[mean_t p] (total uncertainty). Upper bound log C."""
    p, bad = as_samples(probs)
    return _finish(_entropy(p.mean(axis=2)), bad, math.log(p.shape[1]))


def margin(probs: ArrayLike, *, seed: SeedLike = 0) -> FloatArray:
    """1 - (p1 - p2) on the mean probabilities: a small gap between the two best classes = uncertain. In [0, 1]."""
    p, bad = as_samples(probs)
    top2 = np.sort(p.mean(axis=2), axis=1)[:, -2:]
    return _finish(1.0 - (top2[:, 1] - top2[:, 0]), bad, 1.0)


def least_confidence(probs: ArrayLike, *, seed: SeedLike = 0) -> FloatArray:
    """1 - max_c mean_t p. Upper bound 1 - 1/C."""
    p, bad = as_samples(probs)
    return _finish(1.0 - p.mean(axis=2).max(axis=1), bad, 1.0 - 1.0 / p.shape[1])


def variation_ratio(probs: ArrayLike, *, seed: SeedLike = 0) -> FloatArray:
    """1 - (count of the modal predicted class over the T samples) / T. Upper bound 1 - ceil(T/C)/T."""
    p, bad = as_samples(probs)
    _, c, t = p.shape
    votes = p.argmax(axis=1)  # [N, T]
    counts = (votes[:, None, :] == np.arange(c)[None, :, None]).sum(axis=2)  # [N, C]
    scores = 1.0 - counts.max(axis=1) / t
    return _finish(scores.astype(np.float64), bad, 1.0 - math.ceil(t / c) / t)


def random(probs: ArrayLike, *, seed: SeedLike = 0) -> FloatArray:
    """Uniform [0, 1) per item from a seeded generator: the baseline every heuristic must beat."""
    n = np.shape(probs)[0]
    return np.random.default_rng(seed).random(n)


def power_bald(probs: ArrayLike, *, seed: SeedLike = 0, beta: float = 1.0) -> FloatArray:
    """PowerBALD sampling keys (Kirsch et al. 2022, "Stochastic Batch Acquisition").

    The Gumbel-top-k keys are ``beta * log(BALD) + G`` with G ~ Gumbel(0, 1): taking the top-k draws k items
    **without replacement with probability proportional to BALD**^beta, so the usual "highest first" selection
    turns into stochastic batch acquisition and avoids picking k near-duplicates. Returned is exp(key) =
    BALD^beta * exp(G): the same order, but positive like every other heuristic, so a threshold >= 0, the score
    histogram and Label Studio's score order all work (the raw keys are mostly negative). It is a noisy
    uncertainty, not in BALD's units.
    """
    if beta <= 0:
        raise ValueError("beta must be > 0")
    scores = bald(probs)
    gumbel = np.random.default_rng(seed).gumbel(size=scores.shape[0])
    keys = beta * np.log(np.maximum(scores, _LOG_FLOOR)) + gumbel
    return np.asarray(np.exp(np.minimum(keys, 700.0)), dtype=np.float64)  # exp(700) is near float64's limit


HEURISTICS: dict[str, Heuristic] = {
    "bald": bald,
    "entropy": entropy,
    "margin": margin,
    "least_confidence": least_confidence,
    "variation_ratio": variation_ratio,
    "random": random,
    "power_bald": power_bald,
}

# Heuristics whose value depends on the seed (the engine derives one seed per chunk from (seed, chunk index)).
STOCHASTIC = frozenset({"random", "power_bald"})
# Heuristics that are identically 0 (or meaningless) without several MC samples: refuse them on T = 1 outputs.
NEEDS_SAMPLES = frozenset({"bald", "variation_ratio", "power_bald"})


def get_heuristic(name: str) -> Heuristic:
    try:
        return HEURISTICS[name]
    except KeyError:
        raise ValueError(f"unknown heuristic {name!r}; choose one of {sorted(HEURISTICS)}") from None


def top_k(scores: ArrayLike, k: int) -> NDArray[np.int64]:
    """Indices of the k highest scores, highest first; ties keep pool order (stable) so selection is reproducible."""
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-s, kind="stable")
    return np.asarray(order[: max(0, k)], dtype=np.int64)
