"""Training augmentation for image networks trained end to end, in plain torch (no CPU torchvision here).

Supervised training (``Augment``, ``augment_batch``) and the SimCLR views of self-supervised pretraining
(``AugmentConfig``, ``augment``, used by engine.ssl).

Applied to training batches only, on pixels in [0, 1] before the network's own normalisation, never to validation,
test or scoring inputs, and never to cached frozen features (a feature vector cannot be flipped). Every random draw
comes from the generator the caller passes, so training stays deterministic for a seed.

- ``flip``: mirror left-right with probability 1/2. Off unless asked: it changes what a symbol means (a mirrored
  2, a b that becomes a d); photos of objects usually allow it.
- ``crop``: shift the image by up to this share of its side in each direction (replicate-pad, then crop back to the
  size): the "random crop with padding" of the CIFAR recipes, which keeps the whole object in view.
- ``jitter``: brightness and contrast each scaled by a factor drawn from [1 - jitter, 1 + jitter].
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

# model_config.augment's bounds (campaigns.services.model_config checks them): past a third of the side a shifted
# crop loses the object, past a half a brightness factor can black the image out.
MAX_CROP = 0.3
MAX_JITTER = 0.5


@dataclass(frozen=True)
class Augment:
    flip: bool = False
    crop: float = 0.0
    jitter: float = 0.0

    @property
    def active(self) -> bool:
        return self.flip or self.crop > 0 or self.jitter > 0

    def params(self) -> dict[str, Any]:
        """Recorded with each model version (MLflow params)."""
        return {f"augment_{k}": v for k, v in asdict(self).items()}


# Named presets model_config.augment may take instead of an object. "light" is safe for symbols and digits (no
# flip); "photos" adds the flip, for photos of objects whose mirror image is the same class.
PRESETS: dict[str, Augment] = {
    "off": Augment(),
    "light": Augment(crop=0.1, jitter=0.1),
    "photos": Augment(flip=True, crop=0.1, jitter=0.2),
}


def augment_from(value: Any) -> Augment:
    """The Augment a validated ``model_config.augment`` names: a preset name, an object of keys, or false/true
    (true: the "light" preset)."""
    if value is None or value is False:
        return PRESETS["off"]
    if value is True:
        return PRESETS["light"]
    if isinstance(value, str):
        return PRESETS[value]
    if isinstance(value, Mapping):
        return Augment(
            flip=bool(value.get("flip", False)),
            crop=float(value.get("crop", 0.0)),
            jitter=float(value.get("jitter", 0.0)),
        )
    raise ValueError(f"augment must be a preset name, an object or a boolean, not {type(value).__name__}")


def _shift(x: torch.Tensor, frac: float, generator: torch.Generator) -> torch.Tensor:
    n, _, h, w = x.shape
    ph, pw = max(1, round(frac * h)), max(1, round(frac * w))
    padded = F.pad(x, (pw, pw, ph, ph), mode="replicate")
    dy = torch.randint(0, 2 * ph + 1, (n,), generator=generator).tolist()
    dx = torch.randint(0, 2 * pw + 1, (n,), generator=generator).tolist()
    return torch.stack([padded[i, :, y : y + h, x_ : x_ + w] for i, (y, x_) in enumerate(zip(dy, dx, strict=True))])


def _factor(n: int, amount: float, generator: torch.Generator) -> torch.Tensor:
    return (1.0 + (torch.rand(n, generator=generator) * 2 - 1) * amount).view(n, 1, 1, 1)


def augment_batch(x: torch.Tensor, aug: Augment, generator: torch.Generator) -> torch.Tensor:
    """A new [N, C, H, W] batch: each image flipped, shifted and jittered on its own draws. The input is not
    modified (it may be a view of the training tensor)."""
    if not aug.active or x.dim() != 4 or len(x) == 0:
        return x
    out = x
    if aug.flip:
        flip = torch.rand(len(x), generator=generator) < 0.5
        out = torch.where(flip.view(-1, 1, 1, 1), out.flip(-1), out)
    if aug.crop > 0:
        out = _shift(out, aug.crop, generator)
    if aug.jitter > 0:
        mean = out.mean(dim=(1, 2, 3), keepdim=True)
        contrast = _factor(len(x), aug.jitter, generator).to(out.dtype)
        brightness = _factor(len(x), aug.jitter, generator).to(out.dtype)
        out = (((out - mean) * contrast + mean) * brightness).clamp(0.0, 1.0)
    return out


# --- SimCLR views (engine.ssl) ---------------------------------------------------------------------------------
# Stronger than the supervised augmentation above: two views of one image must differ enough that the trunk has to
# learn what stays the same (SimCLR: random resized crop, flip, colour jitter, greyscale; plus a little noise).
# Batched with per-image parameters, every draw from a generator on the images' device: a GPU makes the views in a
# few kernels, without a copy back to the CPU.

_LUMA = (0.299, 0.587, 0.114)  # ITU-R 601 luma weights, as PIL's convert("L")


@dataclass(frozen=True)
class AugmentConfig:
    """SimCLR view settings; ``strength`` scales the crop range and the colour jitter together (SimCLR's single
    knob), so one number can be chosen on benchmark data."""

    flip: bool = False  # as for training: a mirrored symbol may be another class
    strength: float = 1.0
    min_scale: float = 0.35  # the smallest crop, as a share of the image's area, at strength 1
    ratio: tuple[float, float] = (3 / 4, 4 / 3)  # crop aspect ratios
    jitter: float = 0.4  # brightness, contrast, saturation factors in [1 - j, 1 + j], at strength 1
    jitter_p: float = 0.8
    grey_p: float = 0.2
    noise: float = 0.02  # standard deviation of added gaussian pixel noise

    def min_area(self) -> float:
        return float(min(1.0, max(0.05, 1.0 - (1.0 - self.min_scale) * self.strength)))


def _uniform(n: int, low: float, high: float, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=gen, device=device)


def random_resized_crop(
    x: torch.Tensor, *, min_area: float, ratio: tuple[float, float], flip: bool, gen: torch.Generator
) -> torch.Tensor:
    """A random crop of each image (area share in [min_area, 1], aspect in ``ratio``) resized back to the input
    size, mirrored half the time when ``flip``: one affine grid per image and a single ``grid_sample``."""
    n, device = x.shape[0], x.device
    area = _uniform(n, min_area, 1.0, gen, device)
    aspect = torch.exp(_uniform(n, math.log(ratio[0]), math.log(ratio[1]), gen, device))
    # Width and height as shares of the image; affine_grid's coordinates span [-1, 1].
    w = torch.sqrt(area * aspect).clamp(max=1.0)
    h = torch.sqrt(area / aspect).clamp(max=1.0)
    cx = (2 * torch.rand(n, generator=gen, device=device) - 1) * (1 - w)
    cy = (2 * torch.rand(n, generator=gen, device=device) - 1) * (1 - h)
    sign = torch.ones(n, device=device)
    if flip:
        sign = torch.where(torch.rand(n, generator=gen, device=device) < 0.5, -sign, sign)
    theta = torch.zeros(n, 2, 3, device=device, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = w * sign, cx, h, cy
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def _grey(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] != 3:
        return x.mean(dim=1, keepdim=True)
    w = torch.as_tensor(_LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


def colour_jitter(x: torch.Tensor, *, jitter: float, p: float, gen: torch.Generator) -> torch.Tensor:
    """Brightness, contrast and (colour images) saturation, each factor in [1 - jitter, 1 + jitter], on a share
    ``p`` of the images; the others pass unchanged."""
    n, device = x.shape[0], x.device
    if jitter <= 0 or p <= 0:
        return x

    def factor() -> torch.Tensor:
        f = _uniform(n, max(0.0, 1 - jitter), 1 + jitter, gen, device)
        keep = torch.rand(n, generator=gen, device=device) >= p
        return torch.where(keep, torch.ones_like(f), f).view(n, 1, 1, 1).to(x.dtype)

    x = x * factor()
    mean = _grey(x).mean(dim=(2, 3), keepdim=True)
    x = mean + (x - mean) * factor()
    if x.shape[1] == 3:
        grey = _grey(x)
        x = grey + (x - grey) * factor()
    return x.clamp(0.0, 1.0)


def random_grey(x: torch.Tensor, *, p: float, gen: torch.Generator) -> torch.Tensor:
    """A share ``p`` of colour images turned grey (kept 3-channel); grey images are returned as they are."""
    if x.shape[1] != 3 or p <= 0:
        return x
    pick = (torch.rand(x.shape[0], generator=gen, device=x.device) < p).view(-1, 1, 1, 1)
    return torch.where(pick, _grey(x).expand_as(x), x)


def augment(x: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """One random SimCLR view of each [N, C, H, W] image in [0, 1]: crop (and flip), colour jitter, greyscale,
    noise. ``generator`` lives on the images' device."""
    if x.dim() != 4 or len(x) == 0:
        return x
    gen = generator
    x = random_resized_crop(x, min_area=config.min_area(), ratio=config.ratio, flip=config.flip, gen=gen)
    x = colour_jitter(x, jitter=config.jitter * config.strength, p=config.jitter_p, gen=gen)
    x = random_grey(x, p=config.grey_p, gen=gen)
    if config.noise > 0:
        x = x + config.noise * torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
    return x
