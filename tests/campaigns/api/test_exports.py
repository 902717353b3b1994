"""POST /api/projects/{id}/exports/ → 202 with the export's id and progress; GET follows it to a signed link that
downloads the file and expires; members only (404 for others); a bad format or cycle is a 400 naming the field."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.core import signing
from django.core.files.storage import default_storage
from django.test import Client
from django.utils import timezone

from campaigns import tasks
from campaigns.models import Export, Item

pytestmark = pytest.mark.django_db


@pytest.fixture
def run_inline(monkeypatch: Any) -> list[int]:
    """The export task runs in the request's on-commit callback, as a worker would run it after the commit."""
    ran: list[int] = []

    def delay(export_id: int) -> None:
        ran.append(export_id)
        tasks.project_export.run(export_id=export_id)

    monkeypatch.setattr(tasks.project_export, "delay", delay)
    return ran


@pytest.fixture
def labeled(project: Any) -> Any:
    for i in range(6):
        Item.objects.create(
            project=project, key=f"k{i}", split="train", text=f"t{i}", label="positive" if i % 2 else None
        )
    return project


def url(project: Any, export_id: int | None = None) -> str:
    base = f"/api/projects/{project.pk}/exports/"
    return base if export_id is None else f"{base}{export_id}/"


def test_member_exports_and_downloads_through_the_signed_link(
    as_member: Any, labeled: Any, post_json: Callable[..., Any], run_inline: list[int]
) -> None:
    response = post_json(as_member, url(labeled), {"format": "csv"})
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["id"] and body["state"] == "queued" and body["progress"] == {"done": 0, "total": 0}
    assert run_inline == [body["id"]]

    status = as_member.get(url(labeled, body["id"])).json()
    assert status["state"] == "done" and status["rows"] == 3
    assert status["progress"]["done"] == 3
    link = status["download_url"]
    assert "/m/" in link
    download = Client().get(link.split("127.0.0.1:8000", 1)[-1])  # no login: the signature is the grant
    assert download.status_code == 200
    rows = list(csv.DictReader(io.StringIO(b"".join(download.streaming_content).decode())))
    assert sorted(r["key"] for r in rows) == ["k1", "k3", "k5"]


def test_a_redelivered_task_rewrites_the_same_file(
    as_member: Any, labeled: Any, post_json: Any, run_inline: Any
) -> None:
    export_id = post_json(as_member, url(labeled), {"format": "jsonl"}).json()["id"]
    first = Export.objects.get(pk=export_id).file.name
    Export.objects.filter(pk=export_id).update(state="running")  # as if the worker died after writing
    tasks.project_export.run(export_id=export_id)
    export = Export.objects.get(pk=export_id)
    assert (export.state, export.file.name) == ("done", first)
    tasks.project_export.run(export_id=export_id)  # done and present: left alone
    assert Export.objects.get(pk=export_id).file.name == first


def test_the_link_expires(as_member: Any, labeled: Any, post_json: Any, run_inline: Any, settings: Any) -> None:
    export_id = post_json(as_member, url(labeled), {"format": "csv"}).json()["id"]
    link = as_member.get(url(labeled, export_id)).json()["download_url"]
    settings.ALWEB_MEDIA_URL_TTL = -1
    assert Client().get(link.split("127.0.0.1:8000", 1)[-1]).status_code == 404
    token = link.rstrip("/").rsplit("/", 1)[1]
    with pytest.raises(signing.BadSignature):
        signing.TimestampSigner(salt="alweb.media").unsign_object(token + "x")


@pytest.mark.parametrize(
    ("body", "field"),
    [({"format": "xlsx"}, "format"), ({"format": "csv", "as_of_cycle": 4}, "as_of_cycle"), ({}, "format")],
)
def test_bad_requests_are_400_naming_the_field(
    as_member: Any, project: Any, post_json: Any, body: Any, field: str
) -> None:
    response = post_json(as_member, url(project), body)
    assert response.status_code == 400
    assert field in response.json()
    assert not Export.objects.exists()


def test_nothing_labeled_exports_an_empty_file(as_member: Any, project: Any, post_json: Any, run_inline: Any) -> None:
    export_id = post_json(as_member, url(project), {"format": "csv"}).json()["id"]
    status = as_member.get(url(project, export_id)).json()
    assert (status["state"], status["rows"]) == ("done", 0)


def test_non_members_get_404(as_outsider: Any, project: Any, post_json: Any) -> None:
    assert post_json(as_outsider, url(project), {"format": "csv"}).status_code == 404
    export = Export.objects.create(project=project, format="csv")
    assert as_outsider.get(url(project, export.pk)).status_code == 404
    assert as_outsider.get(url(project)).status_code == 404


def test_old_exports_are_pruned_file_and_row_running_ones_kept(
    as_member: Any, labeled: Any, post_json: Callable[..., Any], run_inline: list[int], settings: Any
) -> None:
    done_id = post_json(as_member, url(labeled), {"format": "csv"}).json()["id"]
    done = Export.objects.get(pk=done_id)
    assert default_storage.exists(done.file.name)
    running = Export.objects.create(project=labeled, format="csv", state="running")
    long_ago = timezone.now() - timedelta(days=settings.ALWEB_EXPORT_RETENTION_DAYS + 1)
    Export.objects.filter(pk__in=[done.pk, running.pk]).update(created_at=long_ago)
    fresh_id = post_json(as_member, url(labeled), {"format": "jsonl"}).json()["id"]

    tasks.prune_old_exports.run()
    assert set(Export.objects.values_list("pk", flat=True)) == {running.pk, fresh_id}
    assert not default_storage.exists(done.file.name)
    assert as_member.get(url(labeled, done_id)).status_code == 404
    tasks.prune_old_exports.run()  # idempotent: nothing more to do
    settings.ALWEB_EXPORT_RETENTION_DAYS = 0  # keep forever
    Export.objects.filter(pk=fresh_id).update(created_at=long_ago)
    tasks.prune_old_exports.run()
    assert Export.objects.filter(pk=fresh_id).exists()
