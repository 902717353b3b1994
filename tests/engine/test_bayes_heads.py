"""Ensemble and last-layer Laplace samplers (engine/bayes_heads.py) on small real data (scikit-learn's digits)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from engine.architectures import TextHead
from engine.bayes_heads import (
    EnsembleSampler,
    LaplaceSampler,
    _weighted_hessian,
    calibration,
    fit_laplace,
    member_seed,
    train_ensemble,
)
from engine.heuristics import bald, entropy, margin
from engine.scoring import concat_chunks, iter_batches, score_chunks
from engine.training import TrainConfig, TrainResult, train_classifier

Data = tuple[torch.Tensor, torch.Tensor]


@pytest.fixture(scope="module")
def digits() -> tuple[Data, Data, torch.Tensor]:
    """(train, valid, pool) from the 64 pixel counts of the digits, as frozen features."""
    d = load_digits()
    x, y = torch.from_numpy((d.data / 16.0).astype(np.float32)), torch.from_numpy(d.target.astype(np.int64))
    return (x[:120], y[:120]), (x[120:170], y[120:170]), x[170:270]


def _build(k: int) -> tuple[nn.Module, TrainConfig]:
    # The product's head shape at a small width (a last layer of 33 x 10 parameters keeps the Laplace fits cheap).
    torch.manual_seed(member_seed(7, k))
    model = TextHead(10, in_dim=64, hidden=32)
    return model, TrainConfig(epochs=5, min_steps=30, keep="last", seed=member_seed(8, k))


@pytest.fixture(scope="module")
def ensemble(digits: tuple[Data, Data, torch.Tensor]) -> list[TrainResult]:
    train, valid, _ = digits
    return train_ensemble(_build, train, valid, num_classes=10, size=3)


def test_ensemble_members_differ_and_member_zero_is_the_single_head(
    digits: tuple[Data, Data, torch.Tensor], ensemble: list[TrainResult]
) -> None:
    train, valid, _ = digits
    weights = [r.model.state_dict()["head.1.weight"] for r in ensemble]
    assert not torch.equal(weights[0], weights[1]) and not torch.equal(weights[1], weights[2])
    single, config = _build(0)
    alone = train_classifier(single, train, valid, num_classes=10, config=config)
    assert torch.equal(alone.model.state_dict()["head.1.weight"], weights[0])


def test_the_ensemble_sampler_gives_one_sample_per_member(
    digits: tuple[Data, Data, torch.Tensor], ensemble: list[TrainResult]
) -> None:
    pool = digits[2]
    probs, emb = EnsembleSampler([r.model for r in ensemble], embeddings=True)(pool)
    assert probs.shape == (100, 10, 3) and emb is not None and emb.shape == (100, 32)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert np.abs(probs[:, :, 0] - probs[:, :, 1]).max() > 1e-3  # the members disagree somewhere
    first = torch.softmax(ensemble[0].model(pool), dim=1).detach().numpy()
    np.testing.assert_allclose(probs[:, :, 0], first, atol=1e-5)
    with pytest.raises(ValueError, match="at least 2"):
        EnsembleSampler([ensemble[0].model])


def test_the_hessian_is_that_of_the_weighted_cross_entropy() -> None:
    torch.manual_seed(0)
    phi, y, w = torch.randn(6, 4, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2]), torch.rand(6).double()
    theta = torch.randn(3, 4, dtype=torch.float64)

    def loss(flat: torch.Tensor) -> torch.Tensor:
        logits = phi @ flat.reshape(3, 4).T
        return (w * nn.functional.cross_entropy(logits, y, reduction="none")).sum()

    exact = torch.autograd.functional.hessian(loss, theta.reshape(-1))
    probs = torch.softmax(phi @ theta.T, dim=1)
    torch.testing.assert_close(_weighted_hessian(phi, probs, w), exact)


def test_laplace_samples_are_centred_on_the_map_weights(
    digits: tuple[Data, Data, torch.Tensor], ensemble: list[TrainResult]
) -> None:
    train = digits[0]
    model = ensemble[0].model
    lap = fit_laplace(model, *train, num_classes=10)
    assert lap.structure == "full" and lap.log_marglik is not None and lap.prior_precision > 0
    head = model.get_submodule("head.1")
    assert isinstance(head, nn.Linear)
    torch.testing.assert_close(lap.mean[:, :-1], head.weight.detach())
    torch.testing.assert_close(lap.mean[:, -1], head.bias.detach())
    draws = lap.sample_weights(4000, generator=torch.Generator().manual_seed(0))
    spread = draws.std(dim=0)
    assert spread.min() > 0
    # The mean of n draws is within a few standard errors of the MAP, coordinate by coordinate.
    assert ((draws.mean(dim=0) - lap.mean).abs() / (spread / 4000**0.5)).max() < 5.5
    diag = fit_laplace(model, *train, num_classes=10, structure="diag", prior_precision=lap.prior_precision)
    # Same prior, diagonal precision: each marginal is narrower than (or as wide as) the full posterior's.
    assert diag.structure == "diag" and bool((diag.factor <= spread.reshape(-1) * 1.1).all())


def test_the_laplace_sampler_varies_and_is_seeded(
    digits: tuple[Data, Data, torch.Tensor], ensemble: list[TrainResult]
) -> None:
    train, valid, pool = digits
    lap = fit_laplace(ensemble[0].model, *train, num_classes=10, prior_precision=1.0)
    probs, emb = LaplaceSampler(lap, samples=8, seed=3, embeddings=True)(pool)
    assert probs.shape == (100, 10, 8) and emb is not None and emb.shape == (100, 32)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert probs.std(axis=2).max() > 1e-3
    again, _ = LaplaceSampler(lap, samples=8, seed=3)(pool)
    other, _ = LaplaceSampler(lap, samples=8, seed=4)(pool)
    np.testing.assert_array_equal(probs, again)
    assert not np.array_equal(probs, other)
    by_validation = fit_laplace(ensemble[0].model, *train, num_classes=10, prior="validation", validation=valid)
    assert by_validation.log_marglik is None and by_validation.prior_precision > 0
    with pytest.raises(ValueError, match="validation"):
        fit_laplace(ensemble[0].model, *train, num_classes=10, prior="validation")


@pytest.mark.parametrize("which", ["ensemble", "laplace"])
def test_both_samplers_feed_the_scoring_engine_and_every_heuristic(
    which: str, digits: tuple[Data, Data, torch.Tensor], ensemble: list[TrainResult]
) -> None:
    train, _, pool = digits
    sampler = (
        EnsembleSampler([r.model for r in ensemble])
        if which == "ensemble"
        else LaplaceSampler(fit_laplace(ensemble[0].model, *train, num_classes=10), samples=5)
    )
    chunk = concat_chunks(score_chunks(sampler, iter_batches(pool, 32), heuristic="bald", keep_samples=True))
    assert chunk.samples is not None and chunk.samples.shape[2] in (3, 5) and len(chunk.ids) == 100
    assert chunk.uncertainty.max() > 0
    for heuristic in (bald, entropy, margin):
        scores = heuristic(chunk.samples)
        assert scores.shape == (100,) and np.isfinite(scores).all()


def test_calibration_of_known_predictions() -> None:
    right = np.array([[0.9, 0.1], [0.2, 0.8]])
    out = calibration(right, np.array([0, 1]), bins=10)
    assert out["ece"] == pytest.approx(0.15) and out["nll"] == pytest.approx(-np.log([0.9, 0.8]).mean(), abs=1e-4)
    assert calibration(np.array([[1.0, 0.0]]), np.array([0]))["ece"] == 0.0
