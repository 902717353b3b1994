"""/api/projects/{id}/ml-backend/: the owner sees the ML backend's URL and credentials and can connect it (issue 17
item 6: the password was in no API response, admin page or dashboard page)."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.django_db


def test_owner_sees_the_credentials_members_do_not(as_owner: Any, as_member: Any, project: Any, settings: Any) -> None:
    settings.ALWEB_BASE_URL = "http://alweb.example:8000"
    url = f"/api/projects/{project.pk}/ml-backend/"
    answer = as_owner.get(url)
    assert answer.status_code == 200
    assert answer.json() == {
        "url": f"http://alweb.example:8000/labelstudio/ml/{project.pk}",
        "username": "alweb",
        "password": project.ls_webhook_secret,
    }
    assert as_member.get(url).status_code == 403
    assert as_member.post(url).status_code == 403


def test_connecting_a_project_without_label_studio_names_the_field(as_owner: Any, project: Any) -> None:
    response = as_owner.post(f"/api/projects/{project.pk}/ml-backend/")
    assert response.status_code == 400 and "ls_project_id" in response.json()
