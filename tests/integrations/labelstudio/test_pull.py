"""Pulling annotations from a real Label Studio: several annotators, updates, deletes, skips, errors, boxes."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest

from campaigns.models import Annotation, Item, Project
from integrations.labelstudio import client as lsc
from integrations.labelstudio import convert
from integrations.labelstudio import pull as ls_pull
from integrations.labelstudio.client import LabelStudio
from integrations.labelstudio.pull import project_pull_annotations
from integrations.labelstudio.sync import cycle_sync_to_labelstudio
from tests.integrations.labelstudio.builders import annotate, cold_cycle, ls_user, make_project

pytestmark = [pytest.mark.django_db, pytest.mark.integration]


def synced_project(task_type: str = "text_classification", n: int = 6) -> tuple[Project, dict[str, int]]:
    """A project whose `n` items all have LS tasks; returns it and {item key: task id}."""
    project = make_project(task_type, n=n)
    cycle_sync_to_labelstudio(cycle=cold_cycle(project, budget=n))
    project.refresh_from_db()
    return project, dict(Item.objects.filter(project=project).values_list("key", "ls_task_id"))


def item(project: Project, key: str) -> Item:
    return Item.objects.get(project=project, key=key)


def test_created_updated_and_deleted_annotations_of_several_annotators(
    ls_settings: Any, ls_pat_client: LabelStudio
) -> None:
    project, tasks = synced_project()
    ann2, ann3 = ls_user(ls_pat_client, "ann2@alweb.test"), ls_user(ls_pat_client, "ann3@alweb.test")
    a1 = annotate(ls_pat_client, tasks["item-0000"], convert.choice_result("cat", to_name="text"), lead_time=3.25)
    annotate(ls_pat_client, tasks["item-0000"], convert.choice_result("dog", to_name="text"), user=ann2)
    a3 = annotate(ls_pat_client, tasks["item-0000"], convert.choice_result("dog", to_name="text"), user=ann3)
    annotate(ls_pat_client, tasks["item-0001"], convert.choice_result("bird", to_name="text"), user=ann2)

    result = project_pull_annotations(project=project)
    assert (result.created, result.deleted, result.errors) == (4, 0, 0)
    first = item(project, "item-0000")
    assert (first.label, first.label_source) == ("dog", "consensus")  # the majority of three answers
    assert first.metadata["agreement"] == pytest.approx(2 / 3)
    rows = {a.ls_annotation_id: a for a in Annotation.objects.filter(project=project)}
    assert rows[a1].annotator == "admin@alweb.local" and rows[a1].lead_time == 3.25
    assert rows[a3].annotator == "ann3@alweb.test"
    assert {rows[a].annotator for a in rows} == {"admin@alweb.local", "ann2@alweb.test", "ann3@alweb.test"}
    assert item(project, "item-0001").label == "bird"
    assert Project.objects.get(pk=project.pk).ls_pulled_until is not None

    # An annotator changes their mind, another's answer is deleted: the majority flips back to "cat".
    lsc._request(
        ls_pat_client, "PATCH", f"api/annotations/{a3}/", json={"result": convert.choice_result("cat", to_name="text")}
    )
    lsc._request(ls_pat_client, "DELETE", f"api/annotations/{rows[a1].ls_annotation_id + 1}/")
    result = project_pull_annotations(project=Project.objects.get(pk=project.pk))
    assert (result.updated, result.deleted) == (1, 1)
    first.refresh_from_db()
    assert first.label == "cat" and first.metadata["agreement"] == 1.0
    assert Annotation.objects.get(project=project, ls_annotation_id=rows[a1].ls_annotation_id + 1).deleted_at


def test_pull_is_incremental_and_a_repeat_applies_nothing(
    ls_settings: Any, ls_pat_client: LabelStudio, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ls_pull, "WATERMARK_MARGIN", timedelta(0))
    project, tasks = synced_project(n=8)
    annotate(ls_pat_client, tasks["item-0002"], convert.choice_result("cat", to_name="text"))
    time.sleep(1.1)  # LS's clock (the HTTP Date) has 1 s resolution: step past the change
    assert project_pull_annotations(project=project).tasks == 8  # first pull: no watermark yet
    project.refresh_from_db()
    again = project_pull_annotations(project=project)
    assert (again.tasks, again.created, again.updated) == (0, 0, 0)  # nothing changed: nothing listed

    annotate(ls_pat_client, tasks["item-0005"], convert.choice_result("bird", to_name="text"))
    project.refresh_from_db()
    changed = project_pull_annotations(project=project)
    assert (changed.tasks, changed.created) == (1, 1)  # only the changed task, not the project
    assert item(project, "item-0005").label == "bird"


def test_unknown_label_and_malformed_result_are_recorded_and_the_rest_applies(
    ls_settings: Any, ls_pat_client: LabelStudio
) -> None:
    project, tasks = synced_project()
    annotate(ls_pat_client, tasks["item-0000"], convert.choice_result("fish", to_name="text"))
    bad_shape = [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": "cat"}}]
    annotate(ls_pat_client, tasks["item-0001"], bad_shape)
    annotate(ls_pat_client, tasks["item-0002"], convert.choice_result("dog", to_name="text"))
    annotate(ls_pat_client, tasks["item-0003"], [], was_cancelled=True)  # skipped

    result = project_pull_annotations(project=project)
    assert (result.created, result.errors) == (4, 2)
    unknown, malformed = item(project, "item-0000"), item(project, "item-0001")
    assert unknown.label is None and "unknown label 'fish'" in unknown.label_error
    assert malformed.label is None and "choices must be a list" in malformed.label_error
    assert item(project, "item-0002").label == "dog"
    skipped = item(project, "item-0003")
    assert skipped.label is None and skipped.label_error == ""
    assert Annotation.objects.get(project=project, ls_task_id=tasks["item-0003"]).was_cancelled


def test_detection_boxes_come_back_as_fractions_of_the_image(ls_settings: Any, ls_pat_client: LabelStudio) -> None:
    project, tasks = synced_project("object_detection", n=2)
    boxes = [convert.Box("dog", 4, 3, 20, 15), convert.Box("bird", 30, 0, 10, 30)]
    annotate(ls_pat_client, tasks["item-0000"], convert.boxes_result(boxes, image_width=40, image_height=30))
    rotated = convert.boxes_result([convert.Box("cat", 1, 1, 5, 5)], image_width=40, image_height=30)
    rotated[0]["value"]["rotation"] = 30
    annotate(ls_pat_client, tasks["item-0001"], rotated)
    project_pull_annotations(project=project)
    first = item(project, "item-0000")
    assert first.label == [
        {"label": "dog", "x": 0.1, "y": 0.1, "w": 0.5, "h": 0.5},
        {"label": "bird", "x": 0.75, "y": 0.0, "w": 0.25, "h": 1.0},
    ]
    assert "rotated box" in item(project, "item-0001").label_error


def test_pull_of_given_tasks_leaves_the_watermark(ls_settings: Any, ls_pat_client: LabelStudio) -> None:
    project, tasks = synced_project()
    annotate(ls_pat_client, tasks["item-0004"], convert.choice_result("cat", to_name="text"))
    result = project_pull_annotations(project=project, task_ids=[tasks["item-0004"]])
    assert (result.tasks, result.created) == (1, 1)
    assert Project.objects.get(pk=project.pk).ls_pulled_until is None
