"""Heuristics against their formulas and against baal 2.1's own classes fed the same probabilities."""

from __future__ import annotations

import math
import warnings
from collections import Counter

import numpy as np
import pytest
from baal.active.heuristics import BALD, Certainty, Entropy, Margin
from baal.active.heuristics.stochastics import PowerSampling

from engine import heuristics as H


def dirichlet_samples(n: int = 64, c: int = 5, t: int = 12, seed: int = 0) -> np.ndarray:
    """[N, C, T] per-sample probabilities with a spread of agreement between samples."""
    rng = np.random.default_rng(seed)
    centers = rng.dirichlet(np.ones(c) * 0.7, size=n)  # [N, C]
    conc = rng.uniform(1.0, 50.0, size=n)
    out = np.stack([rng.dirichlet(centers[i] * conc[i] + 1e-3, size=t).T for i in range(n)])
    return out.astype(np.float64)


def _h(p: np.ndarray) -> float:
    return -sum(x * math.log(x) for x in p if x > 0)


def test_formulas_match_a_per_item_loop() -> None:
    probs = dirichlet_samples()
    n, _, t = probs.shape
    for i in range(n):
        samples = [probs[i, :, k] for k in range(t)]
        mean = probs[i].mean(axis=1)
        assert H.bald(probs)[i] == pytest.approx(max(_h(mean) - np.mean([_h(s) for s in samples]), 0.0), abs=1e-12)
        assert H.entropy(probs)[i] == pytest.approx(_h(mean), abs=1e-12)
        top = sorted(mean)[-2:]
        assert H.margin(probs)[i] == pytest.approx(1 - (top[1] - top[0]), abs=1e-12)
        assert H.least_confidence(probs)[i] == pytest.approx(1 - max(mean), abs=1e-12)
        votes = Counter(int(np.argmax(s)) for s in samples)
        assert H.variation_ratio(probs)[i] == pytest.approx(1 - max(votes.values()) / t, abs=1e-12)


# Why comparing with baal this way is valid: baal's `to_prob` leaves an input alone when it lies in [0, 1] and sums
# to 1 over the class axis, so per-sample *probabilities* reach its formulas unchanged; `singlepass` then averages
# them over T, i.e. Entropy/Margin/Certainty see the mean probabilities, exactly our definitions. The FACTS.md
# pitfall (Entropy/Margin averaging logits) only bites when logits are fed - shown in the last baal test below.
# Margin and Certainty rank ascending (lower = more uncertain), so we compare 1 - baal's value.
def test_equal_to_baal_fed_the_same_probabilities() -> None:
    probs = dirichlet_samples(seed=1)
    np.testing.assert_allclose(H.bald(probs), np.maximum(BALD().get_uncertainties(probs), 0.0), atol=1e-10)
    np.testing.assert_allclose(H.entropy(probs), Entropy().get_uncertainties(probs), atol=1e-10)
    np.testing.assert_allclose(H.margin(probs), 1.0 - Margin().get_uncertainties(probs), atol=1e-10)
    np.testing.assert_allclose(H.least_confidence(probs), 1.0 - Certainty().get_uncertainties(probs), atol=1e-10)
    # Same ranking as baal's own ordering (most informative first).
    assert list(H.top_k(H.bald(probs), 10)) == list(BALD()(probs)[:10])


def test_baal_entropy_on_logits_is_not_predictive_entropy() -> None:
    """Documents the pitfall: averaged logits != averaged probabilities; the engine feeds probabilities."""
    rng = np.random.default_rng(3)
    logits = rng.normal(scale=3.0, size=(32, 4, 10))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert not np.allclose(Entropy().get_uncertainties(logits), H.entropy(probs), atol=1e-3)
    np.testing.assert_allclose(Entropy().get_uncertainties(probs), H.entropy(probs), atol=1e-10)


def test_one_hot_inputs() -> None:
    agree = np.zeros((1, 3, 8))
    agree[0, 1, :] = 1.0  # every sample: class 1 with certainty
    split = np.zeros((1, 3, 8))
    split[0, 0, :4] = 1.0
    split[0, 2, 4:] = 1.0  # half the samples say 0, half say 2
    probs = np.concatenate([agree, split])
    np.testing.assert_allclose(H.bald(probs), [0.0, math.log(2)], atol=1e-12)
    np.testing.assert_allclose(H.entropy(probs), [0.0, math.log(2)], atol=1e-12)
    np.testing.assert_allclose(H.margin(probs), [0.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(H.least_confidence(probs), [0.0, 0.5], atol=1e-12)
    np.testing.assert_allclose(H.variation_ratio(probs), [0.0, 0.5], atol=1e-12)
    np.testing.assert_allclose(BALD().get_uncertainties(probs), [0.0, math.log(2)], atol=1e-12)
    np.testing.assert_allclose(Entropy().get_uncertainties(probs), [0.0, math.log(2)], atol=1e-12)


def test_uniform_inputs() -> None:
    c = 4
    probs = np.full((3, c, 5), 1.0 / c)
    np.testing.assert_allclose(H.bald(probs), 0.0, atol=1e-12)  # samples agree: no epistemic uncertainty
    np.testing.assert_allclose(H.entropy(probs), math.log(c))
    np.testing.assert_allclose(H.margin(probs), 1.0)
    np.testing.assert_allclose(H.least_confidence(probs), 1 - 1 / c)
    # argmax of a uniform vector is class 0 in every sample: the votes agree, so the variation ratio is 0.
    np.testing.assert_allclose(H.variation_ratio(probs), 0.0)
    np.testing.assert_allclose(BALD().get_uncertainties(probs), 0.0, atol=1e-12)
    np.testing.assert_allclose(Entropy().get_uncertainties(probs), math.log(c))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_items_get_the_upper_bound_and_do_not_leak(bad: float) -> None:
    probs = dirichlet_samples(n=6, c=4, t=5, seed=2)
    clean = {name: H.HEURISTICS[name](probs) for name in ("bald", "entropy", "margin", "least_confidence")}
    broken = probs.copy()
    broken[2, 1, 3] = bad
    c, t = 4, 5
    upper = {
        "bald": math.log(c),
        "entropy": math.log(c),
        "margin": 1.0,
        "least_confidence": 1 - 1 / c,
        "variation_ratio": 1 - math.ceil(t / c) / t,
    }
    for name, bound in upper.items():
        scores = H.HEURISTICS[name](broken)
        assert np.isfinite(scores).all()
        assert scores[2] == pytest.approx(bound)
        if name in clean:
            np.testing.assert_allclose(np.delete(scores, 2), np.delete(clean[name], 2), atol=1e-12)
    assert int(np.argmax(H.bald(broken))) == 2


def test_baal_lets_one_nan_item_change_every_score() -> None:
    """Why we don't delegate to baal: one NaN makes its `to_prob` softmax the whole array (all items shift), and the
    broken item is put last (score 0 for BALD), where a human never sees it."""
    probs = dirichlet_samples(n=6, c=4, t=5, seed=2)
    broken = probs.copy()
    broken[2, 1, 3] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        baal_scores = BALD().get_uncertainties(broken)
    assert baal_scores[2] == 0.0  # baal's replacement for a "reversed" heuristic: ranked last
    assert not np.allclose(np.delete(baal_scores, 2), np.delete(H.bald(probs), 2), atol=1e-4)
    np.testing.assert_allclose(np.delete(H.bald(broken), 2), np.delete(H.bald(probs), 2), atol=1e-12)


def test_float32_bald_is_never_negative() -> None:
    rng = np.random.default_rng(4)
    p = rng.dirichlet(np.ones(10), size=200).astype(np.float32)
    probs = np.repeat(p[:, :, None], 20, axis=2)  # identical samples: BALD is exactly 0 mathematically
    scores = H.bald(probs)
    assert (scores >= 0.0).all() and (scores < 1e-12).all()


def test_random_is_seeded() -> None:
    probs = dirichlet_samples(n=50)
    a, b = H.random(probs, seed=7), H.random(probs, seed=7)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, H.random(probs, seed=8))
    assert not np.array_equal(H.random(probs, seed=(7, 0)), H.random(probs, seed=(7, 1)))
    assert ((a >= 0) & (a < 1)).all()


def test_power_bald_samples_proportionally_to_bald_like_baal_power_sampling() -> None:
    probs = dirichlet_samples(n=5, c=3, t=10, seed=5)
    scores = H.bald(probs)
    beta = 2.0
    # baal's PowerSampling distribution with temperature = 1 / beta is BALD^beta normalised.
    expected = PowerSampling(BALD(), query_size=1, temperature=1 / beta)._make_distribution(scores.copy())
    draws = 20000
    firsts = np.array([int(np.argmax(H.power_bald(probs, seed=s, beta=beta))) for s in range(draws)])
    freq = np.bincount(firsts, minlength=5) / draws
    np.testing.assert_allclose(freq, expected, atol=0.015)
    np.testing.assert_array_equal(H.power_bald(probs, seed=3), H.power_bald(probs, seed=3))
    # Positive like every uncertainty (a threshold >= 0 can select any item), whatever BALD's size.
    tiny = H.power_bald(dirichlet_samples(n=500, c=5, t=20, seed=1), seed=0)
    assert np.all(np.isfinite(tiny)) and np.all(tiny > 0)


def test_registry_and_input_validation() -> None:
    assert set(H.HEURISTICS) == {
        "bald",
        "entropy",
        "margin",
        "least_confidence",
        "variation_ratio",
        "random",
        "power_bald",
    }
    with pytest.raises(ValueError, match="unknown heuristic"):
        H.get_heuristic("bold")
    with pytest.raises(ValueError):
        H.bald(np.ones(5))
    with pytest.raises(ValueError, match="2 classes"):
        H.entropy(np.ones((4, 1, 3)))
    np.testing.assert_allclose(H.entropy(np.array([[0.5, 0.5]])), [math.log(2)])  # [N, C] is T = 1


def test_top_k_is_stable() -> None:
    assert list(H.top_k([0.2, 0.9, 0.2, 0.9, 0.1], 3)) == [1, 3, 0]
    assert list(H.top_k([0.1], 0)) == []
