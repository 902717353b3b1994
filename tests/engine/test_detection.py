from __future__ import annotations

import math

import numpy as np
import pytest

from engine.detection import Box, box_fractions, box_uncertainties, image_summary, image_uncertainty, score_images


def test_min_and_mean_confidence() -> None:
    boxes = [Box("cat", 0.9), Box("dog", 0.4), Box("cat", 0.8)]
    assert image_uncertainty(boxes) == pytest.approx(0.6)  # 1 - lowest confidence
    assert image_uncertainty(boxes, method="mean_confidence") == pytest.approx(1 - 0.7)


def test_margin_and_entropy_use_class_probabilities() -> None:
    sure = Box("cat", 0.95, probs=[0.95, 0.05, 0.0])
    torn = Box("dog", 0.5, probs=[0.45, 0.5, 0.05])
    assert box_uncertainties([sure, torn], "margin") == pytest.approx([1 - 0.9, 1 - 0.05])
    assert image_uncertainty([sure, torn], method="margin") == pytest.approx(0.95)  # max over boxes
    assert image_uncertainty([sure, torn], method="margin", aggregate="mean") == pytest.approx((0.1 + 0.95) / 2)
    h = -(0.45 * math.log(0.45) + 0.5 * math.log(0.5) + 0.05 * math.log(0.05)) / math.log(3)
    assert box_uncertainties([torn], "entropy")[0] == pytest.approx(h)
    assert box_uncertainties([Box("x", 1.0, probs=[1.0, 0.0])], "entropy")[0] == 0.0


def test_box_without_probs_is_binary() -> None:
    assert box_uncertainties([Box("cat", 0.5)], "entropy")[0] == pytest.approx(1.0)
    assert box_uncertainties([Box("cat", 0.75)], "margin")[0] == pytest.approx(0.5)


def test_empty_images_and_non_finite_confidences() -> None:
    assert image_uncertainty([]) == 1.0
    assert image_uncertainty([], empty_value=0.0) == 0.0
    assert image_uncertainty([Box("cat", float("nan")), Box("cat", 0.9)]) == 1.0
    assert image_uncertainty([Box("cat", 0.9, probs=[float("nan"), 0.5])], method="margin") == 1.0
    # Boxes under the detector's display threshold are dropped; an image left without boxes is "empty".
    assert image_uncertainty([Box("cat", 0.1)], min_box_confidence=0.25) == 1.0
    scores = score_images([[Box("a", 0.9)], [], [Box("b", 0.3)]])
    np.testing.assert_allclose(scores, [0.1, 1.0, 0.7])
    assert image_summary([]) == (None, 0.0)
    assert image_summary([Box("a", 0.2), Box("b", 0.7)]) == ("b", 0.7)
    with pytest.raises(ValueError):
        box_uncertainties([Box("a", 0.2)], "bogus")  # type: ignore[arg-type]


def test_box_fractions_read_pixels_of_the_input_and_drop_what_cannot_be_drawn() -> None:
    boxes = [
        Box("cat", 0.7, bbox=(8, 4, 16, 8)),
        Box("dog", float("nan"), bbox=(24, 28, 16, 8)),  # leaves the 32x32 image: clipped to what is inside
        Box("cat", 0.9),  # no bbox
        Box("cat", 0.9, bbox=(40, 0, 4, 4)),  # entirely outside
        Box("cat", 0.9, bbox=(0, 0, float("inf"), 4)),
    ]
    assert box_fractions(boxes, width=32, height=32) == [
        {"label": "cat", "x": 0.25, "y": 0.125, "w": 0.5, "h": 0.25, "score": 0.7},
        {"label": "dog", "x": 0.75, "y": 0.875, "w": 0.25, "h": 0.125, "score": 0.0},
    ]
