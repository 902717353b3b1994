"""POST /api/projects/{id}/pretrainings/ → 202 with the run queued; GET lists and follows it; a bad parameter is a 400
naming the field, a second run while one is queued or running a 409; members only (404 for others, 401 anonymous)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from campaigns import tasks
from campaigns.models import BackbonePretraining, Item

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch: Any) -> list[int]:
    ids: list[int] = []
    monkeypatch.setattr(tasks.backbone_pretrain, "delay", lambda run_id: ids.append(run_id))
    return ids


@pytest.fixture
def images(project: Any) -> Any:
    """An image project with stored pool images (the request only counts them; the task reads them)."""
    project.task_type = "image_classification"
    project.save(update_fields=["task_type"])
    Item.objects.bulk_create(
        Item(project=project, key=f"k{i}", split="pool", media=f"items/{i}.png") for i in range(10)
    )
    return project


def url(project: Any, run_id: int | None = None) -> str:
    base = f"/api/projects/{project.pk}/pretrainings/"
    return base if run_id is None else f"{base}{run_id}/"


BODY = {"epochs": 5, "max_seconds": 60, "use": True}


def test_a_member_requests_a_run_and_follows_it(
    as_member: Any, images: Any, post_json: Callable[..., Any], sent: list[int]
) -> None:
    response = post_json(as_member, url(images), BODY)
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["state"] == "queued" and body["created_by"] == "mario" and sent == [body["id"]]
    assert body["params"] == {"epochs": 5, "max_seconds": 60, "flip": False, "use": True}
    BackbonePretraining.objects.filter(pk=body["id"]).update(state="done", backbone="backbones/project-1/x.pt")
    got = as_member.get(url(images, body["id"])).json()
    assert got["state"] == "done" and got["backbone"] == "backbones/project-1/x.pt"
    assert [r["id"] for r in as_member.get(url(images)).json()["results"]] == [body["id"]]


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"epochs": 0}, "epochs", "from 1"),
        ({"epochs": "many"}, "epochs", "integer"),
        ({"max_seconds": 5}, "max_seconds", "from 10"),
        ({"max_seconds": 10**6}, "max_seconds", "ALWEB_SSL_MAX_SECONDS"),
        ({"use": "perhaps"}, "use", "boolean"),
    ],
)
def test_a_bad_parameter_is_a_400_naming_the_field(
    as_member: Any, images: Any, post_json: Callable[..., Any], sent: list[int], change: Any, field: str, words: str
) -> None:
    response = post_json(as_member, url(images), {**BODY, **change})
    assert response.status_code == 400
    errors = response.json()
    assert list(errors) == [field] and words in " ".join(errors[field]), errors
    assert not BackbonePretraining.objects.exists() and sent == []


def test_a_text_project_or_too_few_images_is_a_400(
    as_member: Any, project: Any, post_json: Callable[..., Any], sent: list[int]
) -> None:
    response = post_json(as_member, url(project), BODY)
    assert response.status_code == 400 and "image classification" in response.json()["project"][0]
    project.task_type = "image_classification"
    project.save(update_fields=["task_type"])
    Item.objects.create(project=project, key="one", split="pool", media="items/one.png")
    response = post_json(as_member, url(project), BODY)
    assert response.status_code == 400 and "has 1 stored" in response.json()["project"][0]
    assert sent == []


def test_a_second_run_while_one_is_running_is_a_409(
    as_member: Any, images: Any, post_json: Callable[..., Any], sent: list[int]
) -> None:
    first = post_json(as_member, url(images), BODY).json()
    BackbonePretraining.objects.filter(pk=first["id"]).update(state="running")
    second = post_json(as_member, url(images), BODY)
    assert second.status_code == 409 and f"pretraining {first['id']} is running" in second.json()["detail"]
    BackbonePretraining.objects.filter(pk=first["id"]).update(state="done")
    assert post_json(as_member, url(images), BODY).status_code == 202  # re-run on demand once it is over


def test_non_members_get_404_and_anonymous_401(
    as_outsider: Any, anon: Any, images: Any, post_json: Callable[..., Any], sent: list[int]
) -> None:
    run = BackbonePretraining.objects.create(project=images)
    assert post_json(as_outsider, url(images), BODY).status_code == 404
    assert as_outsider.get(url(images, run.pk)).status_code == 404
    assert anon.get(url(images)).status_code == 401
    assert BackbonePretraining.objects.count() == 1 and sent == []


def test_a_member_cancels_a_run_and_requeues_a_stalled_one(
    as_member: Any, images: Any, post_json: Callable[..., Any], sent: list[int], settings: Any
) -> None:
    first = post_json(as_member, url(images), BODY).json()
    BackbonePretraining.objects.filter(pk=first["id"]).update(state="running", attempt=1)
    cancelled = post_json(as_member, url(images, first["id"]) + "cancel/", {})
    assert cancelled.status_code == 200, cancelled.json()
    assert cancelled.json()["state"] == "failed" and cancelled.json()["failure_reason"] == "cancelled by mario"
    again = post_json(as_member, url(images, first["id"]) + "cancel/", {})
    assert again.status_code == 409 and "is failed" in again.json()["detail"]
    assert post_json(as_member, url(images, first["id"]) + "requeue/", {}).status_code == 409

    # A run whose message was lost stays queued: requeued once it has not moved for ALWEB_REQUEUE_STALE_AFTER.
    second = post_json(as_member, url(images), BODY).json()
    assert sent == [first["id"], second["id"]]
    fresh = post_json(as_member, url(images, second["id"]) + "requeue/", {})
    assert fresh.status_code == 409 and "a worker may hold it" in fresh.json()["detail"]
    settings.ALWEB_REQUEUE_STALE_AFTER = 0
    requeued = post_json(as_member, url(images, second["id"]) + "requeue/", {})
    assert requeued.status_code == 202 and requeued.json()["state"] == "queued"
    assert sent == [first["id"], second["id"], second["id"]]
