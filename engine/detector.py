"""A compact anchor-free detector in plain torch (CenterNet-style), with MC dropout in its heads.

The trunk is the image classifier's (conv-BN-ReLU blocks, engine.architectures) stopped at stride 4, so a 64 px image
gives a 16 x 16 grid. Three heads read it: a class heatmap (one channel per class, a peak at each object's centre),
the box size (width, height as fractions of the image) and the centre's offset inside its cell. Each head is
conv-ReLU-Dropout-conv: dropout only in the heads, so MC dropout runs the trunk once and the heads T times, as the
classifiers' scoring does (engine.scoring).

Boxes are alweb's: ``{label, x, y, w, h, score}`` with the top-left corner and size as fractions of the image.
Decoding reads boxes at heatmap peaks (a 3 x 3 max-pool keeps local maxima, CenterNet's NMS), so every box is
anchored to one cell of one class: its T MC samples are read at the same cell, which gives box-level uncertainty
without matching boxes across samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn
from torch.nn import functional as F

STRIDE = 4
# The heatmap's initial bias: sigmoid(-2.19) = 0.1, CenterNet's prior, so the focal loss starts stable.
_HEAT_PRIOR = -2.19


def _block(c_in: int, c_out: int, *, pool: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
    return [*layers, nn.MaxPool2d(2)] if pool else layers


def _head(c_in: int, hidden: int, c_out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, hidden, 3, padding=1), nn.ReLU(), nn.Dropout(dropout), nn.Conv2d(hidden, c_out, 1)
    )


class CenterHeads(nn.Module):
    """Heatmap logits, size and offset logits, concatenated on the channel axis: [B, C + 4, h, w]."""

    def __init__(self, c_in: int, num_classes: int, *, hidden: int, dropout: float) -> None:
        super().__init__()
        self.heat = _head(c_in, hidden, num_classes, dropout)
        self.box = _head(c_in, hidden, 4, dropout)
        last = self.heat[-1]
        assert isinstance(last, nn.Conv2d) and last.bias is not None
        nn.init.constant_(last.bias, _HEAT_PRIOR)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.heat(f), self.box(f)], dim=1)


class CenterDetector(nn.Module):
    """``heads(features(x))``, one tensor out (what MLflow's torch flavour logs and serves)."""

    def __init__(
        self, num_classes: int, image_size: int = 64, channels: int = 3, *, width: int = 32, dropout: float = 0.3
    ) -> None:
        super().__init__()
        if image_size < 2 * STRIDE:
            raise ValueError(f"image_size must be at least {2 * STRIDE}, got {image_size}")
        self.config = {
            "num_classes": num_classes,
            "image_size": image_size,
            "channels": channels,
            "width": width,
            "dropout": dropout,
        }
        self.num_classes = num_classes
        self.features = nn.Sequential(
            *_block(channels, width, pool=True),
            *_block(width, width * 2, pool=True),
            *_block(width * 2, width * 2, pool=False),
        )
        self.head = CenterHeads(width * 2, num_classes, hidden=width * 2, dropout=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


# ---------------------------------------------------------------------------------------------------- targets, loss


def targets(boxes: Sequence[Sequence[dict[str, Any]]], labels: Sequence[str], grid: int) -> dict[str, torch.Tensor]:
    """Training targets for a batch of images' boxes on a `grid` x `grid` output.

    heat [B, C, g, g]: an elliptic Gaussian per box (sigma a sixth of the box's size in cells, TTFNet's choice) with
    exactly 1 at its centre cell; box [B, 4, g, g] and mask [B, g, g] at centre cells: size (fractions of the
    image) and offset of the centre inside its cell. Boxes of unknown labels are ignored."""
    index = {label: i for i, label in enumerate(labels)}
    n, c = len(boxes), len(labels)
    heat = torch.zeros(n, c, grid, grid)
    box = torch.zeros(n, 4, grid, grid)
    mask = torch.zeros(n, grid, grid)
    ys, xs = torch.meshgrid(
        torch.arange(grid, dtype=torch.float32), torch.arange(grid, dtype=torch.float32), indexing="ij"
    )
    for b, image_boxes in enumerate(boxes):
        for bx in image_boxes:
            k = index.get(str(bx["label"]))
            w, h = float(bx["w"]), float(bx["h"])
            if k is None or w <= 0 or h <= 0:
                continue
            cx, cy = (float(bx["x"]) + w / 2) * grid, (float(bx["y"]) + h / 2) * grid
            i, j = min(int(cx), grid - 1), min(int(cy), grid - 1)
            sx, sy = max(w * grid / 6, 0.35), max(h * grid / 6, 0.35)
            g = torch.exp(-((xs - (i + 0.5)) ** 2) / (2 * sx**2) - ((ys - (j + 0.5)) ** 2) / (2 * sy**2))
            heat[b, k] = torch.maximum(heat[b, k], g)
            heat[b, k, j, i] = 1.0
            box[b, :, j, i] = torch.tensor([w, h, cx - i, cy - j])
            mask[b, j, i] = 1.0
    return {"heat": heat, "box": box, "mask": mask}


def loss(out: torch.Tensor, target: dict[str, torch.Tensor], num_classes: int) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss on the heatmap, plus L1 on size and offset at centre cells."""
    heat = torch.sigmoid(out[:, :num_classes]).clamp(1e-4, 1 - 1e-4)
    t = target["heat"]
    pos = t.eq(1).float()
    pos_loss = (torch.log(heat) * (1 - heat) ** 2 * pos).sum()
    neg_loss = (torch.log(1 - heat) * heat**2 * (1 - t) ** 4 * (1 - pos)).sum()
    n_pos = pos.sum().clamp(min=1.0)
    focal = -(pos_loss + neg_loss) / n_pos
    mask = target["mask"].unsqueeze(1)
    pred_box = torch.sigmoid(out[:, num_classes:])
    size_l1 = (torch.abs(pred_box[:, :2] - target["box"][:, :2]) * mask).sum() / n_pos
    offset_l1 = (torch.abs(pred_box[:, 2:] - target["box"][:, 2:]) * mask).sum() / n_pos
    # Sizes are fractions of the image (a 10 px box in 64 px is 0.16): weighted up to count like the offsets' cells.
    return focal + 5.0 * size_l1 + offset_l1


# ---------------------------------------------------------------------------------------------------- decoding


@dataclass
class Detections:
    """The boxes of one image with their MC statistics (one entry per box, in decreasing score)."""

    boxes: list[dict[str, Any]]
    score_std: NDArray[np.float64]  # standard deviation of the box's score over the T samples
    location_iou: NDArray[np.float64]  # mean IoU of each sample's box with the mean box: 1 = stable localisation


def _peaks(heat: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores [B, k], flat indices into C*g*g [B, k]) of the top-k local maxima of a [B, C, g, g] heatmap."""
    keep = F.max_pool2d(heat, 3, stride=1, padding=1).eq(heat)
    flat = (heat * keep).flatten(1)
    scores, index = flat.topk(min(k, flat.shape[1]), dim=1)
    return scores, index


def _xywh(box: torch.Tensor, col: torch.Tensor, row: torch.Tensor, grid: int) -> torch.Tensor:
    """[..., 4] boxes (x, y, w, h fractions) from sigmoid box outputs (w, h, offset x, offset y) at cells."""
    w, h = box[..., 0], box[..., 1]
    cx, cy = (col + box[..., 2]) / grid, (row + box[..., 3]) / grid
    x0, y0 = (cx - w / 2).clamp(0, 1), (cy - h / 2).clamp(0, 1)
    x1, y1 = (cx + w / 2).clamp(0, 1), (cy + h / 2).clamp(0, 1)
    return torch.stack([x0, y0, x1 - x0, y1 - y0], dim=-1)


def _iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of xywh boxes, broadcast over leading dims."""
    ix = (torch.minimum(a[..., 0] + a[..., 2], b[..., 0] + b[..., 2]) - torch.maximum(a[..., 0], b[..., 0])).clamp(0)
    iy = (torch.minimum(a[..., 1] + a[..., 3], b[..., 1] + b[..., 3]) - torch.maximum(a[..., 1], b[..., 1])).clamp(0)
    inter = ix * iy
    union = a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter
    return inter / union.clamp(min=1e-9)


def decode(
    samples: torch.Tensor, labels: Sequence[str], *, min_score: float = 0.05, max_boxes: int = 50
) -> list[Detections]:
    """Boxes from head outputs [T, B, C + 4, g, g] (T = 1 for a plain pass): peaks of the mean heatmap; each box's
    score, size and offset averaged over the samples, and its spread over them."""
    c = len(labels)
    probs = torch.sigmoid(samples)
    heat_t, box_t = probs[:, :, :c], probs[:, :, c:]
    heat, box = heat_t.mean(0), box_t.mean(0)
    grid = heat.shape[-1]
    scores, index = _peaks(heat, max_boxes)
    out: list[Detections] = []
    for b in range(heat.shape[0]):
        keep = scores[b] >= min_score
        idx = index[b][keep]
        cls, cell = idx // (grid * grid), idx % (grid * grid)
        row, col = (cell // grid).float(), (cell % grid).float()
        r, q = cell // grid, cell % grid
        mean_box = _xywh(box[b][:, r, q].T, col, row, grid)  # [k, 4]
        sample_box = _xywh(box_t[:, b][:, :, r, q].transpose(1, 2), col, row, grid)  # [T, k, 4]
        sample_score = heat_t[:, b][:, cls, r, q]  # [T, k]
        out.append(
            Detections(
                boxes=[
                    {
                        "label": labels[int(k)],
                        "x": round(float(xywh[0]), 6),
                        "y": round(float(xywh[1]), 6),
                        "w": round(float(xywh[2]), 6),
                        "h": round(float(xywh[3]), 6),
                        "score": round(float(s), 6),
                    }
                    for k, xywh, s in zip(cls, mean_box, scores[b][keep], strict=True)
                ],
                score_std=(sample_score.std(0, unbiased=False) if sample_score.numel() else torch.zeros(0))
                .double()
                .numpy(),
                location_iou=_iou(sample_box, mean_box.unsqueeze(0)).mean(0).double().numpy(),
            )
        )
    return out


def set_mc_dropout(model: nn.Module, on: bool) -> None:
    """Dropout modules sampling (MC) or not; everything else (batch norm) stays in eval mode."""
    model.eval()
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.train(on)


@torch.no_grad()
def predict(
    model: CenterDetector,
    images: torch.Tensor,
    labels: Sequence[str],
    *,
    iterations: int = 1,
    seed: int = 0,
    min_score: float = 0.05,
    batch_size: int = 64,
) -> tuple[list[Detections], NDArray[np.float32]]:
    """Detections per image, and the trunk's pooled features (embeddings for diversity-aware selection). With
    `iterations` > 1 the heads run that many times with dropout on (the trunk once)."""
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    set_mc_dropout(model, iterations > 1)
    detections: list[Detections] = []
    embeddings: list[torch.Tensor] = []
    try:
        for lo in range(0, len(images), batch_size):
            f = model.features(images[lo : lo + batch_size])
            samples = torch.stack([model.head(f) for _ in range(max(iterations, 1))])
            detections += decode(samples, labels, min_score=min_score)
            embeddings.append(f.mean(dim=(2, 3)))
    finally:
        set_mc_dropout(model, False)
        torch.random.set_rng_state(gen_state)
    emb = torch.cat(embeddings) if embeddings else torch.empty(0, int(model.config["width"]) * 2)
    return detections, emb.numpy().astype(np.float32)


def grid_size(image_size: int) -> int:
    """The heatmap's side for an input side: two 2x2 max-pools, each rounding down."""
    return image_size // STRIDE
