"""The Label Studio webhook: secret header, what it enqueues, and real deliveries from LS to a live alweb."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from campaigns.models import Annotation, Item, Project
from integrations.labelstudio import client as lsc
from integrations.labelstudio import convert
from integrations.labelstudio.client import LabelStudio
from integrations.labelstudio.connect import labelstudio_connect_project
from integrations.labelstudio.sync import cycle_sync_to_labelstudio
from tests.factories import ItemFactory
from tests.integrations.labelstudio.builders import annotate, cold_cycle, make_project

H = "HTTP_X_ALWEB_WEBHOOK_SECRET"


def post(client: Client, project: Project, payload: Any, **headers: str) -> Any:
    url = reverse("labelstudio-webhook", args=[project.pk])
    return client.post(url, data=json.dumps(payload), content_type="application/json", **headers)


def delivery(project: Project, action: str = "ANNOTATION_CREATED", task: int = 501, annotation: int = 9) -> Any:
    return {
        "action": action,
        "annotation": {"id": annotation, "task": task},
        "task": {"id": task},
        "project": {"id": project.ls_project_id},
    }


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    from campaigns import tasks

    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(tasks.project_pull, "delay", lambda *a, **kw: calls.append((*a, kw)))
    return calls


@pytest.mark.django_db
def test_secret_is_required_and_compared(
    client: Client, queued: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    project = make_project(n=0)
    Project.objects.filter(pk=project.pk).update(ls_project_id=4242, ls_url="http://ls.example")
    project.refresh_from_db()
    assert post(client, project, delivery(project)).status_code == 403
    assert post(client, project, delivery(project), **{H: "wrong"}).status_code == 403
    assert post(client, project, delivery(project), **{H: project.ls_webhook_secret + "x"}).status_code == 403
    other = make_project(n=0)
    assert post(client, project, delivery(project), **{H: other.ls_webhook_secret}).status_code == 403
    unknown = reverse("labelstudio-webhook", args=[10**9])
    assert client.post(unknown, data="{}", content_type="application/json", **{H: "x"}).status_code == 404
    assert client.get(reverse("labelstudio-webhook", args=[project.pk])).status_code == 405
    assert queued == []

    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, project, delivery(project, task=77), **{H: project.ls_webhook_secret})
    assert response.status_code == 200 and response.json() == {"status": "queued", "tasks": [77]}
    assert queued == [({"project_id": project.pk, "task_ids": [77]},)]


@pytest.mark.django_db
def test_deliveries_alweb_does_not_follow_or_cannot_read(client: Client, queued: list[Any]) -> None:
    project = make_project(n=0)
    Project.objects.filter(pk=project.pk).update(ls_project_id=4243, ls_url="http://ls.example")
    project.refresh_from_db()
    secret = {H: project.ls_webhook_secret}
    assert post(client, project, {"action": "PROJECT_UPDATED", "project": {"id": 4243}}, **secret).json() == {
        "status": "ignored",
        "tasks": [],
    }
    assert post(client, project, delivery(project) | {"project": {"id": 1}}, **secret).status_code == 400
    url = reverse("labelstudio-webhook", args=[project.pk])
    assert client.post(url, data="not json", content_type="application/json", **secret).status_code == 400
    assert queued == []


@pytest.mark.django_db
def test_deleted_annotations_pull_the_tasks_they_were_on(
    client: Client, queued: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    project = make_project(n=0)
    Project.objects.filter(pk=project.pk).update(ls_project_id=4244, ls_url="http://ls.example")
    project.refresh_from_db()
    item = ItemFactory(project=project, ls_task_id=900)
    Annotation.objects.create(project=project, item=item, ls_annotation_id=31, ls_task_id=900)
    payload = {"action": "ANNOTATIONS_DELETED", "annotations": [{"id": 31}, {"id": 999}], "project": {"id": 4244}}
    with django_capture_on_commit_callbacks(execute=True):
        assert post(client, project, payload, **{H: project.ls_webhook_secret}).json()["tasks"] == [900]
    assert queued == [({"project_id": project.pk, "task_ids": [900]},)]


def wait(predicate: Callable[[], Any], what: str, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_label_studio_deliveries_reach_alweb_and_pull_their_task(ls_live: Any, ls_pat_client: LabelStudio) -> None:
    project = labelstudio_connect_project(project=make_project(n=4))
    cycle_sync_to_labelstudio(cycle=cold_cycle(project, budget=4))
    target = Item.objects.filter(project=project).order_by("key").first()
    assert target is not None and target.ls_task_id
    ann = annotate(ls_pat_client, target.ls_task_id, convert.choice_result("dog", to_name="text"))
    row = wait(lambda: Annotation.objects.filter(project=project, ls_annotation_id=ann).first(), "the webhook's pull")
    assert row.value == "dog"
    wait(lambda: Item.objects.get(pk=target.pk).label == "dog", "the item's label")

    lsc._request(
        ls_pat_client,
        "PATCH",
        f"api/annotations/{ann}/",
        json={"result": convert.choice_result("bird", to_name="text")},
    )
    wait(lambda: Annotation.objects.get(pk=row.pk).value == "bird", "the update")
    lsc._request(ls_pat_client, "DELETE", f"api/annotations/{ann}/")
    wait(lambda: Annotation.objects.get(pk=row.pk).deleted_at is not None, "the deletion")
    assert Item.objects.get(pk=target.pk).label is None
    assert Project.objects.get(pk=project.pk).ls_pulled_until is None  # webhooks pull tasks, not the project
