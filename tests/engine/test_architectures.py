from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from engine.architectures import ImageCNN, ReferenceCNN, TextHead, load_backbone


@pytest.mark.parametrize(("size", "channels"), [(8, 1), (16, 1), (64, 3), ((48, 96), 3), (224, 3)])
def test_image_cnn_sizes_itself(size: int | tuple[int, int], channels: int) -> None:
    model = ImageCNN(5, size, channels).eval()
    h, w = (size, size) if isinstance(size, int) else size
    assert model(torch.randn(2, channels, h, w)).shape == (2, 5)
    assert not any(isinstance(m, nn.Dropout) for m in model.features.modules())  # dropout only in the head
    assert any(isinstance(m, nn.Dropout) for m in model.head.modules())


def test_reference_and_text_models() -> None:
    ref = ReferenceCNN().eval()
    assert ref(torch.randn(2, 3, 64, 64)).shape == (2, 10)
    assert sum(isinstance(m, nn.Conv2d) for m in ref.modules()) == 4
    assert sum(isinstance(m, nn.Linear) for m in ref.modules()) == 2
    assert TextHead(3).eval()(torch.randn(4, 384)).shape == (4, 3)


def test_load_backbone_from_a_whole_model_state_dict(tmp_path: Path) -> None:
    donor = ImageCNN(7, 32, 3)  # trained elsewhere on another label set
    path = tmp_path / "backbone.pt"
    torch.save(donor.state_dict(), path)
    model = ImageCNN(3, 32, 3)
    missing = load_backbone(model, path, freeze=True)
    assert missing == []
    for a, b in zip(model.features.state_dict().values(), donor.features.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert not any(p.requires_grad for p in model.features.parameters())
    with pytest.raises(ValueError, match="shape"):
        load_backbone(ImageCNN(3, 32, 1), donor.state_dict())  # 1-channel model, 3-channel backbone
    with pytest.raises(ValueError, match="no backbone key"):
        load_backbone(model, {"x.weight": torch.zeros(1)})
