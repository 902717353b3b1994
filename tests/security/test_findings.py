"""Issue 18's findings, each replayed as Bob (an ordinary account) against Alice's project, asserting the fix.

No real Label Studio here: where a finding goes through Label Studio, the client calls are faked and recorded, so
what alweb *would* send (and to where) is what is asserted. tests/integrations/labelstudio/test_connect.py checks
the same rules against a real server.
"""

from __future__ import annotations

import importlib
import re
import stat
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from campaigns.models import Project
from campaigns.services.projects import project_create
from integrations.labelstudio import client as lsc
from integrations.labelstudio import connect
from tests.campaigns.web.test_projects import VALID
from tests.factories import ItemFactory
from tests.security.conftest import api_client, send

pytestmark = pytest.mark.django_db

SERVER_LS = "http://127.0.0.1:8080"
URL = "/api/projects/"
NEW_PROJECT = {"name": "pets", "task_type": "image_classification", "labels": ["cat", "dog"]}


@pytest.fixture(autouse=True)
def server_ls(settings: Any) -> Any:
    """The production defaults: one Label Studio, its key in the settings, nothing else allowed."""
    settings.LABEL_STUDIO_URL, settings.LABEL_STUDIO_API_KEY = SERVER_LS, "server-key"
    settings.ALWEB_LS_ALLOWED_URLS = [SERVER_LS]
    return settings


@pytest.fixture
def alices_project(alice: Any) -> Project:
    """Alice's project, linked to the LS project alweb created for it (15), with two tasks alweb created."""
    project = project_create(owner=alice, **NEW_PROJECT)
    Project.objects.filter(pk=project.pk).update(ls_url=SERVER_LS, ls_project_id=15, ls_linked=True)
    ItemFactory(project=project, ls_task_id=101)
    ItemFactory(project=project, ls_task_id=102)
    ItemFactory(project=project)  # never sent
    return Project.objects.get(pk=project.pk)


@pytest.fixture
def fake_ls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Record the Label Studio calls alweb makes instead of making them."""
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(lsc, "make_client", lambda url, key, **kw: ("client", url, key))
    monkeypatch.setattr(
        lsc,
        "delete_tasks",
        lambda client, *, project_id, task_ids: calls.append(("delete_tasks", project_id, task_ids)),
    )
    monkeypatch.setattr(lsc, "delete_project", lambda client, project_id: calls.append(("delete_project", project_id)))
    return calls


# ---------------------------------------------------------------------------------------------------- finding 1


def test_f1_bob_cannot_link_alices_label_studio_project_after_she_deletes_hers(
    alice: Any, bob: Any, alices_project: Project, fake_ls: list[tuple[Any, ...]]
) -> None:
    assert send(api_client(alice), "delete", f"{URL}{alices_project.pk}/").status_code == 204
    # Her tasks went with her project: alweb deleted the tasks it had created in LS project 15, and only those.
    assert fake_ls == [("delete_tasks", 15, [101, 102])]
    response = send(api_client(bob), "post", URL, {**NEW_PROJECT, "name": "takeover", "ls_project_id": 15})
    assert response.status_code == 400
    assert "give your own Label Studio API key" in response.json()["ls_project_id"][0]
    assert not Project.objects.filter(name="takeover").exists()


def test_f1_bob_cannot_link_it_while_alice_holds_it_whatever_the_url_spelling(
    bob: Any, alices_project: Project
) -> None:
    bobs = api_client(bob)
    created = send(bobs, "post", URL, {**NEW_PROJECT, "name": "mine"})
    assert created.status_code == 201
    mine = f"{URL}{created.json()['id']}/"
    for url in ("http://127.0.0.1:8080/", "HTTP://127.0.0.1:8080", "http://127.0.0.1:8080//"):
        response = send(bobs, "patch", mine, {"ls_url": url, "ls_project_id": 15})
        assert response.status_code == 400 and "ls_project_id" in response.json(), url
        # Even with a key of his own, the one-link-per-LS-project rule sees one spelling of the URL.
        response = send(bobs, "patch", mine, {"ls_url": url, "ls_project_id": 15, "ls_api_key": "bobs-key"})
        assert response.status_code == 400
        assert "another alweb project" in response.json()["ls_project_id"][0], url
    assert Project.objects.get(pk=created.json()["id"]).ls_project_id is None


def test_f1_the_link_check_refuses_with_the_server_key_an_ls_project_alweb_did_not_create_for_it(
    bob: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row linked before the fix (or through the database): the next connect checks the LS project carries this
    alweb project's marker before writing anything, and names no labels of the project it refuses."""
    project = project_create(owner=bob, **NEW_PROJECT)
    Project.objects.filter(pk=project.pk).update(ls_project_id=15)
    info = lsc.ProjectInfo(id=15, title="alice's", label_config="<View/>", model_version="", sampling=None)
    monkeypatch.setattr(lsc, "get_project", lambda client, pid: info)
    with pytest.raises(ValidationError) as exc:
        connect.labelstudio_connect_project(project=Project.objects.get(pk=project.pk))
    assert exc.value.message_dict == {"ls_project_id": [connect.LINK_NEEDS_OWN_KEY]}
    assert Project.objects.get(pk=project.pk).ls_linked is False


def test_f1_the_owner_chooses_what_happens_in_label_studio(
    alice: Any, alices_project: Project, fake_ls: list[tuple[Any, ...]], monkeypatch: pytest.MonkeyPatch
) -> None:
    alices = api_client(alice)
    path = f"{URL}{alices_project.pk}/"
    response = send(alices, "delete", f"{path}?label_studio=everything")
    assert response.status_code == 400 and "label_studio" in response.json()
    # Not created by alweb for this project (no marker): the whole LS project is not alweb's to delete.
    other = lsc.ProjectInfo(id=15, title="x", label_config="", model_version="", sampling=None, description="hers")
    monkeypatch.setattr(lsc, "get_project", lambda client, pid: other)
    response = send(alices, "delete", f"{path}?label_studio=project")
    assert response.status_code == 400 and "only its tasks" in response.json()["label_studio"][0]
    made = lsc.ProjectInfo(
        id=15, title="x", label_config="", model_version="", sampling=None, description=connect._marker(alices_project)
    )
    monkeypatch.setattr(lsc, "get_project", lambda client, pid: made)
    assert send(alices, "delete", f"{path}?label_studio=project").status_code == 204
    assert fake_ls == [("delete_project", 15)]


def test_f1_label_studio_down_deletes_nothing_unless_the_owner_keeps_it(
    alice: Any, alices_project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*args: Any, **kwargs: Any) -> None:
        raise httpx.ConnectError("refused")

    monkeypatch.setattr(lsc, "delete_tasks", down)
    path = f"{URL}{alices_project.pk}/"
    response = send(api_client(alice), "delete", path)
    assert response.status_code == 400
    assert "nothing was deleted" in response.json()["label_studio"][0]
    assert Project.objects.filter(pk=alices_project.pk).exists()
    assert send(api_client(alice), "delete", f"{path}?label_studio=keep").status_code == 204
    assert not Project.objects.filter(pk=alices_project.pk).exists()


# ---------------------------------------------------------------------------------------------------- finding 2


def test_f2_bob_cannot_point_alweb_at_an_arbitrary_url(bob: Any) -> None:
    bobs = api_client(bob)
    for url in ("http://127.0.0.1:8000/sec-ssrf-probe", "http://169.254.169.254/latest", "http://127.0.0.1:8081"):
        response = send(bobs, "post", URL, {**NEW_PROJECT, "name": url[-8:], "ls_url": url, "ls_api_key": "k"})
        assert response.status_code == 400
        assert "ALWEB_LS_ALLOWED_URLS" in response.json()["ls_url"][0]
    response = send(bobs, "post", URL, {**NEW_PROJECT, "ls_url": "ftp://127.0.0.1:8080"})
    assert response.status_code == 400 and "ls_url" in response.json()


def test_f2_a_stored_url_outside_the_allowlist_is_never_called(bob: Any) -> None:
    project = project_create(owner=bob, **NEW_PROJECT)
    Project.objects.filter(pk=project.pk).update(ls_url="http://127.0.0.1:8000/sec-ssrf-probe", ls_api_key="k")
    with pytest.raises(ValidationError) as exc:
        connect.labelstudio_client(Project.objects.get(pk=project.pk))
    assert "ls_url" in exc.value.message_dict


def test_f2_a_remote_body_never_reaches_an_error_a_member_reads() -> None:
    body = "<html>" + "alice's labels: cat, dog; " * 80 + "</html>"
    with pytest.raises(connect.LabelStudioRequestError) as exc, connect.ls_errors():
        raise lsc.ApiError(status_code=400, headers={"set-cookie": "sessionid=abc"}, body=body)
    assert str(exc.value) == "Label Studio answered 400: request refused as invalid"
    with pytest.raises(connect.LabelStudioRequestError) as exc, connect.ls_errors():
        raise lsc.ApiError(status_code=418, headers={}, body=body)
    assert str(exc.value) == "Label Studio answered 418: request refused"


# ---------------------------------------------------------------------------------------------------- finding 3


def test_f3_the_stored_key_never_follows_a_changed_url(alice: Any, settings: Any) -> None:
    settings.ALWEB_LS_ALLOWED_URLS = [SERVER_LS, "http://localhost:8080"]
    alices = api_client(alice)
    created = send(alices, "post", URL, {**NEW_PROJECT, "ls_api_key": "alices-key"})
    path = f"{URL}{created.json()['id']}/"
    response = send(alices, "patch", path, {"ls_url": "http://localhost:8080"})
    assert response.status_code == 400
    assert "give its API key" in response.json()["ls_api_key"][0]
    assert Project.objects.get(pk=created.json()["id"]).ls_api_key == "alices-key"
    # The same server spelled another way is not a change; the key stays.
    response = send(alices, "patch", path, {"ls_url": "HTTP://127.0.0.1:8080/"})
    assert response.status_code == 200 and response.json()["ls_api_key_set"] is True
    assert response.json()["ls_url"] == SERVER_LS
    # A new host with its own key: the new key, and only it, is stored.
    response = send(alices, "patch", path, {"ls_url": "http://localhost:8080", "ls_api_key": "localhost-key"})
    assert response.status_code == 200
    assert Project.objects.get(pk=created.json()["id"]).ls_api_key == "localhost-key"
    # Back to the server's Label Studio without a key: the other host's key is cleared, the server's is used.
    response = send(alices, "patch", path, {"ls_url": SERVER_LS})
    assert response.status_code == 200 and response.json()["ls_api_key_set"] is False


# ------------------------------------------------------------------------------------- finding 9 (local mode)


def _local_settings(monkeypatch: pytest.MonkeyPatch, var_dir: Path, **env: str) -> Any:
    monkeypatch.setenv("ALWEB_VAR_DIR", str(var_dir))
    monkeypatch.delenv("DJANGO_SECRET_KEY", raising=False)
    monkeypatch.delenv("DJANGO_DEBUG", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("alweb.settings.local", "alweb.settings.base"):
        sys.modules.pop(name, None)
    try:
        return importlib.import_module("alweb.settings.local")
    finally:
        for name in ("alweb.settings.local", "alweb.settings.base"):
            sys.modules.pop(name, None)


def test_local_mode_serves_no_debug_pages_and_signs_with_a_key_of_its_own(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    first = _local_settings(monkeypatch, tmp_path / "a")
    assert first.DEBUG is False
    key_file = tmp_path / "a" / "secret_key"
    assert key_file.read_text() == first.SECRET_KEY and len(first.SECRET_KEY) >= 50
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert _local_settings(monkeypatch, tmp_path / "a").SECRET_KEY == first.SECRET_KEY  # kept across restarts
    other = _local_settings(monkeypatch, tmp_path / "b")
    assert other.SECRET_KEY != first.SECRET_KEY  # per install, not a default in the source
    assert _local_settings(monkeypatch, tmp_path / "a", DJANGO_DEBUG="true").DEBUG is True  # the opt-in


# ---------------------------------------------------------------------------------------------------- finding 5


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


def test_f5_deep_json_in_an_api_field_is_a_fast_400_naming_it(bob: Any) -> None:
    bobs = api_client(bob)
    created = send(bobs, "post", URL, {**NEW_PROJECT, "task_type": "text_classification"})
    path = f"{URL}{created.json()['id']}/"
    for levels in (40, 500, 5000):
        started = time.monotonic()
        body = '{"name": "x", "model_config": {"a": ' + deep(levels) + "}}"
        response = bobs.patch(path, data=body, content_type="application/json")
        assert response.status_code == 400, levels
        assert "deeper than" in response.json()["model_config"][0]
        assert time.monotonic() - started < 2
    body = '{"budget": 5, "strategy_params": {"quotas": ' + deep(990) + "}}"
    response = bobs.post(f"{path}cycles/", data=body, content_type="application/json")
    assert response.status_code == 400 and "deeper than" in response.json()["strategy_params"][0]
    # A deep body with no field to blame, and an oversized one: still a 400, never a 500.
    assert bobs.patch(path, data=deep(3000), content_type="application/json").status_code == 400
    huge = '{"name": "' + "x" * (2 * 1024 * 1024) + '"}'
    assert bobs.patch(path, data=huge, content_type="application/json").status_code == 400


def test_f5_deep_metadata_in_a_jsonl_import_is_a_400_naming_line_and_field(bob: Any) -> None:
    bobs = api_client(bob)
    created = send(bobs, "post", URL, {**NEW_PROJECT, "task_type": "text_classification"})
    line = '{"key": "k1", "text": "hello", "metadata": {"x": ' + deep(480) + "}}\n"
    upload = SimpleUploadedFile("items.jsonl", line.encode(), content_type="application/jsonl")
    response = bobs.post(f"{URL}{created.json()['id']}/items/import/", {"file": upload}, format="multipart")
    assert response.status_code == 400
    assert response.json()["line"] == 1 and response.json()["field"] == "metadata"
    assert "deeper than" in response.json()["reason"]


def test_f5_deep_json_in_a_dashboard_form_is_an_error_on_its_field(bob: Any) -> None:
    from django.test import Client

    browser = Client()
    browser.force_login(bob)
    form = {**VALID, "name": "deep", "ls_url": "", "ls_api_key": "", "model_config": '{"a": ' + deep(995) + "}"}
    response = browser.post(reverse("dashboard:project-create"), form)
    assert response.status_code == 422
    assert 'id="id_model_config_error"' in response.content.decode()
    assert "deeper than" in response.content.decode()


# ------------------------------------------------------------------------------------------ finding 8 (headers)

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", re.I)


def test_f8_pages_carry_a_csp_they_work_under(bob: Any, alice: Any, alices_project: Project) -> None:
    from django.test import Client

    browser = Client()
    browser.force_login(alice)
    for path in ("/", f"/projects/{alices_project.pk}/", "/accounts/login/", "/api/schema/swagger/"):
        response = browser.get(path)
        assert response.status_code == 200, path
        policy = response["Content-Security-Policy"]
        assert "script-src 'self';" in policy and "unsafe-inline" not in policy and "unsafe-eval" not in policy
        html = response.content.decode()
        assert not INLINE_SCRIPT.search(html), (path, INLINE_SCRIPT.search(html))
        assert " style=" not in html, path


def test_f8_production_is_https_only_and_trusts_no_forwarded_proto_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DJANGO_SECRET_KEY", "s" * 50)
    for name in ("DJANGO_SSL_REDIRECT", "DJANGO_HSTS_SECONDS", "DJANGO_SECURE_PROXY_SSL_HEADER"):
        monkeypatch.delenv(name, raising=False)
    sys.modules.pop("alweb.settings.production", None)
    try:
        prod = importlib.import_module("alweb.settings.production")
        assert prod.SECURE_SSL_REDIRECT is True and prod.SECURE_HSTS_SECONDS >= 31_536_000
        assert not hasattr(prod, "SECURE_PROXY_SSL_HEADER")
        monkeypatch.setenv("DJANGO_SECURE_PROXY_SSL_HEADER", "true")
        sys.modules.pop("alweb.settings.production", None)
        prod = importlib.import_module("alweb.settings.production")
        assert prod.SECURE_PROXY_SSL_HEADER == ("HTTP_X_FORWARDED_PROTO", "https")
    finally:
        sys.modules.pop("alweb.settings.production", None)


def test_f8_common_passwords_are_refused() -> None:
    from django.contrib.auth.password_validation import validate_password

    with pytest.raises(ValidationError, match="too common"):
        validate_password("password123")
