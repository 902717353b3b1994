"""Image-level uncertainty for object detection, from the boxes a detector returned.

All methods return a value in [0, 1], higher = more informative, so a detection project shares the threshold and
budget semantics of classification projects:

- ``min_confidence``: 1 - lowest box confidence (the choice of the detection pipelines alweb replaces: one doubtful
  box is enough to send the image to a human);
- ``mean_confidence``: 1 - mean box confidence;
- ``margin``: per box 1 - (p1 - p2) over its class probabilities, aggregated over boxes (max by default);
- ``entropy``: per box entropy of its class probabilities normalised by log C (so it stays in [0, 1]), aggregated.

A box without a class-probability vector is read as the binary distribution [conf, 1 - conf].

Images with no box get ``empty_value`` (default 1.0, maximum uncertainty): an empty prediction is either a true
negative or a miss, and only a human can tell; set it to 0.0 for projects where most images are legitimately empty.
A non-finite confidence counts as 0 (a box the model could not score is maximally doubtful), mirroring the
classification heuristics' non-finite policy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

DetectionMethod = Literal["min_confidence", "mean_confidence", "margin", "entropy"]
DETECTION_METHODS: tuple[str, ...] = ("min_confidence", "mean_confidence", "margin", "entropy")


@dataclass(frozen=True)
class Box:
    label: Any
    confidence: float
    probs: Sequence[float] | None = None
    # (x, y, width, height) in whatever unit the detector uses; carried through to Label Studio predictions.
    bbox: tuple[float, float, float, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _conf(box: Box) -> float:
    c = float(box.confidence)
    return min(max(c, 0.0), 1.0) if math.isfinite(c) else 0.0


def _box_probs(box: Box) -> np.ndarray:
    if box.probs is not None and len(box.probs) >= 2:
        p = np.asarray(box.probs, dtype=np.float64)
        if np.isfinite(p).all() and p.sum() > 0:
            return np.clip(p, 0.0, None) / np.clip(p, 0.0, None).sum()
        return np.full(p.shape[0], 1.0 / p.shape[0])  # unscorable box -> uniform -> max uncertainty
    c = _conf(box)
    return np.array([c, 1.0 - c])


def box_uncertainties(boxes: Sequence[Box], method: DetectionMethod) -> np.ndarray:
    """One uncertainty per box, in [0, 1]."""
    if method == "min_confidence" or method == "mean_confidence":
        return np.array([1.0 - _conf(b) for b in boxes], dtype=np.float64)
    if method == "margin":
        out = []
        for b in boxes:
            top = np.sort(_box_probs(b))[-2:]
            out.append(1.0 - (top[1] - top[0]))
        return np.asarray(out, dtype=np.float64)
    if method == "entropy":
        out = []
        for b in boxes:
            p = _box_probs(b)
            h = -np.sum(p * np.log(np.where(p > 0, p, 1.0)))
            out.append(h / math.log(p.shape[0]))
        return np.clip(np.asarray(out, dtype=np.float64), 0.0, 1.0)
    raise ValueError(f"unknown detection method {method!r}; choose one of {DETECTION_METHODS}")


def image_uncertainty(
    boxes: Sequence[Box],
    *,
    method: DetectionMethod = "min_confidence",
    aggregate: Literal["max", "mean"] = "max",
    empty_value: float = 1.0,
    min_box_confidence: float = 0.0,
) -> float:
    """Uncertainty of one image. ``min_box_confidence`` drops boxes a detector would never show (e.g. YOLO's 0.25)."""
    kept = [b for b in boxes if _conf(b) >= min_box_confidence or not math.isfinite(float(b.confidence))]
    if not kept:
        return float(empty_value)
    per_box = box_uncertainties(kept, method)
    if method == "min_confidence":
        return float(per_box.max())  # 1 - min(conf) == max(1 - conf)
    if method == "mean_confidence":
        return float(per_box.mean())
    return float(per_box.max() if aggregate == "max" else per_box.mean())


def score_images(
    images: Sequence[Sequence[Box]],
    *,
    method: DetectionMethod = "min_confidence",
    aggregate: Literal["max", "mean"] = "max",
    empty_value: float = 1.0,
    min_box_confidence: float = 0.0,
) -> np.ndarray:
    """Uncertainty per image for a batch of per-image box lists."""
    return np.array(
        [
            image_uncertainty(
                boxes,
                method=method,
                aggregate=aggregate,
                empty_value=empty_value,
                min_box_confidence=min_box_confidence,
            )
            for boxes in images
        ],
        dtype=np.float64,
    )


def image_summary(boxes: Sequence[Box]) -> tuple[Any, float]:
    """(label of the most confident box, its confidence); (None, 0.0) for an empty image."""
    if not boxes:
        return None, 0.0
    best = max(boxes, key=_conf)
    return best.label, _conf(best)


def box_fractions(boxes: Sequence[Box], *, width: float, height: float) -> list[dict[str, Any]]:
    """Boxes as stored on a score and sent as pre-annotations: ``{label, x, y, w, h, score}`` with the top-left corner
    and size as fractions of the image (the shape of a detection label, so a prediction and an answer compare
    directly). ``bbox`` is read in pixels of the ``width`` x ``height`` image the detector saw; a box without one, or
    with no area left inside the image, cannot be drawn and is left out."""
    out: list[dict[str, Any]] = []
    for b in boxes:
        if b.bbox is None:
            continue
        x, y, w, h = (float(v) for v in b.bbox)
        if not all(math.isfinite(v) for v in (x, y, w, h)):
            continue
        x0, y0 = min(max(x / width, 0.0), 1.0), min(max(y / height, 0.0), 1.0)
        x1, y1 = min(max((x + w) / width, 0.0), 1.0), min(max((y + h) / height, 0.0), 1.0)
        if x1 <= x0 or y1 <= y0:
            continue
        out.append(
            {
                "label": str(b.label),
                "x": round(x0, 6),
                "y": round(y0, 6),
                "w": round(x1 - x0, 6),
                "h": round(y1 - y0, 6),
                "score": round(_conf(b), 6),
            }
        )
    return out
