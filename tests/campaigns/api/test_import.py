"""POST /api/projects/{id}/items/import/: the upload runs items_import; a bad file is a 400 naming file and line."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from campaigns.models import Item
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db


def url(project: Any) -> str:
    return f"/api/projects/{project.pk}/items/import/"


def upload(name: str, content: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="application/octet-stream")


def png(color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), color).save(buf, format="PNG")
    return buf.getvalue()


CSV = "key,text,label\n" + "".join(f"k{i},text {i},{'positive' if i < 3 else ''}\n" for i in range(20))


def test_csv_upload_imports_and_is_idempotent(as_member: Any, project: Any) -> None:
    response = as_member.post(url(project), {"file": upload("reviews.csv", CSV.encode())}, format="multipart")
    assert response.status_code == 200, response.json()
    assert response.json() == {
        "rows": 20,
        "created": 20,
        "unchanged": 0,
        "labeled": 3,
        "files_stored": 0,
        "conflicts": 0,
        "conflict_rows": [],
    }
    assert Item.objects.filter(project=project).count() == 20
    assert Item.objects.get(project=project, key="k0").label == "positive"
    again = as_member.post(url(project), {"file": upload("reviews.csv", CSV.encode())}, format="multipart")
    assert again.json()["unchanged"] == 20


def test_labels_as_ground_truth_and_explicit_format(as_owner: Any, project: Any) -> None:
    jsonl = b'{"key": "j1", "text": "hello", "label": "neutral"}\n'
    body = {"file": upload("data.txt", jsonl), "format": "jsonl", "as_ground_truth": "true"}
    response = as_owner.post(url(project), body, format="multipart")
    assert response.status_code == 200, response.json()
    item = Item.objects.get(project=project, key="j1")
    assert (item.label, item.ground_truth) == (None, "neutral")


def test_bad_row_is_400_with_file_line_reason_and_nothing_imported(as_member: Any, project: Any) -> None:
    bad = CSV + "k99,text 99,sarcastic\n"
    response = as_member.post(url(project), {"file": upload("reviews.csv", bad.encode())}, format="multipart")
    assert response.status_code == 400
    error = response.json()
    assert (error["file"], error["line"], error["field"]) == ("reviews.csv", 22, "label")
    assert "sarcastic" in error["reason"]
    assert not Item.objects.filter(project=project).exists()


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("latin1.csv", "key,text\nk1,caf\xe9\n".encode("latin-1"), "UTF-8"),
        ("header-only.csv", b"key,text\n", "no rows"),
        ("blank.csv", b"\n", "empty"),
        ("broken.jsonl", b'{"key": "a", "text": "x"}\n{"key": \n', "invalid JSON"),
        ("data.bin", b"whatever", "unknown format"),
        ("traversal.csv", b"key,image\nk1,../../../etc/passwd\n", ""),
    ],
)
def test_bad_files_are_refused(as_member: Any, project: Any, name: str, content: bytes, reason: str) -> None:
    response = as_member.post(url(project), {"file": upload(name, content)}, format="multipart")
    assert response.status_code == 400, response.content
    error = response.json()
    assert set(error) == {"file", "line", "field", "reason"}
    assert error["file"] == name
    assert reason in error["reason"]
    assert not Item.objects.filter(project=project).exists()


def test_zip_of_images_with_labels_from_folders_and_tiles(as_owner: Any, owner: Any, media_root: Path) -> None:
    project = ProjectFactory(owner=owner, task_type="image_classification", labels=["cat", "dog"])
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("cat/a.png", png((200, 10, 10)))
        zf.writestr("dog/b.png", png((10, 200, 10)))
    body = {"file": upload("pets.zip", buf.getvalue()), "labels_from_folders": "true", "tile": "2x1"}
    response = as_owner.post(url(project), body, format="multipart")
    assert response.status_code == 200, response.json()
    assert response.json()["rows"] == 4
    assert sorted(Item.objects.filter(project=project).values_list("label", flat=True)) == ["cat", "cat", "dog", "dog"]


@pytest.mark.parametrize("table", ["data.csv", "data.jsonl"])
def test_a_zip_holding_a_table_and_its_images_imports_the_tables_labels(
    as_owner: Any, owner: Any, media_root: Path, table: str
) -> None:
    """Issue 17 item 8: cls.zip with data.csv and images/ imported as plain images lost every label."""
    project = ProjectFactory(owner=owner, task_type="image_classification", labels=["cat", "dog"])
    rows = [(f"img{i}", f"images/{i}.png", "cat" if i % 2 else "dog") for i in range(6)]
    if table.endswith(".csv"):
        text = "key,image,label\n" + "".join(f"{k},{p},{lab}\n" for k, p, lab in rows)
    else:
        text = "".join(f'{{"key": "{k}", "image": "{p}", "label": "{lab}"}}\n' for k, p, lab in rows)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"cls/{table}", text)
        for i in range(6):
            zf.writestr(f"cls/images/{i}.png", png((i * 40, 10, 10)))
    response = as_owner.post(url(project), {"file": upload("cls.zip", buf.getvalue())}, format="multipart")
    assert response.status_code == 200, response.json()
    assert response.json()["labeled"] == 6 and response.json()["files_stored"] == 6
    items = {i.key: i for i in Item.objects.filter(project=project)}
    assert {k: items[k].label for k, _, _ in rows} == {k: lab for k, _, lab in rows}
    assert all(item.media for item in items.values())
    # Asked for explicitly, the same zip imports as its table; asked for another table format, it is refused.
    fmt = "csv" if table.endswith(".csv") else "jsonl"
    again = as_owner.post(url(project), {"file": upload("cls.zip", buf.getvalue()), "format": fmt}, format="multipart")
    assert again.status_code == 200 and again.json()["unchanged"] == 6
    other = "jsonl" if fmt == "csv" else "csv"
    wrong = as_owner.post(
        url(project), {"file": upload("cls.zip", buf.getvalue()), "format": other}, format="multipart"
    )
    assert wrong.status_code == 400 and f"the zip's table is cls/{table}" in str(wrong.json())


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"file": None}, "file"),
        ({"file": "not a file"}, "file"),
        ({"file": upload("empty.csv", b"")}, "file"),
        ({"format": "xlsx"}, "format"),
        ({"tile": "lots"}, "tile"),
        ({"tile": "100x1"}, "tile"),
        ({"labels_from_folders": "perhaps"}, "labels_from_folders"),
    ],
)
def test_bad_form_fields_name_the_field(as_member: Any, project: Any, body: dict[str, Any], field: str) -> None:
    body = {k: v for k, v in {"file": upload("reviews.csv", CSV.encode()), **body}.items() if v is not None}
    response = as_member.post(url(project), body, format="multipart")
    assert response.status_code == 400
    assert field in response.json()
    assert not Item.objects.filter(project=project).exists()


def test_json_body_is_415(as_member: Any, project: Any) -> None:
    assert as_member.post(url(project), {"file": "x"}, format="json").status_code == 415


def test_permissions(anon: Any, as_outsider: Any, project: Any) -> None:
    assert anon.post(url(project), {"file": upload("a.csv", CSV.encode())}, format="multipart").status_code == 401
    response = as_outsider.post(url(project), {"file": upload("a.csv", CSV.encode())}, format="multipart")
    assert response.status_code == 404
    assert not Item.objects.filter(project=project).exists()
