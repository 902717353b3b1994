"""The project page's export card: the form starts an export, its status partial shows progress and then the link."""

from __future__ import annotations

from typing import Any

import pytest

from campaigns import tasks
from campaigns.models import Export, Item

pytestmark = pytest.mark.django_db


def test_export_button_starts_an_export_and_the_partial_shows_the_link(
    as_owner: Any, project: Any, monkeypatch: Any, django_capture_on_commit_callbacks: Any
) -> None:
    Item.objects.create(project=project, key="a", split="train", text="a", label=project.labels[0])
    monkeypatch.setattr(tasks.project_export, "delay", lambda export_id: None)
    page = as_owner.get(f"/projects/{project.pk}/")
    assert b'id="exports"' in page.content

    with django_capture_on_commit_callbacks(execute=True):
        response = as_owner.post(f"/projects/{project.pk}/exports/", {"format": "csv"})
    assert response.status_code == 302
    export = Export.objects.get(project=project)
    running = as_owner.get(f"/projects/{project.pk}/exports/{export.pk}/", HTTP_HX_REQUEST="true")
    assert b"hx-trigger" in running.content and b"Queued" in running.content

    tasks.project_export.run(export_id=export.pk)
    done = as_owner.get(f"/projects/{project.pk}/exports/{export.pk}/", HTTP_HX_REQUEST="true")
    assert b"Download" in done.content and b"/m/" in done.content and b"hx-trigger" not in done.content


def test_a_bad_cycle_is_said_and_nothing_starts(as_owner: Any, project: Any) -> None:
    response = as_owner.post(f"/projects/{project.pk}/exports/", {"format": "csv", "as_of_cycle": 3}, follow=True)
    assert b"as_of_cycle" in response.content and not Export.objects.exists()


def test_outsiders_get_404(as_outsider: Any, project: Any) -> None:
    export = Export.objects.create(project=project, format="csv")
    assert as_outsider.post(f"/projects/{project.pk}/exports/", {"format": "csv"}).status_code == 404
    assert as_outsider.get(f"/projects/{project.pk}/exports/{export.pk}/").status_code == 404
