"""Damaged and hostile import files beyond the plain malformed rows of test_ingest: values the database cannot
hold, broken archives, non-UTF-8 side files, mistyped COCO, images that only fail when decoded, impossible tiles.
Each is an ItemImportError naming the file, the line or entry and the reason, and nothing is imported."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from campaigns.ingest.rows import ItemImportError
from campaigns.models import Item
from campaigns.services.items import items_import
from tests.campaigns.test_ingest import make_zip, png

pytestmark = pytest.mark.django_db


def refused(project: Any, path: Path, **options: Any) -> ItemImportError:
    with pytest.raises(ItemImportError) as exc:
        items_import(project=project, path=path, **options)
    assert Item.objects.filter(project=project).count() == 0
    return exc.value


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({"key": "a", "text": "nul\u0000inside"}, "text"),
        ({"key": "nul\u0000key", "text": "t"}, "key"),
        ({"key": "a", "text": "t", "metadata": {"note": "x\u0000y"}}, "metadata"),
        ({"key": "a", "text": "t", "source": "s" * 513}, "source"),
        ({"key": "k" * 513, "text": "t"}, "key"),
    ],
)
def test_values_the_database_cannot_hold_are_bad_rows(
    text_project: Any, tmp_path: Path, row: dict[str, Any], field: str
) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"key": "fine", "text": "ok"}) + "\n" + json.dumps(row) + "\n")
    error = refused(text_project, path)
    assert (error.file, error.line, error.field) == ("rows.jsonl", 2, field), error


def test_an_overlong_url_and_a_nul_in_an_image_path(image_project: Any, tmp_path: Path) -> None:
    path = tmp_path / "urls.csv"
    path.write_text("key,url\na,https://example.com/" + "x" * 2100 + "\n")
    assert refused(image_project, path).field == "url"
    path = tmp_path / "paths.jsonl"
    path.write_text(json.dumps({"key": "a", "image": "a\u0000.png"}) + "\n")
    error = refused(image_project, path)
    assert error.field == "image" and "NUL" in error.reason


def test_a_zip_member_with_a_bad_crc_is_named(image_project: Any, tmp_path: Path) -> None:
    path = make_zip(tmp_path / "crc.zip", {"cat/a.png": png(), "cat/b.png": png((9, 9, 9))}, zipfile.ZIP_STORED)
    raw = bytearray(path.read_bytes())
    at = raw.index(png((9, 9, 9))) + 40  # a byte inside b.png's stored data: its CRC no longer matches
    raw[at] ^= 0xFF
    path.write_bytes(bytes(raw))
    error = refused(image_project, path, label_from_dir=True)
    assert (error.file, error.line) == ("crc.zip", "cat/b.png") and "cannot read cat/b.png" in error.reason


def test_a_yolo_labels_file_that_is_not_utf8(detection_project: Any, tmp_path: Path) -> None:
    (tmp_path / "ds" / "images").mkdir(parents=True)
    (tmp_path / "ds" / "labels").mkdir()
    (tmp_path / "ds" / "images" / "street.png").write_bytes(png())
    (tmp_path / "ds" / "labels" / "street.txt").write_bytes("0 0.5 0.5 0.1 0.1 \xe9\n".encode("latin-1"))
    error = refused(detection_project, tmp_path / "ds")
    assert error.file == "ds/labels/street.txt" and "not valid UTF-8" in error.reason


@pytest.mark.parametrize(
    ("change", "where", "reason"),
    [
        ({"categories": 5}, "categories", "must be a list"),
        ({"annotations": {"a": 1}}, "annotations", "must be a list"),
        ({"categories": [{"id": [3], "name": "person"}]}, "categories[0]", "id must be"),
        ({"annotations": [{"image_id": 1, "category_id": [], "bbox": [1, 1, 2, 2]}]}, "annotations[0]", "unknown"),
        ({"annotations": [{"image_id": {}, "category_id": 3, "bbox": [1, 1, 2, 2]}]}, "annotations[0]", "image_id"),
        ({"images": [{"id": [1], "file_name": "1.png"}]}, "images[0]", "id must be"),
    ],
)
def test_mistyped_coco_is_named(
    detection_project: Any, tmp_path: Path, change: dict[str, Any], where: str, reason: str
) -> None:
    (tmp_path / "1.png").write_bytes(png(size=(100, 50)))
    coco = {
        "images": [{"id": 1, "file_name": "1.png"}],
        "annotations": [{"image_id": 1, "category_id": 3, "bbox": [10, 5, 20, 10]}],
        "categories": [{"id": 3, "name": "person"}],
    } | change
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(coco))
    error = refused(detection_project, path)
    assert (error.file, error.line) == ("coco.json", where) and reason in error.reason, error


def test_a_truncated_jpeg_is_refused_at_import_not_in_training(image_project: Any, tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.effect_noise((64, 64), 40).convert("RGB").save(buf, format="JPEG", quality=90)
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "whole.jpg").write_bytes(buf.getvalue())
    (tmp_path / "cat" / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    error = refused(image_project, tmp_path, label_from_dir=True)
    assert error.line == "cat/cut.jpg" and "unreadable image" in error.reason


def test_tiles_larger_than_the_image_are_refused(detection_project: Any, tmp_path: Path) -> None:
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "tiny.png").write_bytes(png(size=(2, 2)))
    error = refused(detection_project, tmp_path / "ds", tile=(6, 4))
    assert "a 2x2 image cannot be cut into 6x4 tiles" in error.reason
