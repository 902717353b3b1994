"""The trainable detector (engine.detector, engine.detector_training) and its metrics (engine.detection_metrics)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from campaigns.demo_shapes import SHAPE_LABELS, shapes_arrays
from engine.detection_metrics import mean_average_precision
from engine.detector import CenterDetector, Detections, decode, grid_size, predict, targets
from engine.detector_training import DetectorConfig, evaluate, image_scores, score_detector, train_detector

LABELS = ["a", "b"]


def _logit(p: torch.Tensor) -> torch.Tensor:
    p = p.clamp(1e-6, 1 - 1e-6)
    return torch.log(p / (1 - p))


def test_decoding_the_training_targets_gives_the_boxes_back() -> None:
    boxes = [
        [
            {"label": "a", "x": 0.1, "y": 0.2, "w": 0.3, "h": 0.25},
            {"label": "b", "x": 0.55, "y": 0.5, "w": 0.4, "h": 0.2},
        ],
        [],
        [{"label": "zebra", "x": 0.1, "y": 0.1, "w": 0.2, "h": 0.2}],  # not a project label: no target
    ]
    t = targets(boxes, LABELS, grid_size(64))
    assert t["mask"].sum() == 2 and t["heat"][1].max() == 0 and t["heat"][2].max() == 0
    out = torch.cat([_logit(t["heat"]), _logit(t["box"].clamp(1e-6, 1 - 1e-6))], dim=1).unsqueeze(0)  # T = 1
    found = decode(out, LABELS, min_score=0.5)
    assert [len(d.boxes) for d in found] == [2, 0, 0]
    for want, got in zip(boxes[0], sorted(found[0].boxes, key=lambda b: b["label"]), strict=True):
        assert got["label"] == want["label"] and got["score"] == pytest.approx(1.0, abs=1e-4)
        assert [got[k] for k in "xywh"] == pytest.approx([want[k] for k in "xywh"], abs=1e-4)
    # One sample: nothing varies between samples.
    assert np.all(found[0].score_std == 0) and found[0].location_iou == pytest.approx(1.0)


def test_mean_average_precision_matches_hand_computed_values() -> None:
    truth = [
        [{"label": "a", "x": 0.1, "y": 0.1, "w": 0.4, "h": 0.4}],
        [{"label": "b", "x": 0.5, "y": 0.5, "w": 0.2, "h": 0.4}],
    ]
    perfect = [[{**b, "score": 0.9} for b in image] for image in truth]
    result = mean_average_precision(perfect, truth, [*LABELS, "c"])
    assert result is not None and result["map"] == pytest.approx(1.0) and result["map_50"] == pytest.approx(1.0)
    assert result["per_class_ap50"] == {"a": pytest.approx(1.0), "b": pytest.approx(1.0), "c": None}
    # Class a's box shifted to IoU 0.6 (0.4 x 0.4 boxes overlapping on 0.3 x 0.4): a hit at IoU thresholds 0.50,
    # 0.55 and 0.60 of COCO's ten; class b missed.
    shifted = [[{"label": "a", "x": 0.2, "y": 0.1, "w": 0.4, "h": 0.4, "score": 0.9}], []]
    result = mean_average_precision(shifted, truth, LABELS)
    assert result is not None
    assert result["map_50"] == pytest.approx(0.5) and result["map"] == pytest.approx((3 / 10) / 2)
    assert mean_average_precision([[], []], truth, LABELS) == {
        "map": 0.0,
        "map_50": 0.0,
        "per_class_ap50": {"a": 0.0, "b": 0.0},
        "images": 2,
    }
    assert mean_average_precision([[]], [[]], LABELS) is None
    with pytest.raises(ValueError, match="1 predicted images for 2"):
        mean_average_precision([[]], truth, LABELS)


def test_image_scores_aggregate_box_confidence_and_mc_spread() -> None:
    def det(scores: list[float], std: list[float], iou: list[float]) -> Detections:
        boxes = [{"label": "a", "x": 0.1, "y": 0.1, "w": 0.2, "h": 0.2, "score": s} for s in scores]
        return Detections(boxes=boxes, score_std=np.asarray(std), location_iou=np.asarray(iou))

    images = [
        det([0.9, 0.4], [0.05, 0.2], [0.9, 0.5]),
        det([0.8], [0.0], [1.0]),
        det([], [], []),
        det([0.1], [0.3], [0.2]),
    ]
    assert image_scores(images, "min_confidence") == pytest.approx([0.6, 0.2, 1.0, 1.0])  # 0.1 < threshold: empty
    assert image_scores(images, "mean_confidence") == pytest.approx([1 - 0.65, 0.2, 1.0, 1.0])
    # Per box: (2 x score std + 1 - location IoU) / 2; the image takes its least stable box.
    assert image_scores(images, "mc_variance") == pytest.approx([max((0.1 + 0.1) / 2, (0.4 + 0.5) / 2), 0.0, 1.0, 1.0])
    random = image_scores(images, "random", seed=3)
    assert np.array_equal(random, image_scores(images, "random", seed=3)) and len(set(random.tolist())) == 4


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Torch on one thread: on a machine whose cores other jobs share, more threads than free cores made this
    training ten times slower, not faster."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_the_detector_learns_shapes_and_mc_dropout_spreads_its_boxes(one_thread: None) -> None:
    size = 32
    x, boxes = shapes_arrays(96, size=size, seed=0)
    x_test, boxes_test = shapes_arrays(48, size=size, seed=1)
    train, test = (torch.as_tensor(x), boxes), (torch.as_tensor(x_test), boxes_test)
    torch.manual_seed(0)
    model = CenterDetector(len(SHAPE_LABELS), image_size=size, dropout=0.3)
    untrained = evaluate(model, *test, SHAPE_LABELS)
    assert untrained is not None
    result = train_detector(
        model, train, SHAPE_LABELS, test=test, config=DetectorConfig(epochs=14, min_steps=0, seed=0)
    )
    assert result.test is not None and result.epochs_run == 14 and len(result.history) == 14
    assert result.history[-1].train_loss < result.history[0].train_loss / 2
    assert result.test["map_50"] > untrained["map_50"] + 0.15
    assert 0 < result.test["map"] < result.test["map_50"]  # stricter IoU thresholds can only lose hits

    # MC dropout: T samples of the heads give each box a score spread and a localisation below perfect agreement;
    # the same seed gives the same boxes.
    mc, embeddings = predict(result.model, test[0][:16], SHAPE_LABELS, iterations=8, seed=1, min_score=0.25)
    boxes_shown = sum(len(d.boxes) for d in mc)
    assert boxes_shown > 0 and embeddings.shape == (16, 64)
    assert all(np.all(d.score_std > 0) and np.all(d.location_iou < 1) for d in mc if d.boxes)
    again, _ = predict(result.model, test[0][:16], SHAPE_LABELS, iterations=8, seed=1, min_score=0.25)
    assert [d.boxes for d in again] == [d.boxes for d in mc]

    chunk = score_detector(
        result.model, test[0][:16], list(range(16)), SHAPE_LABELS, iterations=8, heuristic="bald", seed=1
    )
    assert chunk.heuristic == "detection:mc_variance" and chunk.boxes == [d.boxes for d in mc]
    assert np.all((chunk.uncertainty >= 0) & (chunk.uncertainty <= 1))
    with_boxes = [n for n, d in enumerate(mc) if d.boxes]
    best = [max(mc[n].boxes, key=lambda b: b["score"]) for n in with_boxes]
    assert [SHAPE_LABELS[int(chunk.labels[n])] for n in with_boxes] == [b["label"] for b in best]
    assert chunk.confidence[with_boxes] == pytest.approx([b["score"] for b in best], abs=1e-5)
    least = score_detector(
        result.model, test[0][:16], list(range(16)), SHAPE_LABELS, iterations=8, heuristic="margin", seed=1
    )
    assert least.heuristic == "detection:min_confidence"
    assert least.uncertainty[with_boxes] == pytest.approx(
        [1 - min(b["score"] for b in mc[n].boxes) for n in with_boxes]
    )
