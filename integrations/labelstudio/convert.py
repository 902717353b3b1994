"""Converters between alweb's values and Label Studio JSON (prediction and annotation `result` regions).

Scores: inside alweb a score is an uncertainty, higher = more informative. Label Studio's uncertainty sampling
and its "prediction score" ordering serve the LOWEST `score` first, so the adapter writes

    ls_score = exp(-max(uncertainty, 0))

a confidence-like number in (0, 1]: strictly decreasing in the uncertainty (LS's ascending order is alweb's
most-informative-first order), needs no per-heuristic range (entropy, BALD, margin... all map), and is
invertible (`uncertainty = -ln(ls_score)`). Negative uncertainties (BALD in float32 can dip below 0) mean "no
information" and map to 1.0. Float64 keeps distinct uncertainties distinct up to ~700.

Boxes: alweb keeps pixel boxes (top-left x, y, width, height in the original image); LS keeps percentages of
the image size plus `original_width`/`original_height` on every region.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict

from integrations.labelstudio.label_config import FROM_NAME

# Percentages a little outside [0, 100] come from LS's own float arithmetic when a box touches the border.
_PERCENT_TOLERANCE = 1e-3
_ROTATION_TOLERANCE = 1e-6


class ResultRegion(TypedDict):
    """One region of an LS `result` list (annotation or prediction)."""

    id: NotRequired[str]
    from_name: str
    to_name: str
    type: str
    value: dict[str, Any]
    original_width: NotRequired[int]
    original_height: NotRequired[int]
    image_rotation: NotRequired[int]
    score: NotRequired[float]


class PredictionPayload(TypedDict):
    """A prediction as LS imports it: inline in a task, or with `task` for the bulk predictions import."""

    result: list[ResultRegion]
    score: float
    model_version: str
    task: NotRequired[int]


class TaskPayload(TypedDict):
    """A task as LS's bulk import takes it."""

    data: dict[str, Any]
    predictions: NotRequired[list[PredictionPayload]]


class ConversionError(ValueError):
    """An LS result cannot be mapped to alweb values; the pull records it on the item and goes on."""


class UnknownLabelError(ConversionError):
    def __init__(self, label: str, known: Iterable[str]) -> None:
        self.label = label
        super().__init__(f"unknown label {label!r} (known: {', '.join(map(repr, known))})")


class MalformedResultError(ConversionError):
    """A region with a missing field, a wrong type, a rotated or empty box, or coordinates off the image."""


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixels of the original image: top-left corner, width and height."""

    label: str
    x: float
    y: float
    width: float
    height: float
    score: float | None = None


# ---------------------------------------------------------------------------------------------------- scores


def uncertainty_to_ls_score(uncertainty: float) -> float:
    """alweb uncertainty (higher = more informative) → LS prediction score (lower = served first)."""
    u = float(uncertainty)
    if math.isnan(u):
        raise ValueError("uncertainty is NaN")
    return math.exp(-max(u, 0.0))


def ls_score_to_uncertainty(score: float) -> float:
    """Inverse of `uncertainty_to_ls_score` (for scores it produced: in (0, 1])."""
    s = float(score)
    if not 0.0 < s <= 1.0:
        raise ValueError(f"LS score {s!r} is not in (0, 1]: not written by alweb")
    return -math.log(s)


# ---------------------------------------------------------------------------------------------------- to LS


def choice_result(label: str, *, from_name: str = FROM_NAME, to_name: str = "image") -> list[ResultRegion]:
    """The `result` of a single-label classification (image or text)."""
    region: ResultRegion = {
        "id": _region_id(from_name, label),
        "from_name": from_name,
        "to_name": to_name,
        "type": "choices",
        "value": {"choices": [label]},
    }
    return [region]


def boxes_result(
    boxes: Sequence[Box], *, image_width: int, image_height: int, from_name: str = FROM_NAME, to_name: str = "image"
) -> list[ResultRegion]:
    """The `result` of a detection: one `rectanglelabels` region per box, in percent of the image size."""
    if image_width <= 0 or image_height <= 0:
        raise ValueError(f"image size must be positive, got {image_width}x{image_height}")
    regions: list[ResultRegion] = []
    for i, box in enumerate(boxes):
        if box.width <= 0 or box.height <= 0:
            raise ValueError(f"box {i} has no area: {box}")
        region: ResultRegion = {
            "id": _region_id(from_name, box.label, str(i)),
            "from_name": from_name,
            "to_name": to_name,
            "type": "rectanglelabels",
            "original_width": int(image_width),
            "original_height": int(image_height),
            "image_rotation": 0,
            "value": {
                "x": 100.0 * box.x / image_width,
                "y": 100.0 * box.y / image_height,
                "width": 100.0 * box.width / image_width,
                "height": 100.0 * box.height / image_height,
                "rotation": 0,
                "rectanglelabels": [box.label],
            },
        }
        if box.score is not None:
            region["score"] = float(box.score)
        regions.append(region)
    return regions


# Items without stored pixel sizes: percentages only need a consistent reference size.
FALLBACK_SIZE = 1000


def fraction_boxes_result(
    boxes: Sequence[Mapping[str, Any]],
    *,
    image_width: int | None,
    image_height: int | None,
    known_labels: Iterable[str],
    from_name: str = FROM_NAME,
    to_name: str = "image",
) -> list[ResultRegion]:
    """`boxes_result` for alweb's boxes (`{label, x, y, w, h, score?}`, fractions of the image: a detection label or
    a predicted box). A box whose label the labeling config does not know, or with no area, is left out: Label
    Studio would show it as a region nobody can edit or accept."""
    width, height = image_width or FALLBACK_SIZE, image_height or FALLBACK_SIZE
    known = set(known_labels)
    kept = [
        Box(
            str(b["label"]),
            float(b["x"]) * width,
            float(b["y"]) * height,
            float(b["w"]) * width,
            float(b["h"]) * height,
            float(b["score"]) if isinstance(b.get("score"), int | float) else None,
        )
        for b in boxes
        if str(b.get("label")) in known and float(b.get("w", 0)) > 0 and float(b.get("h", 0)) > 0
    ]
    return boxes_result(kept, image_width=width, image_height=height, from_name=from_name, to_name=to_name)


def prediction(
    result: list[ResultRegion], *, uncertainty: float, model_version: str, task_id: int | None = None
) -> PredictionPayload:
    """A prediction carrying alweb's uncertainty as LS's score and alweb's model version."""
    if not model_version:
        raise ValueError("model_version is required: LS only orders by predictions of the project's model_version")
    payload: PredictionPayload = {
        "result": result,
        "score": uncertainty_to_ls_score(uncertainty),
        "model_version": str(model_version),
    }
    if task_id is not None:
        payload["task"] = int(task_id)
    return payload


# ---------------------------------------------------------------------------------------------------- from LS


def result_to_labels(
    result: Sequence[Mapping[str, Any]] | None, *, known_labels: Iterable[str], from_name: str = FROM_NAME
) -> list[str]:
    """The labels chosen in a classification result (regions of other controls are ignored).

    Returns [] for an empty result; order of appearance, without duplicates."""
    known = tuple(known_labels)
    labels: list[str] = []
    for region in _regions(result, from_name):
        if region.get("type") != "choices":
            raise MalformedResultError(f"region of {from_name!r} has type {region.get('type')!r}, not 'choices'")
        choices = _value(region).get("choices")
        if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
            raise MalformedResultError(f"choices must be a list of strings, got {choices!r}")
        for choice in choices:
            if choice not in known:
                raise UnknownLabelError(choice, known)
            if choice not in labels:
                labels.append(choice)
    return labels


def result_to_boxes(
    result: Sequence[Mapping[str, Any]] | None, *, known_labels: Iterable[str], from_name: str = FROM_NAME
) -> list[Box]:
    """The pixel boxes of a detection result; each region must carry its original image size."""
    known = tuple(known_labels)
    boxes: list[Box] = []
    for region in _regions(result, from_name):
        if region.get("type") != "rectanglelabels":
            raise MalformedResultError(f"region of {from_name!r} has type {region.get('type')!r}, not rectanglelabels")
        value = _value(region)
        labels = value.get("rectanglelabels")
        if not isinstance(labels, list) or len(labels) != 1 or not isinstance(labels[0], str):
            raise MalformedResultError(f"a box needs exactly one label, got {labels!r}")
        if labels[0] not in known:
            raise UnknownLabelError(labels[0], known)
        if abs(_number(value, "rotation", default=0.0)) > _ROTATION_TOLERANCE:
            raise MalformedResultError(f"rotated box ({value.get('rotation')} deg) cannot be an axis-aligned box")
        width_px, height_px = _number(region, "original_width"), _number(region, "original_height")
        if width_px <= 0 or height_px <= 0:
            raise MalformedResultError(f"original image size must be positive, got {width_px}x{height_px}")
        x, y, w, h = (_percent(value, k) for k in ("x", "y", "width", "height"))
        if w <= 0 or h <= 0:
            raise MalformedResultError(f"box has no area: width={w}%, height={h}%")
        if x + w > 100.0 + _PERCENT_TOLERANCE or y + h > 100.0 + _PERCENT_TOLERANCE:
            raise MalformedResultError(f"box leaves the image: x+width={x + w}%, y+height={y + h}%")
        score = region.get("score")
        boxes.append(
            Box(
                labels[0],
                x * width_px / 100.0,
                y * height_px / 100.0,
                min(w, 100.0 - x) * width_px / 100.0,
                min(h, 100.0 - y) * height_px / 100.0,
                float(score) if isinstance(score, int | float) else None,
            )
        )
    return boxes


# ---------------------------------------------------------------------------------------------------- helpers


def _region_id(*parts: str) -> str:
    # LS's editor needs an id per region; a stable one makes identical predictions identical JSON.
    return hashlib.sha1("\x1f".join(parts).encode()).hexdigest()[:10]


def _regions(result: Sequence[Mapping[str, Any]] | None, from_name: str) -> list[Mapping[str, Any]]:
    if result is None:
        return []
    if not isinstance(result, list | tuple):
        raise MalformedResultError(f"result must be a list of regions, got {type(result).__name__}")
    regions = []
    for region in result:
        if not isinstance(region, Mapping):
            raise MalformedResultError(f"a region must be an object, got {type(region).__name__}")
        if region.get("from_name") == from_name:
            regions.append(region)
    return regions


def _value(region: Mapping[str, Any]) -> Mapping[str, Any]:
    value = region.get("value")
    if not isinstance(value, Mapping):
        raise MalformedResultError(f"region has no value object: {dict(region)!r}")
    return value


def _number(obj: Mapping[str, Any], key: str, default: float | None = None) -> float:
    raw = obj.get(key, default)
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise MalformedResultError(f"{key} must be a finite number, got {raw!r}")
    return float(raw)


def _percent(value: Mapping[str, Any], key: str) -> float:
    number = _number(value, key)
    if not -_PERCENT_TOLERANCE <= number <= 100.0 + _PERCENT_TOLERANCE:
        raise MalformedResultError(f"{key}={number} is not a percentage of the image")
    return min(max(number, 0.0), 100.0)
