"""Label configs: generated from task type + labels, and validated when an existing LS project is linked."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from integrations.labelstudio.label_config import (
    TASK_TYPES,
    LabelConfigError,
    build_label_config,
    info_for,
    parse_label_config,
    validate_label_config,
)

LABELS = ["cat", "dog", "bird"]


@pytest.mark.parametrize(
    ("task_type", "object_tag", "control_tag", "label_tag", "key"),
    [
        ("image_classification", "Image", "Choices", "Choice", "image"),
        ("text_classification", "Text", "Choices", "Choice", "text"),
        ("object_detection", "Image", "RectangleLabels", "Label", "image"),
    ],
)
def test_build_uses_the_right_tags(task_type: str, object_tag: str, control_tag: str, label_tag: str, key: str) -> None:
    root = ET.fromstring(build_label_config(task_type, LABELS))  # type: ignore[arg-type]
    obj = root.find(object_tag)
    control = root.find(control_tag)
    assert obj is not None and obj.get("name") == key and obj.get("value") == f"${key}"
    assert control is not None and control.get("name") == "label" and control.get("toName") == key
    assert [el.get("value") for el in control.iter(label_tag)] == LABELS


@pytest.mark.parametrize("task_type", TASK_TYPES)
def test_generated_config_validates_and_matches_info_for(task_type: str) -> None:
    xml = build_label_config(task_type, LABELS)  # type: ignore[arg-type]
    assert validate_label_config(xml, task_type, LABELS) == info_for(task_type, LABELS)  # type: ignore[arg-type]


def test_labels_are_xml_escaped_and_survive_a_round_trip() -> None:
    labels = ['a "quoted" label', "fish & chips", "<b>bold</b>", "l'apostrophe", "ünïcode ✓"]
    xml = build_label_config("text_classification", labels)
    assert "&amp;" in xml and "&lt;b&gt;" in xml and "&quot;" in xml
    assert parse_label_config(xml, "text_classification").labels == tuple(labels)


@pytest.mark.parametrize(
    ("labels", "error"),
    [
        ([], ValueError),
        (["a", "a"], ValueError),
        (["a", ""], ValueError),
        ([" a"], ValueError),
        ("abc", TypeError),
    ],
)
def test_bad_label_sets_are_refused(labels: list[str], error: type[Exception]) -> None:
    with pytest.raises(error):
        build_label_config("image_classification", labels)


def test_unknown_task_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown task type"):
        build_label_config("segmentation", ["a"])  # type: ignore[arg-type]


def test_validation_lists_every_problem() -> None:
    xml = """<View><Image name="img" value="$url"/>
      <Choices name="answer" toName="img" choice="multiple"><Choice value="cat"/><Choice value="horse"/></Choices>
    </View>"""
    with pytest.raises(LabelConfigError) as exc:
        validate_label_config(xml, "image_classification", LABELS)
    problems = exc.value.problems
    assert any("missing labels" in p and "'dog'" in p and "'bird'" in p for p in problems)
    assert any("unknown to alweb" in p and "'horse'" in p for p in problems)
    assert any("several choices" in p for p in problems)
    assert len(problems) == 3


def test_existing_config_with_other_names_and_extra_tags_is_accepted() -> None:
    xml = """<View>
      <Header value="Pick one"/>
      <Text name="caption" value="$caption"/>
      <Image name="photo" value="$photo_url"/>
      <Choices name="quality" toName="caption"><Choice value="good"/></Choices>
      <Choices name="kind" toName="photo">
        <Choice value="cat"/><Choice value="dog"/><Choice value="b" alias="bird"/>
      </Choices>
    </View>"""
    info = validate_label_config(xml, "image_classification", LABELS)
    assert (info.from_name, info.to_name, info.data_key) == ("kind", "photo", "photo_url")
    assert info.labels == ("cat", "dog", "bird")  # results carry the alias


def test_extra_labels_can_be_allowed() -> None:
    xml = build_label_config("object_detection", [*LABELS, "car"])
    with pytest.raises(LabelConfigError, match="car"):
        validate_label_config(xml, "object_detection", LABELS)
    assert validate_label_config(xml, "object_detection", LABELS, allow_extra_labels=True).labels[-1] == "car"


@pytest.mark.parametrize(
    ("xml", "task_type", "message"),
    [
        ("<View><Image", "image_classification", "not well-formed"),
        ('<View><Text name="t" value="$t"/></View>', "image_classification", "no <Image>"),
        ('<View><Image name="i" value="$i"/></View>', "object_detection", "no <RectangleLabels>"),
        (
            '<View><Image name="i" value="$i"/><Choices name="c" toName="other"><Choice value="a"/></Choices></View>',
            "image_classification",
            r"points \(toName\)",
        ),
        (build_label_config("image_classification", LABELS), "object_detection", "no <RectangleLabels>"),
        (build_label_config("image_classification", LABELS), "text_classification", "no <Text>"),
    ],
)
def test_configs_that_do_not_fit_the_task_type(xml: str, task_type: str, message: str) -> None:
    with pytest.raises(LabelConfigError, match=message):
        validate_label_config(xml, task_type, LABELS)  # type: ignore[arg-type]
