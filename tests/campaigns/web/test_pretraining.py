"""The "Pretrain backbone" page: linked from an image project's page, its form queues a run (a task), the run's
status partial shows a polled progress bar, a refused parameter is said next to its field, outsiders get 404; the
admin lists the runs read-only."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.urls import reverse

from campaigns import tasks
from campaigns.models import BackbonePretraining, Item
from tests.campaigns.web.conftest import HTMX

pytestmark = pytest.mark.django_db


@pytest.fixture
def images(project: Any) -> Any:
    project.task_type = "image_classification"
    project.save(update_fields=["task_type"])
    Item.objects.bulk_create(
        Item(project=project, key=f"k{i}", split="pool", media=f"items/{i}.png") for i in range(10)
    )
    return project


def page(project: Any) -> str:
    return f"/projects/{project.pk}/pretraining/"


def test_the_form_queues_a_run_shown_with_a_polled_progress_bar(
    as_owner: Any, images: Any, monkeypatch: Any, django_capture_on_commit_callbacks: Any
) -> None:
    sent: list[int] = []
    monkeypatch.setattr(tasks.backbone_pretrain, "delay", lambda run_id: sent.append(run_id))
    assert page(images).encode() in as_owner.get(f"/projects/{images.pk}/").content
    with django_capture_on_commit_callbacks(execute=True):
        response = as_owner.post(page(images), {"epochs": 4, "max_seconds": 60, "use": "on"})
    assert response.status_code == 302
    run = BackbonePretraining.objects.get(project=images)
    assert sent == [run.pk] and run.params == {"epochs": 4, "max_seconds": 60, "flip": False, "use": True}
    BackbonePretraining.objects.filter(pk=run.pk).update(state="running", progress={"done": 2, "total": 8})
    listing = as_owner.get(page(images)).content.decode()
    assert f'id="pretraining-{run.pk}"' in listing and re.search(r'<progress value="2" max="8"', listing)
    partial = as_owner.get(f"{page(images)}{run.pk}/status/", **HTMX).content.decode()
    assert "hx-trigger" in partial and "2 of 8 epochs" in partial
    # A second one while it runs is refused, saying which.
    busy = as_owner.post(page(images), {"epochs": 4, "max_seconds": 60})
    assert busy.status_code == 422 and f"pretraining {run.pk} is running" in busy.content.decode()
    too_long = as_owner.post(page(images), {"epochs": 4, "max_seconds": 10**6})
    html = too_long.content.decode()
    assert too_long.status_code == 422 and 'id="id_max_seconds_error"' in html and "ALWEB_SSL_MAX_SECONDS" in html


def test_outsiders_get_404_and_the_admin_lists_runs_read_only(as_outsider: Any, images: Any, admin_client: Any) -> None:
    run = BackbonePretraining.objects.create(project=images, state="done", backbone="backbones/project-1/a.pt")
    assert as_outsider.get(page(images)).status_code == 404
    assert as_outsider.get(f"{page(images)}{run.pk}/status/").status_code == 404
    listing = admin_client.get(reverse("admin:campaigns_backbonepretraining_changelist"))
    assert listing.status_code == 200 and "backbones/project-1/a.pt" in listing.content.decode()
    assert admin_client.get(reverse("admin:campaigns_backbonepretraining_change", args=[run.pk])).status_code == 200
    assert admin_client.get(reverse("admin:campaigns_backbonepretraining_add")).status_code == 403


def test_a_running_run_has_a_cancel_button_and_the_admin_cancels_and_requeues(
    as_owner: Any,
    as_outsider: Any,
    images: Any,
    admin_client: Any,
    monkeypatch: Any,
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    sent: list[int] = []
    monkeypatch.setattr(tasks.backbone_pretrain, "delay", lambda run_id: sent.append(run_id))
    run = BackbonePretraining.objects.create(project=images, state="running", progress={"done": 1, "total": 8})
    cancel = f"{page(images)}{run.pk}/cancel/"
    assert f'action="{cancel}"' in as_owner.get(f"{page(images)}{run.pk}/status/", **HTMX).content.decode()
    assert as_outsider.post(cancel).status_code == 404
    assert as_owner.get(cancel).status_code == 405
    response = as_owner.post(cancel, follow=True)
    run.refresh_from_db()
    assert run.state == "failed" and run.failure_reason == f"cancelled by {images.owner.username}"
    assert f"Pretraining {run.pk} cancelled" in response.content.decode()
    assert f'action="{cancel}"' not in as_owner.get(f"{page(images)}{run.pk}/status/", **HTMX).content.decode()
    assert "Not cancelled" in as_owner.post(cancel, follow=True).content.decode()

    changelist = reverse("admin:campaigns_backbonepretraining_changelist")
    stalled = BackbonePretraining.objects.create(project=images, state="queued")
    settings.ALWEB_REQUEUE_STALE_AFTER = 0
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(changelist, {"action": "requeue", "_selected_action": [stalled.pk, run.pk]})
    assert sent == [stalled.pk]  # the failed run is said to be over, not sent
    admin_client.post(changelist, {"action": "cancel", "_selected_action": [stalled.pk]})
    stalled.refresh_from_db()
    assert stalled.state == "failed" and stalled.failure_reason == "cancelled by admin"
