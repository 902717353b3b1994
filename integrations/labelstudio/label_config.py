"""Label Studio labeling configs: generate one from alweb's task type and labels, and check an existing one fits.

alweb's generated configs use fixed tag names (`label` → `image`/`text`, data key `$image`/`$text`) so the
converters know where to write predictions. A project linked by id may use other names: `parse_label_config`
finds the control and object tags that match the task type and returns their names, which the converters take.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

TaskType = Literal["image_classification", "text_classification", "object_detection"]
TASK_TYPES: tuple[TaskType, ...] = get_args(TaskType)

FROM_NAME = "label"


@dataclass(frozen=True)
class _Shape:
    object_tag: str  # what is shown: Image or Text
    control_tag: str  # what the annotator answers with
    label_tag: str  # one label inside the control
    result_type: str  # `type` of a result region in LS JSON
    data_key: str  # task.data key the object tag reads ($image / $text)


SHAPES: dict[TaskType, _Shape] = {
    "image_classification": _Shape("Image", "Choices", "Choice", "choices", "image"),
    "text_classification": _Shape("Text", "Choices", "Choice", "choices", "text"),
    "object_detection": _Shape("Image", "RectangleLabels", "Label", "rectanglelabels", "image"),
}


class LabelConfigError(ValueError):
    """A labeling config does not fit alweb's project; `problems` lists every reason, not just the first."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("label config does not fit: " + "; ".join(self.problems))


@dataclass(frozen=True)
class LabelConfigInfo:
    """Where a task type lives in a config: the names LS writes into every result region."""

    task_type: TaskType
    from_name: str  # control tag name
    to_name: str  # object tag name
    data_key: str  # key in task.data
    labels: tuple[str, ...]  # the values results carry (a label's `alias` if it has one)
    multiple: bool = False  # Choices with choice="multiple"

    @property
    def result_type(self) -> str:
        return SHAPES[self.task_type].result_type


def info_for(task_type: TaskType, labels: Sequence[str]) -> LabelConfigInfo:
    """The `LabelConfigInfo` of the config `build_label_config(task_type, labels)` generates."""
    shape = _shape(task_type)
    return LabelConfigInfo(task_type, FROM_NAME, shape.data_key, shape.data_key, tuple(labels))


def build_label_config(task_type: TaskType, labels: Sequence[str]) -> str:
    """The labeling config XML for `task_type` with `labels` in the given order.

    Built with ElementTree so quotes, `&` and `<` in labels are escaped; labels must be unique, non-empty and
    without surrounding whitespace (LS would keep the whitespace and results would not match)."""
    shape = _shape(task_type)
    _check_labels(labels)
    view = ET.Element("View")
    ET.SubElement(view, shape.object_tag, {"name": shape.data_key, "value": f"${shape.data_key}"})
    attrs = {"name": FROM_NAME, "toName": shape.data_key}
    if shape.control_tag == "Choices":
        attrs |= {"choice": "single-radio", "showInline": "true"}
    control = ET.SubElement(view, shape.control_tag, attrs)
    for label in labels:
        ET.SubElement(control, shape.label_tag, {"value": label})
    ET.indent(view, space="  ")
    return ET.tostring(view, encoding="unicode")


def parse_label_config(xml: str, task_type: TaskType) -> LabelConfigInfo:
    """Find the control tag for `task_type` in `xml` (the first one pointing at an object tag of the right kind)."""
    shape = _shape(task_type)
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise LabelConfigError([f"not well-formed XML: {exc}"]) from exc
    objects = {str(el.get("name")): el for el in root.iter(shape.object_tag) if el.get("name")}
    controls = list(root.iter(shape.control_tag))
    if not objects:
        raise LabelConfigError([f"no <{shape.object_tag}> tag with a name (needed for {task_type})"])
    if not controls:
        raise LabelConfigError([f"no <{shape.control_tag}> tag (needed for {task_type})"])
    for control in controls:
        targets = [t.strip() for t in (control.get("toName") or "").split(",")]
        target = next((t for t in targets if t in objects), None)
        if target is None:
            continue
        value = objects[target].get("value") or ""
        labels = tuple(
            (el.get("alias") or el.get("value") or "") for el in control.iter(shape.label_tag) if el.get("value")
        )
        multiple = (control.get("choice") or "single") == "multiple"
        return LabelConfigInfo(
            task_type, control.get("name") or "", target, value.lstrip("$"), labels, multiple=multiple
        )
    raise LabelConfigError(
        [f"no <{shape.control_tag}> points (toName) at a <{shape.object_tag}> tag ({', '.join(sorted(objects))})"]
    )


def validate_label_config(
    xml: str, task_type: TaskType, labels: Sequence[str], *, allow_extra_labels: bool = False
) -> LabelConfigInfo:
    """Check an existing project's config fits `task_type` and `labels`; return where things are, or raise.

    Extra labels are refused by default: annotators could pick them and every such annotation would then be
    an "unknown label" error at pull time."""
    info = parse_label_config(xml, task_type)
    problems: list[str] = []
    if not info.from_name:
        problems.append(f"the <{SHAPES[task_type].control_tag}> tag has no name")
    if not info.data_key:
        problems.append(f"the <{SHAPES[task_type].object_tag} name={info.to_name!r}> tag reads no $variable")
    missing = [label for label in labels if label not in info.labels]
    if missing:
        problems.append(f"missing labels: {', '.join(map(repr, missing))}")
    extra = [label for label in info.labels if label not in labels]
    if extra and not allow_extra_labels:
        problems.append(f"labels unknown to alweb: {', '.join(map(repr, extra))}")
    if info.multiple:
        problems.append(f"<Choices name={info.from_name!r}> allows several choices; alweb needs exactly one")
    if problems:
        raise LabelConfigError(problems)
    return info


def _shape(task_type: str) -> _Shape:
    try:
        return SHAPES[task_type]  # type: ignore[index]
    except KeyError:
        raise ValueError(f"unknown task type {task_type!r}; expected one of {', '.join(TASK_TYPES)}") from None


def _check_labels(labels: Sequence[str]) -> None:
    if isinstance(labels, str):
        raise TypeError("labels must be a sequence of strings, not one string")
    if not labels:
        raise ValueError("at least one label is needed")
    bad = [label for label in labels if not isinstance(label, str) or not label or label != label.strip()]
    if bad:
        raise ValueError(f"labels must be non-empty strings without surrounding whitespace: {bad!r}")
    dupes = sorted({label for label in labels if list(labels).count(label) > 1})
    if dupes:
        raise ValueError(f"duplicate labels: {dupes!r}")
