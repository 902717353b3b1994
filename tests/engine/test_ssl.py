"""Self-supervised pretraining (engine.ssl): the contrastive loss falls on a tiny set, the run is bounded and
seeded, and the exported TorchScript trunk loads through the frozen-backbone path with no alweb code."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from engine.architectures import ImageCNN, load_backbone
from engine.augment import AugmentConfig, augment
from engine.backbone import backbone_format, feature_dim, load_network, network_features
from engine.ssl import SSLConfig, export_torchscript, nt_xent, planned_epochs, pretrain

TINY = SSLConfig(epochs=1, min_steps=40, batch_size=64, augment=AugmentConfig(flip=False), seed=3)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread, as the benchmarks run: on a shared 2-core machine two threads contend and run slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    return (load_digits().images[:128, None] / 16.0).astype(np.float32)


def test_nt_xent_is_low_when_views_agree_and_high_when_they_do_not() -> None:
    # One generator for both: the global one may sit at seed 0 after another test, and then draw `z` again.
    g = torch.Generator().manual_seed(0)
    z, other = torch.randn(16, 8, generator=g), torch.randn(16, 8, generator=g)
    assert nt_xent(z, z, 0.5) < nt_xent(z, other, 0.5)


def test_views_are_random_in_range_and_repeatable() -> None:
    x = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    config = AugmentConfig(flip=True, noise=0.0)
    a = augment(x, config, torch.Generator().manual_seed(1))
    b = augment(x, config, torch.Generator().manual_seed(1))
    c = augment(x, config, torch.Generator().manual_seed(2))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0


def test_loss_falls_and_the_exported_trunk_serves_as_a_frozen_backbone(digits: np.ndarray) -> None:
    epochs: list[tuple[int, int]] = []
    result = pretrain(digits, TINY, device="cpu", on_epoch=lambda done, total: epochs.append((done, total)))
    assert result.epochs_run == planned_epochs(TINY, len(digits)) == 20  # 2 steps an epoch, stretched to 40 steps
    assert epochs[-1] == (20, 20) and result.stopped_by == "epochs"
    assert np.mean(result.losses[-3:]) < result.losses[0]
    data = export_torchscript(result.trunk)
    assert backbone_format(data) == "torchscript"
    network = load_network(data)
    assert feature_dim(network, channels=1, size=8, mean=result.mean, std=result.std) == result.feature_dim == 512
    loaded = network_features(network, digits[:5], mean=result.mean, std=result.std)
    direct = network_features(result.trunk, digits[:5], mean=result.mean, std=result.std)
    np.testing.assert_allclose(loaded, direct, rtol=1e-5, atol=1e-5)
    # Same shape as the compact CNN's trunk: its weights also load into the CNN a project trains end to end.
    assert load_backbone(ImageCNN(10, image_size=8, channels=1), result.trunk.state_dict()) == []


def test_a_seeded_run_repeats_and_a_time_budget_stops_it(digits: np.ndarray) -> None:
    config = SSLConfig(epochs=2, min_steps=0, batch_size=64, seed=5)
    a, b = pretrain(digits, config, device="cpu"), pretrain(digits, config, device="cpu")
    assert a.losses == b.losses
    stopped = pretrain(digits, SSLConfig(epochs=5, min_steps=0, max_seconds=0, batch_size=64), device="cpu")
    assert stopped.epochs_run == 1 and stopped.stopped_by == "time"
    with pytest.raises(ValueError, match="at least"):
        pretrain(digits[:3], config, device="cpu")
