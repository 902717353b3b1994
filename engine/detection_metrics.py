"""Detection metrics: COCO mAP@0.5 and mAP@0.5:0.95, computed by pycocotools (the reference implementation).

torchmetrics' MeanAveragePrecision would be the other well-kept choice, but it imports torchvision, which does not
import beside this torch build. Boxes are alweb's (``{label, x, y, w, h[, score]}``, fractions of the image); they
are scaled to a reference image size, which COCO's area ranges need but the "all areas" figures reported here do
not depend on.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

_REFERENCE_SIZE = 1000.0


def _xywh(box: Mapping[str, Any]) -> list[float]:
    return [float(box[k]) * _REFERENCE_SIZE for k in ("x", "y", "w", "h")]


def mean_average_precision(
    predictions: Sequence[Sequence[Mapping[str, Any]]],
    truths: Sequence[Sequence[Mapping[str, Any]]],
    labels: Sequence[str],
) -> dict[str, Any] | None:
    """``{"map": mAP@0.5:0.95, "map_50": mAP@0.5, "per_class_ap50": {label: AP@0.5 or None}, "images": n}``
    over images in the same order in both lists; None when no image has a true box (nothing to measure). Classes
    without a true box are left out of the means, as COCO does; no prediction at all scores 0."""
    from pycocotools.coco import COCO  # lazy: only training and benchmarks measure
    from pycocotools.cocoeval import COCOeval

    if len(predictions) != len(truths):
        raise ValueError(f"{len(predictions)} predicted images for {len(truths)} true ones")
    index = {label: i + 1 for i, label in enumerate(labels)}
    images = [{"id": n + 1, "width": _REFERENCE_SIZE, "height": _REFERENCE_SIZE} for n in range(len(truths))]
    annotations: list[dict[str, Any]] = []
    for n, boxes in enumerate(truths):
        for box in boxes:
            if str(box["label"]) in index and float(box["w"]) > 0 and float(box["h"]) > 0:
                xywh = _xywh(box)
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": n + 1,
                        "category_id": index[str(box["label"])],
                        "bbox": xywh,
                        "area": xywh[2] * xywh[3],
                        "iscrowd": 0,
                    }
                )
    if not annotations:
        return None
    present = sorted({int(a["category_id"]) for a in annotations})
    results = [
        {"image_id": n + 1, "category_id": index[str(b["label"])], "bbox": _xywh(b), "score": float(b["score"])}
        for n, boxes in enumerate(predictions)
        for b in boxes
        if str(b["label"]) in index and float(b["w"]) > 0 and float(b["h"]) > 0
    ]
    if not results:
        return {"map": 0.0, "map_50": 0.0, "per_class_ap50": _per_class(labels, present, None), "images": len(truths)}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress and summary table
        truth = COCO()
        truth.dataset = {
            "images": images,
            "annotations": annotations,
            "categories": [{"id": i, "name": label} for label, i in index.items()],
        }
        truth.createIndex()
        evaluation = COCOeval(truth, truth.loadRes(results), iouType="bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    # precision: [iou thresholds, recall points, classes, area ranges, max dets]; -1 where a class has no truth.
    precision = evaluation.eval["precision"][0, :, :, 0, -1]
    return {
        "map": float(evaluation.stats[0]),
        "map_50": float(evaluation.stats[1]),
        "per_class_ap50": _per_class(labels, present, precision),
        "images": len(truths),
    }


def _per_class(labels: Sequence[str], present: list[int], precision: np.ndarray | None) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for i, label in enumerate(labels):
        if i + 1 not in present:
            out[label] = None
        elif precision is None:
            out[label] = 0.0
        else:
            p = precision[:, i]
            out[label] = float(p[p > -1].mean()) if (p > -1).any() else 0.0
    return out
