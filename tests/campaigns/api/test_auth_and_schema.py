"""The token endpoint, token vs session auth, and the OpenAPI schema (valid, documented, no secrets)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from django.core.management import call_command
from rest_framework.authtoken.models import Token

from tests.campaigns.api.conftest import HOOK_SECRET, LS_KEY, ScanningClient

pytestmark = pytest.mark.django_db


def test_token_for_username_and_password(anon: Any, owner: Any, project: Any) -> None:
    response = anon.post("/api/auth/token/", {"username": "olivia", "password": "pw-for-tests"}, format="json")
    assert response.status_code == 200
    key = response.json()["token"]
    assert key == Token.objects.get(user=owner).key
    client = ScanningClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/projects/").json()["count"] == 1


@pytest.mark.parametrize(
    "body",
    [
        {"username": "olivia", "password": "wrong"},
        {"username": "olivia"},
        {"username": ["olivia"], "password": "pw-for-tests"},
    ],
)
def test_token_refused(anon: Any, owner: Any, body: dict[str, Any]) -> None:
    response = anon.post("/api/auth/token/", body, format="json")
    assert response.status_code == 400
    assert response.json()


def test_bad_token_is_401(anon: Any, project: Any) -> None:
    anon.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    assert anon.get("/api/projects/").status_code == 401


def test_session_auth_works_too(owner: Any, project: Any) -> None:
    client = ScanningClient()
    client.force_login(owner)
    assert client.get(f"/api/projects/{project.pk}/").status_code == 200


def test_schema_is_valid_openapi_and_lists_the_endpoints(anon: Any, tmp_path: Any) -> None:
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    schema = yaml.safe_load(out.read_text())
    paths = set(schema["paths"])
    assert {
        "/api/projects/",
        "/api/projects/{id}/",
        "/api/projects/{project_pk}/members/",
        "/api/projects/{project_pk}/members/{username}/",
        "/api/projects/{project_pk}/items/",
        "/api/projects/{project_pk}/items/{id}/",
        "/api/projects/{project_pk}/items/import/",
        "/api/projects/{project_pk}/annotations/",
        "/api/projects/{project_pk}/model-versions/",
        "/api/projects/{project_pk}/cycles/",
        "/api/projects/{project_pk}/cycles/{id}/",
        *(
            f"/api/projects/{{project_pk}}/cycles/{{id}}/{action}/"
            for action in ("preview", "select", "sync", "pull", "cancel", "retry", "selection", "histogram", "scores")
        ),
        "/api/projects/{project_pk}/stats/",
        "/api/projects/{project_pk}/learning-curve/",
        "/api/auth/token/",
    } <= paths
    project_schema = schema["components"]["schemas"]["Project"]["properties"]
    assert project_schema["ls_api_key"]["writeOnly"] is True
    assert "ls_webhook_secret" not in project_schema
    served = anon.get("/api/schema/")
    assert served.status_code == 200
    assert LS_KEY not in served.content.decode() and HOOK_SECRET not in served.content.decode()
    assert anon.get("/api/schema/swagger/").status_code == 200
