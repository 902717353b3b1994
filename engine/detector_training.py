"""Training the CenterNet-style detector (engine.detector) on labeled boxes, and scoring a pool with MC dropout.

Training keeps the checkpoint with the best validation mAP@0.5 when validation boxes exist (the last one
otherwise) and measures the test split once, at the end: test labels never choose. Deterministic for a seed on CPU
(shuffling, flips and dropout masks all come from seeded generators).

Scoring turns a detector's MC samples into one uncertainty per image (higher = more informative), from the boxes
the detector would show (score >= BOX_THRESHOLD):

- ``min_confidence``: 1 - the lowest box score (one doubtful box sends the image to a human);
- ``mean_confidence``: 1 - the mean box score;
- ``mc_variance``: per box, the mean of its score's MC spread (2 x std, in [0, 1]) and its localisation
  instability (1 - mean IoU of each sample's box with the mean box), the image taking its least stable box.

An image without a box gets 1.0 (only a human can tell a true negative from a miss), as engine.detection does.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import NDArray

from engine.detection import Box, image_summary, image_uncertainty
from engine.detection_metrics import mean_average_precision
from engine.detector import CenterDetector, Detections, grid_size, loss, predict, targets
from engine.scoring import ScoreChunk

DetectorMethod = Literal["min_confidence", "mean_confidence", "mc_variance", "random"]
# YOLO's default display threshold: boxes below it are neither shown to annotators nor scored.
BOX_THRESHOLD = 0.25
# A cycle's heuristic, read for a detection project: the confidence-based ones map to the detection pipelines'
# own choices, the Bayesian ones (disagreement between MC samples) to the MC variance of boxes.
METHOD_FOR_HEURISTIC: dict[str, DetectorMethod] = {
    "least_confidence": "min_confidence",
    "margin": "min_confidence",
    "entropy": "mean_confidence",
    "bald": "mc_variance",
    "power_bald": "mc_variance",
    "variation_ratio": "mc_variance",
    "random": "random",
}

Boxes = Sequence[Sequence[dict[str, Any]]]


@dataclass(frozen=True)
class DetectorConfig:
    epochs: int = 40
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    # With few labels an epoch is one or two steps: stretched so a cycle's model is not left half trained.
    min_steps: int = 200
    seed: int = 0
    evaluate_every: int = 5  # validation mAP every this many epochs (and at the end)


@dataclass(frozen=True)
class DetectorEpoch:
    epoch: int
    train_loss: float
    val_map_50: float | None

    def metrics(self) -> dict[str, float]:
        out = {"train_loss": self.train_loss}
        if self.val_map_50 is not None:
            out["val_map_50"] = self.val_map_50
        return out


@dataclass
class DetectorResult:
    model: CenterDetector  # the kept checkpoint, eval mode
    epochs_run: int
    best_epoch: int
    history: list[DetectorEpoch] = field(default_factory=list)
    valid: dict[str, Any] | None = None
    test: dict[str, Any] | None = None

    def final_metrics(self) -> dict[str, float]:
        """Scalars for MLflow: ``best_val_map_50`` (validation chooses) and ``test_map``/``test_map_50``."""
        out: dict[str, float] = {}
        if self.valid is not None:
            out["best_val_map_50"] = float(self.valid["map_50"])
        if self.test is not None:
            out["test_map"], out["test_map_50"] = float(self.test["map"]), float(self.test["map_50"])
        return out


def _flip(images: torch.Tensor, boxes: Boxes, flip: torch.Tensor) -> tuple[torch.Tensor, list[list[dict[str, Any]]]]:
    """Horizontal flips of the images marked in `flip`, boxes mirrored with them (the cheapest augmentation that
    keeps every box valid; shapes and most objects look the same mirrored)."""
    images = images.clone()
    images[flip] = images[flip].flip(-1)
    out = []
    for n, image_boxes in enumerate(boxes):
        if bool(flip[n]):
            out.append([{**b, "x": 1.0 - float(b["x"]) - float(b["w"])} for b in image_boxes])
        else:
            out.append(list(image_boxes))
    return images, out


def evaluate(model: CenterDetector, images: torch.Tensor, boxes: Boxes, labels: Sequence[str]) -> dict[str, Any] | None:
    """mAP of a plain (no dropout) pass: every box above a low floor counts, as COCO's evaluation expects."""
    detections, _ = predict(model, images, labels, iterations=1, min_score=0.01)
    return mean_average_precision([d.boxes for d in detections], boxes, labels)


def train_detector(
    model: CenterDetector,
    train: tuple[torch.Tensor, Boxes],
    labels: Sequence[str],
    *,
    valid: tuple[torch.Tensor, Boxes] | None = None,
    test: tuple[torch.Tensor, Boxes] | None = None,
    config: DetectorConfig = DetectorConfig(),
    on_epoch: Callable[[DetectorEpoch], None] | None = None,
) -> DetectorResult:
    images, boxes = train
    n = len(images)
    if n == 0:
        raise ValueError("no training images")
    steps_per_epoch = -(-n // config.batch_size)
    epochs = max(config.epochs, -(-config.min_steps // steps_per_epoch))
    grid = grid_size(images.shape[-1])
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch)
    best: tuple[float, int, dict[str, Any]] | None = None
    history: list[DetectorEpoch] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)  # dropout masks
        for epoch in range(1, epochs + 1):
            model.train()
            order = torch.randperm(n, generator=generator)
            total = 0.0
            for lo in range(0, n, config.batch_size):
                idx = order[lo : lo + config.batch_size]
                flip = torch.rand(len(idx), generator=generator) < 0.5
                x, y = _flip(images[idx], [boxes[int(i)] for i in idx], flip)
                batch_loss = loss(model(x), targets(y, labels, grid), len(labels))
                optimizer.zero_grad()
                batch_loss.backward()
                optimizer.step()
                schedule.step()
                total += batch_loss.item() * len(idx)
            val_map = None
            if valid is not None and len(valid[0]) and (epoch % config.evaluate_every == 0 or epoch == epochs):
                measured = evaluate(model, valid[0], valid[1], labels)
                val_map = None if measured is None else float(measured["map_50"])
                if val_map is not None and (best is None or val_map > best[0]):
                    best = (val_map, epoch, copy.deepcopy(model.state_dict()))
            log = DetectorEpoch(epoch=epoch, train_loss=total / n, val_map_50=val_map)
            history.append(log)
            if on_epoch is not None:
                on_epoch(log)
    best_epoch = epochs
    if best is not None:
        model.load_state_dict(best[2])
        best_epoch = best[1]
    model.eval()
    return DetectorResult(
        model=model,
        epochs_run=epochs,
        best_epoch=best_epoch,
        history=history,
        valid=evaluate(model, valid[0], valid[1], labels) if valid is not None and len(valid[0]) else None,
        test=evaluate(model, test[0], test[1], labels) if test is not None and len(test[0]) else None,
    )


# ---------------------------------------------------------------------------------------------------- scoring


def image_scores(
    detections: Sequence[Detections], method: DetectorMethod, *, seed: int = 0, empty_value: float = 1.0
) -> NDArray[np.float64]:
    """One uncertainty per image from its shown boxes (see the module's docstring)."""
    if method == "random":
        return np.random.default_rng(seed).random(len(detections))
    out = np.empty(len(detections), dtype=np.float64)
    for n, d in enumerate(detections):
        shown = [k for k, b in enumerate(d.boxes) if b["score"] >= BOX_THRESHOLD]
        if not shown:
            out[n] = empty_value
        elif method == "mc_variance":
            spread = np.clip(2.0 * d.score_std[shown], 0.0, 1.0)
            unstable = np.clip(1.0 - d.location_iou[shown], 0.0, 1.0)
            out[n] = float(((spread + unstable) / 2.0).max())
        else:
            boxes = [Box(d.boxes[k]["label"], d.boxes[k]["score"]) for k in shown]
            out[n] = image_uncertainty(boxes, method=method, empty_value=empty_value)
    return out


def score_detector(
    model: CenterDetector,
    inputs: torch.Tensor,
    ids: Sequence[Any],
    labels: Sequence[str],
    *,
    iterations: int,
    heuristic: str,
    seed: int,
) -> ScoreChunk:
    """A chunk's scores in the engine's shape: per image its uncertainty, the most confident shown box's label and
    score, the shown boxes, and the trunk's pooled features as embeddings."""
    method = METHOD_FOR_HEURISTIC.get(heuristic, "min_confidence")
    detections, embeddings = predict(model, inputs, labels, iterations=iterations, seed=seed, min_score=BOX_THRESHOLD)
    index = {label: i for i, label in enumerate(labels)}
    summary = [image_summary([Box(b["label"], b["score"]) for b in d.boxes]) for d in detections]
    n = len(detections)
    return ScoreChunk(
        index=0,
        start=0,
        ids=list(ids),
        heuristic=f"detection:{method}",
        uncertainty=image_scores(detections, method, seed=seed),
        probs=np.zeros((n, max(1, len(labels))), dtype=np.float32),
        labels=np.asarray([index.get(str(label), -1) for label, _ in summary], dtype=np.int64),
        confidence=np.asarray([c for _, c in summary], dtype=np.float32),
        finite=np.ones(n, dtype=bool),
        embeddings=embeddings,
        boxes=[d.boxes for d in detections],
    )
