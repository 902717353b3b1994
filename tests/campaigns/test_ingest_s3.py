"""The S3 path of ingest, against a real S3-API server (moto's standalone server) on loopback."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from django.core.files.storage import default_storage, storages
from django.test import Client, override_settings

from campaigns.ingest.rows import ItemImportError
from campaigns.models import Item
from campaigns.services.items import items_import
from campaigns.services.media import item_media_url
from tests.campaigns.test_ingest import png, write_csv

pytestmark = [pytest.mark.django_db, pytest.mark.integration]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3_server() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        # Up to 60 s: on a loaded 2-core machine the server may accept connections before it answers them (a read
        # timeout, not a refused connection), so any request error means "not ready yet".
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(url, timeout=2)
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def s3_bucket(s3_server: str) -> Iterator[Any]:
    creds = {"aws_access_key_id": "test", "aws_secret_access_key": "test", "region_name": "us-east-1"}
    client = boto3.client("s3", endpoint_url=s3_server, **creds)
    client.create_bucket(Bucket="alweb-media")
    storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": "alweb-media",
            "endpoint_url": s3_server,
            "access_key": "test",
            "secret_key": "test",
            "region_name": "us-east-1",
            "querystring_auth": True,
            "querystring_expire": 600,
        },
    }
    settings_storages = {"default": storage, "staticfiles": {"BACKEND": "django.core.files.storage.FileSystemStorage"}}
    with override_settings(STORAGES=settings_storages):
        storages._storages.clear()  # the storages handler caches backends across override_settings
        yield client
    storages._storages.clear()
    for obj in client.list_objects_v2(Bucket="alweb-media").get("Contents", []):
        client.delete_object(Bucket="alweb-media", Key=obj["Key"])
    client.delete_bucket(Bucket="alweb-media")


def keys(client: Any) -> list[str]:
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket="alweb-media").get("Contents", []))


def test_images_go_to_s3_and_presigned_urls_serve_them(make_project: Any, tmp_path: Path, s3_bucket: Any) -> None:
    project = make_project(task_type="image_classification", labels=["cat", "dog"])
    (tmp_path / "a.png").write_bytes(png())
    result = items_import(project=project, path=write_csv(tmp_path / "i.csv", "image,label\na.png,cat\n"))
    assert result.files_stored == 1
    item = Item.objects.get()
    assert keys(s3_bucket) == [item.media.name]
    url = default_storage.url(item.media.name)
    assert "Signature" in url or "X-Amz-Signature" in url
    assert requests.get(url, timeout=5).content == png()


def test_a_tasks_stable_link_redirects_to_a_freshly_presigned_url(
    make_project: Any, tmp_path: Path, s3_bucket: Any, settings: Any
) -> None:
    project = make_project(task_type="image_classification", labels=["cat", "dog"])
    (tmp_path / "a.png").write_bytes(png())
    items_import(project=project, path=write_csv(tmp_path / "i.csv", "image\na.png\n"))
    item = Item.objects.get()
    path = item_media_url(item).removeprefix(settings.ALWEB_BASE_URL)
    first = Client().get(path)
    assert first.status_code == 302 and "no-store" in first["Cache-Control"]
    assert "Signature" in first["Location"] or "X-Amz-Signature" in first["Location"]
    assert requests.get(first["Location"], timeout=5).content == png()
    assert Client().get(path[:-4] + "abcd/").status_code == 404


def test_failed_import_leaves_nothing_in_the_bucket(make_project: Any, tmp_path: Path, s3_bucket: Any) -> None:
    project = make_project(task_type="image_classification", labels=["cat", "dog"])
    (tmp_path / "a.png").write_bytes(png())
    (tmp_path / "b.png").write_bytes(b"garbage")
    with pytest.raises(ItemImportError, match="unreadable image"):
        items_import(project=project, path=write_csv(tmp_path / "i.csv", "image\na.png\nb.png\n"))
    assert keys(s3_bucket) == []
    assert Item.objects.count() == 0
