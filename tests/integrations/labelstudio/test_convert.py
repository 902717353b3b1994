"""Converters between alweb values and LS JSON: scores, class labels, boxes, and the errors on bad results."""

from __future__ import annotations

import copy
import itertools
import math
from typing import Any

import pytest

from integrations.labelstudio.convert import (
    Box,
    MalformedResultError,
    UnknownLabelError,
    boxes_result,
    choice_result,
    fraction_boxes_result,
    ls_score_to_uncertainty,
    prediction,
    result_to_boxes,
    result_to_labels,
    uncertainty_to_ls_score,
)

LABELS = ("cat", "dog")


def test_score_mapping_is_strictly_decreasing_and_within_0_1() -> None:
    uncertainties = [0.0, 1e-9, 0.01, 0.5, 0.6931, 1.0, 2.302585, 10.0, 100.0, 700.0]
    scores = [uncertainty_to_ls_score(u) for u in uncertainties]
    assert all(0.0 < s <= 1.0 for s in scores)
    assert all(a > b for a, b in itertools.pairwise(scores))
    # LS serves the lowest score first: sorting by LS score ascending is alweb's most-informative-first order.
    assert sorted(uncertainties, key=uncertainty_to_ls_score) == sorted(uncertainties, reverse=True)


def test_score_mapping_inverts_and_clamps_negative_uncertainty() -> None:
    for u in (0.0, 0.3, 1.7, 42.0):
        assert ls_score_to_uncertainty(uncertainty_to_ls_score(u)) == pytest.approx(u, abs=1e-12)
    assert uncertainty_to_ls_score(-1e-7) == 1.0  # BALD's float32 noise below zero means "no information"
    assert uncertainty_to_ls_score(math.inf) == 0.0
    with pytest.raises(ValueError, match="NaN"):
        uncertainty_to_ls_score(math.nan)
    with pytest.raises(ValueError):
        ls_score_to_uncertainty(1.5)


def test_prediction_carries_score_and_model_version() -> None:
    p = prediction(choice_result("cat"), uncertainty=0.7, model_version="m3", task_id=12)
    assert p == {"result": choice_result("cat"), "score": math.exp(-0.7), "model_version": "m3", "task": 12}
    with pytest.raises(ValueError, match="model_version"):
        prediction(choice_result("cat"), uncertainty=0.7, model_version="")


def test_class_label_round_trip_and_region_ids_are_stable() -> None:
    result = choice_result("dog", to_name="text")
    assert result[0]["to_name"] == "text" and result[0]["type"] == "choices"
    assert result == choice_result("dog", to_name="text")
    assert result_to_labels(copy.deepcopy(result), known_labels=LABELS) == ["dog"]


def test_labels_from_annotations() -> None:
    other = {"from_name": "quality", "to_name": "image", "type": "choices", "value": {"choices": ["blurry"]}}
    assert result_to_labels([], known_labels=LABELS) == []
    assert result_to_labels(None, known_labels=LABELS) == []
    assert result_to_labels([other, *choice_result("cat")], known_labels=LABELS) == ["cat"]
    two = [{"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": ["cat", "dog", "cat"]}}]
    assert result_to_labels(two, known_labels=LABELS) == ["cat", "dog"]


def test_unknown_label_is_a_typed_error() -> None:
    with pytest.raises(UnknownLabelError) as exc:
        result_to_labels(choice_result("zebra"), known_labels=LABELS)
    assert exc.value.label == "zebra"
    assert isinstance(exc.value, ValueError)


@pytest.mark.parametrize(
    "result",
    [
        "not a list",
        ["not a region"],
        [{"from_name": "label", "type": "choices"}],
        [{"from_name": "label", "type": "choices", "value": {"choices": "cat"}}],
        [{"from_name": "label", "type": "choices", "value": {"choices": [1]}}],
        [{"from_name": "label", "type": "rectanglelabels", "value": {"rectanglelabels": ["cat"]}}],
    ],
)
def test_malformed_classification_results(result: Any) -> None:
    with pytest.raises(MalformedResultError):
        result_to_labels(result, known_labels=LABELS)


def test_boxes_to_percent_and_back() -> None:
    boxes = [Box("cat", 10, 20, 30, 40, score=0.9), Box("dog", 0, 0, 640, 480)]
    result = boxes_result(boxes, image_width=640, image_height=480)
    first = result[0]
    assert first["original_width"] == 640 and first["original_height"] == 480
    assert first["value"]["x"] == pytest.approx(100 * 10 / 640)
    assert first["value"]["height"] == pytest.approx(100 * 40 / 480)
    assert first["value"]["rectanglelabels"] == ["cat"]
    assert len({r["id"] for r in result}) == 2
    back = result_to_boxes(result, known_labels=LABELS)
    for a, b in zip(back, boxes, strict=True):
        assert a.label == b.label and a.score == b.score
        assert (a.x, a.y, a.width, a.height) == pytest.approx((b.x, b.y, b.width, b.height))


def test_box_touching_the_border_with_float_noise_is_clipped() -> None:
    region = boxes_result([Box("cat", 320, 0, 320, 480)], image_width=640, image_height=480)[0]
    region["value"]["width"] = 50.0000001
    (box,) = result_to_boxes([region], known_labels=LABELS)
    assert box.x + box.width == pytest.approx(640)


def _box_region(**changes: Any) -> dict[str, Any]:
    region: dict[str, Any] = dict(boxes_result([Box("cat", 10, 10, 20, 20)], image_width=100, image_height=100)[0])
    value = dict(region["value"])
    for key, val in changes.items():
        if key in ("original_width", "original_height", "type"):
            region[key] = val
        else:
            value[key] = val
    region["value"] = value
    return region


@pytest.mark.parametrize(
    "changes",
    [
        {"rotation": 15},
        {"width": 0},
        {"height": -3},
        {"x": 95, "width": 20},
        {"x": "10"},
        {"y": math.nan},
        {"original_width": 0},
        {"original_height": None},
        {"rectanglelabels": []},
        {"rectanglelabels": ["cat", "dog"]},
        {"type": "polygonlabels"},
    ],
)
def test_malformed_boxes(changes: dict[str, Any]) -> None:
    with pytest.raises(MalformedResultError):
        result_to_boxes([_box_region(**changes)], known_labels=LABELS)


def test_unknown_box_label() -> None:
    with pytest.raises(UnknownLabelError):
        result_to_boxes([_box_region(rectanglelabels=["zebra"])], known_labels=LABELS)


def test_boxes_result_refuses_bad_input() -> None:
    with pytest.raises(ValueError):
        boxes_result([Box("cat", 0, 0, 0, 10)], image_width=100, image_height=100)
    with pytest.raises(ValueError):
        boxes_result([Box("cat", 0, 0, 10, 10)], image_width=0, image_height=100)


def test_fraction_boxes_keep_known_labels_and_their_scores() -> None:
    boxes = [
        {"label": "cat", "x": 0.1, "y": 0.2, "w": 0.5, "h": 0.25, "score": 0.8},
        {"label": "zebra", "x": 0.1, "y": 0.2, "w": 0.5, "h": 0.25, "score": 0.9},  # not in the config
        {"label": "dog", "x": 0.5, "y": 0.5, "w": 0.0, "h": 0.25},  # no area
        {"label": "dog", "x": 0.0, "y": 0.0, "w": 1.0, "h": 1.0},  # a label: no score
    ]
    regions = fraction_boxes_result(boxes, image_width=40, image_height=30, known_labels=LABELS)
    assert [r["value"]["rectanglelabels"] for r in regions] == [["cat"], ["dog"]]
    assert (regions[0]["score"], "score" in regions[1]) == (0.8, False)
    assert result_to_boxes(regions, known_labels=LABELS) == [
        Box("cat", pytest.approx(4.0), pytest.approx(6.0), pytest.approx(20.0), pytest.approx(7.5), 0.8),
        Box("dog", 0.0, 0.0, 40.0, 30.0, None),
    ]
    # Without a stored image size the percentages are the same, on a reference size.
    unsized = fraction_boxes_result(boxes[:1], image_width=None, image_height=None, known_labels=LABELS)
    assert unsized[0]["value"]["x"] == pytest.approx(regions[0]["value"]["x"])
    assert unsized[0]["original_width"] == 1000
