"""Fine-tuning a supplied TorchScript backbone (engine.finetune) and training augmentation (engine.augment)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from torch import nn

from engine.augment import PRESETS, Augment, augment_batch
from engine.backbone import BackboneError
from engine.finetune import LR_SCALE, FineTuneModel, ScriptTrunk, finetune_check, trainable_trunk
from engine.recipes import train_config
from engine.scoring import MCDropout
from engine.training import train_classifier


class Trunk(nn.Module):
    """[N, 3, 8, 8] -> [N, 16], with an optional dropout layer inside."""

    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.drop = nn.Dropout(dropout) if dropout else nn.Identity()
        self.pool = nn.AdaptiveAvgPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(torch.flatten(self.pool(torch.relu(self.bn(self.conv(x)))), 1))


def scripted(dropout: float = 0.0) -> torch.jit.ScriptModule:
    """A backbone as a user brings it: saved TorchScript, loaded without its class."""
    torch.manual_seed(0)
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(Trunk(dropout).eval()), buf)
    module = torch.jit.load(io.BytesIO(buf.getvalue()))
    module.eval()
    return module


def model(dropout_in_trunk: float, head_dropout: float = 0.3) -> FineTuneModel:
    torch.manual_seed(1)
    trunk = trainable_trunk(scripted(dropout_in_trunk))
    return FineTuneModel(trunk, 3, feature_dim=16, mean=(0.5,) * 3, std=(0.25,) * 3, dropout=head_dropout)


def data(n: int = 48) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.rand(n, 3, 8, 8, generator=gen), torch.arange(n) % 3


def test_finetune_trains_the_backbone_slower_and_reloads_exactly_from_pickle() -> None:
    m = model(0.0)
    groups = m.optimizer_groups(1e-3)
    assert [g["lr"] for g in groups] == pytest.approx([1e-3 * LR_SCALE, 1e-3])
    before = {k: v.clone() for k, v in m.features.state_dict().items()}
    x, y = data()
    result = train_classifier(
        m, (x, y), (x[:12], y[:12]), num_classes=3, config=train_config(m, seed=0, epochs=2, min_steps=0)
    )
    after = result.model.features.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if k.endswith("weight"))  # the trunk trained
    # The pickle format MLflow logs: the scripted trunk travels as TorchScript bytes, no architecture code needed.
    buf = io.BytesIO()
    torch.save(result.model, buf)
    again = torch.load(io.BytesIO(buf.getvalue()), weights_only=False)
    assert isinstance(again.features[1], ScriptTrunk) and isinstance(again.features[1].net, torch.jit.ScriptModule)
    with torch.inference_mode():
        assert torch.equal(again(x), result.model(x))


def test_patched_backbone_dropout_samples_and_a_deterministic_backbone_runs_once() -> None:
    x, _ = data(6)
    # Head dropout 0: any spread between the MC samples comes from the backbone's own dropout.
    sampler = MCDropout(model(0.5, head_dropout=0.0), iterations=8, embeddings=True)
    probs, emb = sampler(x)
    assert probs.std(axis=2).max() > 1e-4  # patched: the scripted dropout samples at inference
    _prefix, suffix = sampler._split  # type: ignore[misc]
    assert isinstance(suffix[0], ScriptTrunk)  # the whole network runs T times
    np.testing.assert_allclose(sampler(x)[1], emb)  # embeddings: one pass with every dropout off
    plain = model(0.5, head_dropout=0.0).eval()
    with torch.inference_mode():
        assert torch.equal(plain(x), plain(x))  # unpatched (validation, predict_logits): deterministic
    without = MCDropout(model(0.0, head_dropout=0.0), iterations=8)
    assert np.ptp(without(x)[0], axis=2).max() == 0
    assert any(isinstance(s, ScriptTrunk) for s in without._split[0])  # type: ignore[index]  # run once per batch


def test_an_exported_program_or_a_network_without_weights_is_refused() -> None:
    exported = torch.export.export(Trunk().eval(), (torch.rand(2, 3, 8, 8),)).module()
    with pytest.raises(BackboneError, match=r"torch\.export program"):
        trainable_trunk(exported)
    with pytest.raises(BackboneError, match="no trainable weights"):
        finetune_check(torch.jit.script(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())), channels=3, size=8)
    finetune_check(scripted(0.5), channels=3, size=8)


def test_augmentation_is_deterministic_per_seed_and_changes_the_batch() -> None:
    x, y = data()
    aug = Augment(flip=True, crop=0.25, jitter=0.3)
    a = augment_batch(x, aug, torch.Generator().manual_seed(3))
    assert torch.equal(a, augment_batch(x, aug, torch.Generator().manual_seed(3)))
    assert not torch.equal(a, x) and a.shape == x.shape and float(a.min()) >= 0 and float(a.max()) <= 1
    assert torch.equal(augment_batch(x, PRESETS["off"], torch.Generator()), x)

    def trained(seed: int, augment: Augment | None) -> dict[str, torch.Tensor]:
        m = model(0.0)
        config = train_config(m, seed=seed, epochs=2, min_steps=0, augment=augment)
        assert config.augment == augment
        return train_classifier(m, (x, y), None, num_classes=3, config=config).model.state_dict()

    first, again = trained(0, aug), trained(0, aug)
    assert all(torch.equal(first[k], again[k]) for k in first)
    plain = trained(0, None)
    assert any(not torch.equal(first[k], plain[k]) for k in first)  # the batches were augmented
