"""Self-supervised pretraining of alweb's image trunk on a project's own unlabeled images (SimCLR).

Two random views of every image (``engine.augment``: crop, flip where allowed, colour jitter, greyscale, noise) go
through the trunk and a small projection MLP; the NT-Xent loss pulls the two views of an image together and pushes
the other images of the batch away. No label is used. The trunk is ``ImageCNN.features`` for the project's image
size and channels (the compact CNN's own convolutional part, so its state_dict loads into that CNN as well), with
its output flattened: ``[N, C, H, W] -> [N, D]``, exactly what a frozen backbone must return (``engine.backbone``).

The trunk sees images normalised like every supplied backbone (``engine.backbone.default_normalisation``), so the
exported file slots into the frozen-backbone path with its default preprocessing. Bounded by epochs and seconds,
whichever comes first; runs on ``ALWEB_DEVICE`` (``engine.device``), with mixed precision on CUDA.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import nn

from engine.architectures import ImageCNN
from engine.augment import AugmentConfig, augment
from engine.backbone import default_normalisation, normalise
from engine.device import autocast, needs_grad_scaler, resolve_device, rng_devices

ProgressFn = Callable[[int, int], None]  # (epochs done, epochs planned)
MIN_IMAGES = 8  # a contrastive batch needs other images to push away


@dataclass(frozen=True)
class SSLConfig:
    """Pretraining settings. Defaults chosen once on the benchmark's dev seeds (docs/models.md, "Self-supervised
    trunk"); ``max_seconds`` bounds a run whatever the pool's size."""

    epochs: int = 30
    # Small pools make short epochs: the schedule is stretched to at least this many optimizer steps.
    min_steps: int = 500
    max_seconds: float = 600.0
    batch_size: int = 256
    temperature: float = 0.5
    lr: float = 1e-3
    weight_decay: float = 1e-6
    projection_dim: int = 64
    # Half-strength views (crops down to ~2/3 of the area, jitter +/-0.2): chosen with the rest on the dev seeds.
    augment: AugmentConfig = field(default_factory=lambda: AugmentConfig(strength=0.5))
    seed: int = 0

    def params(self) -> dict[str, Any]:
        return {**{k: v for k, v in asdict(self).items() if k != "augment"}, **_prefixed(asdict(self.augment))}


def _prefixed(values: dict[str, Any]) -> dict[str, Any]:
    return {f"augment_{k}": v for k, v in values.items()}


class Trunk(nn.Module):
    """``ImageCNN.features`` with its output flattened to one feature vector per image."""

    def __init__(self, image_size: int | Sequence[int], channels: int) -> None:
        super().__init__()
        self.features = ImageCNN(2, image_size=image_size, channels=channels).features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.features(x), 1)


@dataclass
class SSLResult:
    trunk: Trunk  # on the CPU, in eval mode
    losses: list[float]  # mean NT-Xent per epoch
    epochs_run: int
    seconds: float
    feature_dim: int
    stopped_by: str  # "epochs" or "time"
    mean: tuple[float, ...]
    std: tuple[float, ...]


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's loss: for each of the 2n views, cross-entropy of finding its partner among the 2n - 1 others by
    cosine similarity / temperature."""
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    sim = (z @ z.T) / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, targets)


def _projection(dim: int, out: int) -> nn.Module:
    return nn.Sequential(nn.Linear(dim, dim), nn.ReLU(inplace=True), nn.Linear(dim, out))


def planned_epochs(config: SSLConfig, n: int) -> int:
    """Epochs over ``n`` images: ``config.epochs``, or more when that is fewer than ``config.min_steps`` steps."""
    steps = max(1, n // min(config.batch_size, n))
    return max(config.epochs, -(-config.min_steps // steps))


def pretrain(
    images: NDArray[np.float32],
    config: SSLConfig | None = None,
    *,
    device: str | torch.device | None = None,
    on_epoch: ProgressFn | None = None,
) -> SSLResult:
    """Pretrain a trunk on ``images`` ([N, C, H, W] in [0, 1]); weights, batches and views drawn from
    ``config.seed`` alone (the caller's random stream is untouched)."""
    config = config or SSLConfig()
    if images.ndim != 4 or len(images) < MIN_IMAGES:
        raise ValueError(f"need at least {MIN_IMAGES} images as [N, C, H, W], got shape {list(images.shape)}")
    dev = resolve_device(device)
    channels, size = int(images.shape[1]), (int(images.shape[2]), int(images.shape[3]))
    mean, std = default_normalisation(channels)
    with torch.random.fork_rng(devices=rng_devices()):
        torch.manual_seed(config.seed)
        trunk = Trunk(size, channels)
        dim = int(trunk(torch.zeros(2, channels, *size)).shape[1])
        head = _projection(dim, config.projection_dim)
    trunk.to(dev).train()
    head.to(dev).train()
    params = [*trunk.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    scaler = torch.amp.GradScaler("cuda") if needs_grad_scaler(dev) else None
    gen = torch.Generator(device=dev).manual_seed(config.seed)
    data = torch.as_tensor(images, dtype=torch.float32).to(dev)
    n = len(data)
    batch = min(config.batch_size, n)
    steps = max(1, n // batch)  # drop the ragged last batch: a batch of one has no negatives (and breaks BN)
    epochs = planned_epochs(config, n)
    started = time.perf_counter()
    losses: list[float] = []
    stopped_by = "epochs"
    for epoch in range(epochs):
        order = torch.randperm(n, generator=gen, device=dev)
        total = 0.0
        for step in range(steps):
            x = data[order[step * batch : (step + 1) * batch]]
            v1 = normalise(augment(x, config.augment, gen), mean, std)
            v2 = normalise(augment(x, config.augment, gen), mean, std)
            with autocast(dev):
                loss = nt_xent(head(trunk(v1)), head(trunk(v2)), config.temperature)
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
            total += float(loss.detach())
        losses.append(total / steps)
        if on_epoch is not None:
            on_epoch(epoch + 1, epochs)
        if time.perf_counter() - started >= config.max_seconds and epoch + 1 < epochs:
            stopped_by = "time"
            break
    _recalibrate(trunk, data, mean, std, batch)
    return SSLResult(
        trunk=trunk.cpu().eval(),
        losses=losses,
        epochs_run=len(losses),
        seconds=round(time.perf_counter() - started, 2),
        feature_dim=dim,
        stopped_by=stopped_by,
        mean=mean,
        std=std,
    )


def _recalibrate(trunk: Trunk, data: torch.Tensor, mean: Sequence[float], std: Sequence[float], batch: int) -> None:
    """BatchNorm statistics recomputed on the plain (un-augmented) images: features are computed on those, and
    the running averages from training describe augmented views."""
    norms = [m for m in trunk.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the pass
    trunk.train()
    with torch.no_grad():
        for lo in range(0, len(data), batch):
            trunk(normalise(data[lo : lo + batch], mean, std))
    for m in norms:
        m.momentum = 0.1
    trunk.eval()


def export_torchscript(trunk: nn.Module) -> bytes:
    """The trunk as a TorchScript file: loads with ``engine.backbone.load_network`` and needs no alweb code."""
    scripted = torch.jit.script(trunk.cpu().eval())
    buf = io.BytesIO()
    torch.jit.save(scripted, buf)
    return buf.getvalue()
