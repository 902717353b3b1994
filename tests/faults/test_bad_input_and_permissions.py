"""Bad input through the API loses nothing and names what is wrong; non-members see nothing; secrets never leak.

Issue 8, items 5, 6 and 9, asserted on the database afterwards (nothing imported, nothing created)."""

from __future__ import annotations

import io
import json
import logging
import zipfile
from typing import Any

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from campaigns.models import Cycle, Item
from tests.factories import ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db
SECRET_KEY_VALUE = "ls-secret-key-0123456789abcdef"


def client(user: Any) -> APIClient:
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return c


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


BAD_FILES = [
    ("items.csv", b"key,text,label\na,fine,positive\nb,bad,unknown\n", "items.csv", 3, "unknown label"),
    ("items.csv", b"key,text\na,ok\nb,caf\xe9\n", "items.csv", 3, "not valid UTF-8"),
    ("items.csv", b'key,text\na,"never closed\n', "items.csv", 2, "malformed CSV"),
    ("items.jsonl", b'{"key": "a", "text": "ok"}\n{"key": "b", "text": 7}\n', "items.jsonl", 2, "must be a string"),
    ("items.jsonl", b'{"key": "a", "text": "ok"}\n{broken\n', "items.jsonl", 2, "invalid JSON"),
    ("items.csv", b"key,text\na," + b"x" * 200_001 + b"\n", "items.csv", 2, "field"),
]


@pytest.mark.parametrize(("name", "content", "file", "line", "reason"), BAD_FILES)
def test_malformed_uploads_are_400_naming_file_line_reason_and_import_nothing(
    name: str, content: bytes, file: str, line: int, reason: str
) -> None:
    project = ProjectFactory()
    upload = io.BytesIO(content)
    upload.name = name
    response = client(project.owner).post(
        f"/api/projects/{project.pk}/items/import/", {"file": upload}, format="multipart"
    )
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["file"] == file and body["line"] == line and reason in body["reason"]
    assert Item.objects.filter(project=project).count() == 0


@pytest.mark.parametrize(
    ("members", "reason"),
    [
        ({"a.png": b"x", "../../etc/evil.png": b"x"}, "path traversal"),
        ({"a.png": b"x", "bomb.txt": b"\0" * (40 << 20)}, "absurd expansion"),
    ],
)
def test_hostile_zips_are_refused_and_import_nothing(members: dict[str, bytes], reason: str) -> None:
    project = ProjectFactory(task_type="image_classification", labels=["a", "b"])
    upload = io.BytesIO(zip_bytes(members))
    upload.name = "images.zip"
    response = client(project.owner).post(
        f"/api/projects/{project.pk}/items/import/", {"file": upload}, format="multipart"
    )
    assert response.status_code == 400 and reason in response.json()["reason"]
    assert Item.objects.filter(project=project).count() == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"budget": 0}', "budget"),
        ('{"budget": -5}', "budget"),
        ('{"budget": "ten"}', "budget"),
        ('{"budget": true}', "budget"),
        ('{"budget": 10.5}', "budget"),
        ('{"threshold": -1}', "threshold"),
        ('{"threshold": NaN}', "threshold"),
        ('{"threshold": Infinity}', "threshold"),
        ('{"threshold": "high"}', "threshold"),
        ('{"mc_iterations": 0}', "mc_iterations"),
        ('{"heuristic": "psychic"}', "heuristic"),
    ],
)
def test_out_of_range_or_mistyped_cycle_parameters_are_400_naming_the_field(body: str, field: str) -> None:
    project = ProjectFactory()
    response = client(project.owner).post(f"/api/projects/{project.pk}/cycles/", body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not Cycle.objects.filter(project=project).exists()


def test_non_members_get_404_for_reads_and_writes_and_change_nothing() -> None:
    project = ProjectFactory()
    outsider = client(UserFactory())
    base = f"/api/projects/{project.pk}"
    for path in ("/", "/items/", "/cycles/", "/stats/", "/learning-curve/", "/annotations/", "/model-versions/"):
        assert outsider.get(base + path).status_code == 404, path
    assert outsider.patch(base + "/", {"name": "taken over"}, format="json").status_code == 404
    assert outsider.delete(base + "/").status_code == 404
    assert outsider.post(base + "/cycles/", {"budget": 5}, format="json").status_code == 404
    project.refresh_from_db()
    assert project.name != "taken over" and not Cycle.objects.filter(project=project).exists()


def test_the_label_studio_key_appears_in_no_response_and_no_log_line(caplog: Any) -> None:
    project = ProjectFactory()
    owner = client(project.owner)
    caplog.set_level(logging.DEBUG)
    responses = [
        owner.patch(f"/api/projects/{project.pk}/", {"ls_api_key": SECRET_KEY_VALUE}, format="json"),
        owner.get(f"/api/projects/{project.pk}/"),
        owner.get("/api/projects/"),
        owner.post(
            "/api/projects/",
            {"name": "p2", "task_type": "text_classification", "labels": ["a"], "ls_api_key": SECRET_KEY_VALUE},
            format="json",
        ),
        owner.get("/api/schema/"),
    ]
    assert [r.status_code for r in responses][:4] == [200, 200, 200, 201]
    for response in responses:
        assert SECRET_KEY_VALUE not in response.content.decode()
    project.refresh_from_db()
    assert project.ls_api_key == SECRET_KEY_VALUE  # stored server-side, write-only
    assert json.loads(responses[1].content)["ls_api_key_set"] is True
    assert SECRET_KEY_VALUE not in caplog.text
