"""engine.backbone: a user's network loaded from bytes without its code, checked on a dummy batch, run in batches."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from torch import nn

from engine.backbone import BackboneError, backbone_format, feature_dim, load_network, network_features, normalise


class Trunk(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(nn.functional.adaptive_avg_pool2d(self.conv(x), 1), 1)


MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def test_torchscript_and_export_programs_load_without_their_code_and_give_the_same_features() -> None:
    torch.manual_seed(0)
    trunk = Trunk().eval()
    scripted = io.BytesIO()
    torch.jit.save(torch.jit.script(trunk), scripted)
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(trunk, (torch.zeros(2, 3, 8, 8),), dynamic_shapes=({0: batch},))
    exported = io.BytesIO()
    torch.export.save(program, exported)
    weights = io.BytesIO()
    torch.save(trunk.state_dict(), weights)
    assert backbone_format(scripted.getvalue()) == "torchscript"
    assert backbone_format(exported.getvalue()) == "export"
    assert backbone_format(weights.getvalue()) == "state_dict"
    assert backbone_format(b"junk") is None

    images = np.random.default_rng(0).random((5, 3, 8, 8), dtype=np.float32)
    with torch.inference_mode():
        expected = trunk(normalise(torch.as_tensor(images), MEAN, STD)).numpy()
    for data in (scripted.getvalue(), exported.getvalue()):
        module = load_network(data)
        assert feature_dim(module, channels=3, size=8, mean=MEAN, std=STD) == 4
        got = network_features(module, images, mean=MEAN, std=STD, batch_size=2)  # batches of 2, 2, 1
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(BackboneError, match="is not a TorchScript file"):
        load_network(weights.getvalue())  # weights need alweb's own CNN: not a network on its own


def test_normalise_is_per_channel() -> None:
    x = torch.ones(1, 3, 2, 2)
    out = normalise(x, MEAN, STD)
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([(1 - m) / s for m, s in zip(MEAN, STD, strict=True)]))
