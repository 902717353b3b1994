"""A user's pretrained image backbone: a network whose output is the feature vector alweb puts its head on.

Only formats that need no architecture code at load time: a TorchScript file (``torch.jit.save``) or a
``torch.export`` program (``torch.export.save``, .pt2). A pickled module would run arbitrary code and need the user's
classes installed in the workers. Input: [N, C, H, W] float32, normalised per channel with ``(x - mean) / std``
from pixels in [0, 1]; output: [N, D] float features.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from typing import IO, Literal

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

Format = Literal["torchscript", "export", "state_dict"]

# A supplied backbone was almost always pretrained on ImageNet with these statistics (torchvision's and timm's
# default); grey images get their mean.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
GREY_MEAN = (0.449,)
GREY_STD = (0.226,)
# Two images, not one: a network that squeezes or mixes the batch axis shows it only with N > 1.
PROBE_BATCH = 2


class BackboneError(ValueError):
    """The backbone cannot be used, in words a user can act on."""


def default_normalisation(channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    return (GREY_MEAN, GREY_STD) if channels == 1 else (IMAGENET_MEAN, IMAGENET_STD)


def backbone_format(data: bytes | IO[bytes]) -> Format | None:
    """What a saved file is, from its zip entries (every torch format is a zip archive), without unpickling it:
    TorchScript stores the module's code, torch.export an `archive_format` record, torch.save only pickled data."""
    try:
        with zipfile.ZipFile(io.BytesIO(data) if isinstance(data, bytes) else data) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile:
        return None
    if any(name.split("/", 2)[1:2] == ["archive_format"] or name == "archive_format" for name in names):
        return "export"
    if any("/code/" in name for name in names):
        return "torchscript"
    if any(name.endswith("data.pkl") for name in names):
        return "state_dict"
    return None


def load_network(data: bytes) -> nn.Module:
    """The network in a TorchScript file or torch.export program, on the CPU, in inference mode."""
    kind = backbone_format(data)
    try:
        if kind == "torchscript":
            module: nn.Module = torch.jit.load(io.BytesIO(data), map_location="cpu")
            module.eval()
            return module
        if kind == "export":
            # An exported program's module refuses eval(): it was captured in the mode it was exported in.
            return torch.export.load(io.BytesIO(data)).module()
    except Exception as exc:  # torch raises RuntimeError, pickle, zip and serialization errors alike
        raise BackboneError(f"does not load as a {kind} network: {str(exc)[:200]}") from exc
    raise BackboneError("is not a TorchScript file (torch.jit.save) or a torch.export program (torch.export.save)")


def feature_dim(
    module: nn.Module, *, channels: int, size: int, mean: Sequence[float], std: Sequence[float], seed: int = 0
) -> int:
    """Run a dummy batch of the configured input through the network; its feature width, or why it cannot serve.

    Random pixels, not zeros: a network whose output is NaN only for some inputs (a division by a variance) would
    pass on a constant image."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(PROBE_BATCH, channels, size, size, generator=gen)
    try:
        with torch.inference_mode():
            out = module(normalise(x, mean, std))
    except Exception as exc:
        raise BackboneError(
            f"fails on a [{PROBE_BATCH}, {channels}, {size}, {size}] float batch (the configured channels and "
            f"image_size; does it expect another input shape?): {str(exc).strip().splitlines()[-1][:200]}"
        ) from exc
    if not isinstance(out, torch.Tensor):
        raise BackboneError(f"returns {type(out).__name__}, not a tensor of features [N, D]")
    if not out.is_floating_point():
        raise BackboneError(f"returns a {out.dtype} tensor, not float features")
    if out.dim() != 2 or out.shape[0] != PROBE_BATCH or out.shape[1] < 1:
        raise BackboneError(
            f"returns shape {list(out.shape)} for {PROBE_BATCH} images: features must be [N, D] "
            "(flatten or pool the network's last layer)"
        )
    if not bool(torch.isfinite(out).all()):
        raise BackboneError("returns NaN or infinite features on a batch of random images")
    return int(out.shape[1])


def normalise(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    m = torch.as_tensor(list(mean), dtype=x.dtype).view(1, -1, 1, 1)
    s = torch.as_tensor(list(std), dtype=x.dtype).view(1, -1, 1, 1)
    return (x - m) / s


def network_features(
    module: nn.Module,
    images: NDArray[np.float32],
    *,
    mean: Sequence[float],
    std: Sequence[float],
    batch_size: int = 64,
) -> NDArray[np.float32]:
    """[N, D] features of [N, C, H, W] images in [0, 1], computed in batches so memory is one batch's."""
    parts: list[NDArray[np.float32]] = []
    with torch.inference_mode():
        for lo in range(0, len(images), batch_size):
            x = normalise(torch.as_tensor(images[lo : lo + batch_size]), mean, std)
            parts.append(module(x).float().cpu().numpy())
    return np.concatenate(parts).astype(np.float32, copy=False) if parts else np.empty((0, 0), dtype=np.float32)


def weight_bytes(module: nn.Module) -> int:
    """The bytes of a loaded network's parameters and buffers (an MLflow model has no single file to measure)."""
    tensors = [*module.parameters(), *module.buffers()]
    return int(sum(t.numel() * t.element_size() for t in tensors))
