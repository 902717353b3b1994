"""Media links: a stable per-item link for Label Studio tasks (never expires, cannot be forged, revocable) and
expiring signed links for downloads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from campaigns.models import Item
from campaigns.services.items import items_import
from campaigns.services.media import item_media_url, project_revoke_media_links, signed_storage_url
from tests.campaigns.test_ingest import png, write_csv

pytestmark = pytest.mark.django_db


@pytest.fixture
def image_item(make_project: Any, tmp_path: Path) -> Item:
    project = make_project(task_type="image_classification", labels=["cat", "dog"])
    (tmp_path / "a.png").write_bytes(png())
    items_import(project=project, path=write_csv(tmp_path / "i.csv", "image\na.png\n"))
    return Item.objects.get(project=project)


def test_item_link_serves_the_image_to_anyone_holding_it_whatever_its_age(image_item: Item, settings: Any) -> None:
    url = item_media_url(image_item)
    assert url.startswith(settings.ALWEB_BASE_URL + f"/m/i/{image_item.pk}/")
    assert item_media_url(image_item) == url  # stable: every sync sends the same link
    settings.ALWEB_MEDIA_URL_TTL = -1  # expiring signatures are all too old now; a task's link is not
    response = Client().get(url.removeprefix(settings.ALWEB_BASE_URL))
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert "private" in response["Cache-Control"]
    assert b"".join(response.streaming_content) == png()


def test_forged_moved_and_revoked_item_links_are_refused(image_item: Item, settings: Any) -> None:
    path = item_media_url(image_item).removeprefix(settings.ALWEB_BASE_URL)
    client = Client()
    assert client.get(path[:-4] + "abcd/").status_code == 404
    # Another item's id under this item's signature: the signature covers the id.
    other = Item.objects.create(project=image_item.project, key="b", split="pool", media=image_item.media.name)
    assert client.get(path.replace(f"/m/i/{image_item.pk}/", f"/m/i/{other.pk}/")).status_code == 404
    # The item's file replaced: the old link no longer grants anything.
    image_item.media.name = "items/elsewhere.png"
    image_item.save(update_fields=["media"])
    assert client.get(path).status_code == 404
    image_item.refresh_from_db()
    # Revoked: raising the project's epoch invalidates every link handed out so far; the new link works.
    original = Item.objects.get(pk=image_item.pk)
    original.media.name = other.media.name
    original.save(update_fields=["media"])
    path = item_media_url(original).removeprefix(settings.ALWEB_BASE_URL)
    assert client.get(path).status_code == 200
    project = original.project
    project_revoke_media_links(project=project)
    assert client.get(path).status_code == 404
    fresh = Item.objects.select_related("project").get(pk=original.pk)
    assert client.get(item_media_url(fresh).removeprefix(settings.ALWEB_BASE_URL)).status_code == 200


def test_download_links_expire(image_item: Item, settings: Any) -> None:
    path = signed_storage_url(image_item.media.name, i=image_item.pk).removeprefix(settings.ALWEB_BASE_URL)
    client = Client()
    assert client.get(path).status_code == 200
    assert client.get(path[:-3] + "abc/").status_code == 404
    assert client.get("/m/eyJpIjoxfQ:1abc:forged/").status_code == 404
    settings.ALWEB_MEDIA_URL_TTL = -1  # every signature is now too old
    assert client.get(path).status_code == 404


def test_url_items_keep_their_url(make_project: Any) -> None:
    project = make_project(task_type="image_classification", labels=["cat"])
    item = Item.objects.create(project=project, key="u", split="pool", url="https://example.com/x.jpg")
    assert item_media_url(item) == "https://example.com/x.jpg"
