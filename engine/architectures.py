"""Model architectures in plain torch (there is no CPU torchvision on these machines).

Every model here exposes ``features`` (deterministic) and ``head`` (holds the dropout) with
``forward(x) == head(features(x))``. That contract is what lets the scoring engine run ``features`` once per batch
and only ``head`` T times; keep it when adding an architecture (the engine verifies it and falls back otherwise).
Dropout lives only in the head: dropout in the convolutional trunk would force the whole network to run T times.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


class FeaturesHeadModel(nn.Module):
    """``head(features(x))``; subclasses only build the two parts."""

    features: nn.Module
    head: nn.Module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class ImageCNN(FeaturesHeadModel):
    """Compact CNN: conv blocks (conv-BN-ReLU-maxpool), then Flatten-Linear-ReLU-Dropout-Linear.

    The number of blocks follows the image size (halve until the short side is <= 4, at most ``max_blocks``), and an
    adaptive pool bounds the flattened size so large images don't blow up the first linear layer.
    """

    def __init__(
        self,
        num_classes: int,
        image_size: int | Sequence[int] = 64,
        channels: int = 3,
        *,
        width: int = 32,
        max_blocks: int = 4,
        hidden: int = 128,
        dropout: float = 0.5,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        h, w = _pair(image_size)
        self.config = {
            "num_classes": num_classes,
            "image_size": [h, w],
            "channels": channels,
            "width": width,
            "max_blocks": max_blocks,
            "hidden": hidden,
            "dropout": dropout,
            "batch_norm": batch_norm,
        }
        layers: list[nn.Module] = []
        c_in, side = channels, min(h, w)
        blocks = 0
        while blocks < max_blocks and (blocks == 0 or side > 4):
            c_out = min(width * 2**blocks, 256)
            layers.append(nn.Conv2d(c_in, c_out, 3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(c_out))
            layers += [nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c_in, side, blocks = c_out, side // 2, blocks + 1
            h, w = h // 2, w // 2
        pool = (min(h, 4), min(w, 4))
        layers.append(nn.AdaptiveAvgPool2d(pool))
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c_in * pool[0] * pool[1], hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )


class TextHead(FeaturesHeadModel):
    """Dropout MLP on frozen sentence embeddings: Linear-ReLU | Dropout-Linear."""

    def __init__(self, num_classes: int, in_dim: int = 384, *, hidden: int = 256, dropout: float = 0.3) -> None:
        super().__init__()
        self.config = {"num_classes": num_classes, "in_dim": in_dim, "hidden": hidden, "dropout": dropout}
        self.features = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, num_classes))


class ReferenceCNN(FeaturesHeadModel):
    """The benchmark's reference model: 4 conv layers + 2 linear layers, dropout only in the head, 3x64x64 in.

    conv 3-32-64-128-128 (3x3, ReLU, maxpool 2) -> 128x4x4 -> Linear 2048-256 -> ReLU -> Dropout 0.5 -> Linear 256-C.
    """

    def __init__(self, num_classes: int = 10, channels: int = 3) -> None:
        super().__init__()
        self.config = {"num_classes": num_classes, "channels": channels}
        widths = [channels, 32, 64, 128, 128]
        layers: list[nn.Module] = []
        for c_in, c_out in itertools.pairwise(widths):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Sequential(
            nn.Linear(128 * 4 * 4, 256),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            nn.Linear(256, num_classes),
        )


def load_backbone(
    model: FeaturesHeadModel,
    state: Mapping[str, torch.Tensor] | str | Path,
    *,
    freeze: bool = False,
) -> list[str]:
    """Load a user-supplied backbone state_dict into ``model.features``; return the feature keys left untouched.

    Accepts keys with or without a ``features.`` prefix (a whole-model state_dict or a backbone-only one); other keys
    (e.g. an old classifier head sized for other labels) are ignored on purpose, since the head is always
    re-initialised for the project's label set. Shape mismatches raise, because a silently half-loaded backbone
    trains to a worse model without any error.
    """
    loaded: Mapping[str, torch.Tensor] = (
        torch.load(state, map_location="cpu", weights_only=True) if isinstance(state, str | Path) else state
    )
    own = model.features.state_dict()
    picked: dict[str, torch.Tensor] = {}
    for key, value in loaded.items():
        bare = key.removeprefix("features.")
        if bare in own:
            if own[bare].shape != value.shape:
                raise ValueError(f"backbone key {key!r}: shape {tuple(value.shape)} != {tuple(own[bare].shape)}")
            picked[bare] = value
    if not picked:
        raise ValueError("no backbone key matches model.features (expected keys like 'features.0.weight')")
    model.features.load_state_dict(picked, strict=False)
    if freeze:
        for p in model.features.parameters():
            p.requires_grad_(False)
    return sorted(set(own) - set(picked))
