"""The project page's ML backend card (issue 17 item 6): owners connect alweb as Label Studio's ML backend in one
click and see the URL and user; members see neither; the secret itself never goes into a page (the scanning client
checks every response)."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from campaigns.models import Project

pytestmark = pytest.mark.django_db


def test_owners_see_the_backend_url_and_a_connect_button_once_linked(as_owner: Any, project: Any) -> None:
    page = as_owner.get(reverse("dashboard:project-detail", args=[project.pk])).content.decode()
    assert f"/labelstudio/ml/{project.pk}" in page and "Connect once the Label Studio project exists" in page
    Project.objects.filter(pk=project.pk).update(ls_project_id=7)
    page = as_owner.get(reverse("dashboard:project-detail", args=[project.pk])).content.decode()
    assert "Connect as ML backend" in page


def test_members_see_no_card_and_cannot_connect(client_for: Any, member: Any, project: Any) -> None:
    client = client_for(member)
    page = client.get(reverse("dashboard:project-detail", args=[project.pk])).content.decode()
    assert "ml-backend" not in page
    assert client.post(reverse("dashboard:ml-backend-connect", args=[project.pk])).status_code == 403


def test_connect_says_why_it_did_not(as_owner: Any, project: Any, settings: Any) -> None:
    url = reverse("dashboard:ml-backend-connect", args=[project.pk])
    page = as_owner.post(url, follow=True).content.decode()
    assert "Not connected: connect the project to Label Studio first" in page
    # A Label Studio outside the allowlist is never called.
    Project.objects.filter(pk=project.pk).update(ls_project_id=7, ls_url="http://127.0.0.1:9/")
    page = as_owner.post(url, follow=True).content.decode()
    assert "Not connected: this Label Studio server is not in the allowed list" in page
    # Allowed, but nobody answers there: said so, nothing breaks.
    settings.ALWEB_LS_ALLOWED_URLS = ["http://127.0.0.1:9"]
    page = as_owner.post(url, follow=True).content.decode()
    assert "Not connected: Label Studio could not be reached" in page
