"""Adapters for user-registered MLflow pyfunc models (alweb scores them, never trains them).

Anything with ``predict(model_input)`` works (an ``mlflow.pyfunc.PyFuncModel`` loaded by the registry, or a plain
object in tests). Accepted outputs:

- classification: class probabilities ``[N, C]`` or MC samples ``[N, C, T]`` (ndarray, list, tensor or DataFrame
  with one column per class); with ``output="logits"`` they are softmaxed over C first;
- detection, per image in input order, either a list (one entry per image) of box lists, each box a dict
  ``{"label", "confidence"|"score", "probs"?, "bbox"?}``, or a long DataFrame with columns ``image`` (0-based index
  in the batch), ``label``, ``confidence``/``score`` and optionally ``probs``/``bbox``; images without rows have no
  box.
"""

from __future__ import annotations

import math
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from engine.detection import Box, DetectionMethod, image_summary, score_images
from engine.scoring import Batch, ProgressCallback, ScoreChunk, score_chunks


class PyFuncClassifier:
    """A ``Sampler`` (see engine.py) over a classification pyfunc: plug it into ``score_chunks``."""

    def __init__(self, model: Any, *, output: Literal["probs", "logits"] = "probs") -> None:
        self.model = model
        self.output = output

    def __call__(self, batch: Any) -> tuple[NDArray[np.float32], None]:
        return parse_classifier_output(self.model.predict(batch), output=self.output), None

    def score_chunks(
        self, batches: Iterable[Any], *, heuristic: str = "entropy", **kwargs: Any
    ) -> Iterator[ScoreChunk]:
        # Default entropy, not BALD: most external classifiers return one probability vector, where BALD is 0.
        return score_chunks(self, batches, heuristic=heuristic, **kwargs)


def parse_classifier_output(raw: Any, *, output: Literal["probs", "logits"] = "probs") -> NDArray[np.float32]:
    if hasattr(raw, "to_numpy"):  # pandas DataFrame / Series
        raw = raw.to_numpy()
    if hasattr(raw, "detach"):  # torch tensor
        raw = raw.detach().cpu().numpy()
    arr = np.asarray(raw, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise ValueError(f"classification pyfunc must return [N, C] or [N, C, T], got shape {arr.shape}")
    if output == "logits":
        with np.errstate(invalid="ignore", over="ignore"):
            shifted = arr - arr.max(axis=1, keepdims=True)
            e = np.exp(shifted)
            arr = e / e.sum(axis=1, keepdims=True)
    return arr.astype(np.float32)


_LABEL_KEYS = ("label", "class", "name", "category")
_CONF_KEYS = ("confidence", "score", "conf")


def _first(d: Mapping[str, Any], keys: Sequence[str], what: str) -> Any:
    for k in keys:
        if k in d and d[k] is not None:
            return d[k]
    raise ValueError(f"detection box {dict(d)!r} has no {what} (expected one of {list(keys)})")


def _box(d: Mapping[str, Any] | Box) -> Box:
    if isinstance(d, Box):
        return d
    probs = d.get("probs")
    if probs is not None and not isinstance(probs, Sequence | np.ndarray):
        probs = None
    bbox = d.get("bbox")
    if bbox is not None:
        bbox = tuple(float(v) for v in bbox)
    conf = float(_first(d, _CONF_KEYS, "confidence"))
    extra = {k: v for k, v in d.items() if k not in {*_LABEL_KEYS, *_CONF_KEYS, "probs", "bbox", "image"}}
    return Box(
        label=_first(d, _LABEL_KEYS, "label"),
        confidence=conf,
        probs=None if probs is None else [float(p) for p in probs],
        bbox=bbox,
        extra=extra,
    )


def parse_detections(raw: Any, n_images: int) -> list[list[Box]]:
    if hasattr(raw, "to_dict") and hasattr(raw, "columns"):  # long DataFrame
        images: list[list[Box]] = [[] for _ in range(n_images)]
        for row in raw.to_dict(orient="records"):
            image = row.get("image")
            if image is None or (isinstance(image, float) and math.isnan(image)):
                raise ValueError("a detection DataFrame needs an 'image' column (index of the image in the batch)")
            images[int(image)].append(_box(row))
        return images
    if isinstance(raw, np.ndarray):
        raw = raw.tolist()
    if not isinstance(raw, Sequence) or len(raw) != n_images:
        got = len(raw) if isinstance(raw, Sequence) else type(raw).__name__
        raise ValueError(f"detection pyfunc must return one box list per image ({n_images}), got {got}")
    return [[_box(b) for b in (boxes or [])] for boxes in raw]


@dataclass
class DetectionChunk:
    index: int
    start: int
    ids: list[Any]
    method: str
    uncertainty: NDArray[np.float64]  # per image, in [0, 1], higher = more informative
    boxes: list[list[Box]]
    labels: list[Any]  # label of the most confident box; None for an image without boxes
    confidence: NDArray[np.float32]  # confidence of that box; 0 without boxes

    def __len__(self) -> int:
        return len(self.ids)


class PyFuncDetector:
    def __init__(
        self,
        model: Any,
        *,
        method: DetectionMethod = "min_confidence",
        aggregate: Literal["max", "mean"] = "max",
        empty_value: float = 1.0,
        min_box_confidence: float = 0.0,
    ) -> None:
        self.model = model
        self.method: DetectionMethod = method
        self.aggregate: Literal["max", "mean"] = aggregate
        self.empty_value = empty_value
        self.min_box_confidence = min_box_confidence

    def predict_boxes(self, images: Any) -> list[list[Box]]:
        return parse_detections(self.model.predict(images), len(images))

    def score_chunks(
        self,
        batches: Iterable[Any],
        *,
        skip: Container[int] = (),
        total: int | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> Iterator[DetectionChunk]:
        """Same chunk/resume contract as ``engine.score_chunks``."""
        start = 0
        for index, raw in enumerate(batches):
            batch = raw if isinstance(raw, Batch) else Batch(raw)
            n = len(batch)
            if index not in skip:
                images = batch.load()
                boxes = self.predict_boxes(images)
                kept = [[b for b in bs if b.confidence >= self.min_box_confidence] for bs in boxes]
                summary = [image_summary(bs) for bs in kept]
                yield DetectionChunk(
                    index=index,
                    start=start,
                    ids=list(batch.ids) if batch.ids is not None else list(range(start, start + n)),
                    method=self.method,
                    uncertainty=score_images(
                        boxes,
                        method=self.method,
                        aggregate=self.aggregate,
                        empty_value=self.empty_value,
                        min_box_confidence=self.min_box_confidence,
                    ),
                    boxes=boxes,
                    labels=[s[0] for s in summary],
                    confidence=np.array([s[1] for s in summary], dtype=np.float32),
                )
            start += n
            if on_progress is not None:
                on_progress(start, total)
