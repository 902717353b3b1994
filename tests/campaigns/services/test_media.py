"""Signed media URLs: serve the file, refuse forged, tampered and expired links."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from campaigns.models import Item
from campaigns.services.items import items_import
from campaigns.services.media import item_media_url
from tests.campaigns.test_ingest import png, write_csv

pytestmark = pytest.mark.django_db


@pytest.fixture
def image_item(make_project: Any, tmp_path: Path) -> Item:
    project = make_project(task_type="image_classification", labels=["cat", "dog"])
    (tmp_path / "a.png").write_bytes(png())
    items_import(project=project, path=write_csv(tmp_path / "i.csv", "image\na.png\n"))
    return Item.objects.get(project=project)


def test_signed_url_serves_the_image_to_anyone_holding_it(image_item: Item, settings: Any) -> None:
    url = item_media_url(image_item)
    assert url.startswith(settings.ALWEB_BASE_URL + "/m/")
    response = Client().get(url.removeprefix(settings.ALWEB_BASE_URL))
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert b"".join(response.streaming_content) == png()


def test_forged_tampered_and_expired_links_are_refused(image_item: Item, settings: Any, monkeypatch: Any) -> None:
    path = item_media_url(image_item).removeprefix(settings.ALWEB_BASE_URL)
    client = Client()
    assert client.get(path[:-3] + "abc/").status_code == 404
    assert client.get("/m/eyJpIjoxfQ:1abc:forged/").status_code == 404
    settings.ALWEB_MEDIA_URL_TTL = -1  # every signature is now too old
    assert client.get(path).status_code == 404


def test_url_items_keep_their_url(make_project: Any) -> None:
    project = make_project(task_type="image_classification", labels=["cat"])
    item = Item.objects.create(project=project, key="u", split="pool", url="https://example.com/x.jpg")
    assert item_media_url(item) == "https://example.com/x.jpg"
