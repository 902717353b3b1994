"""Issue 18, finding 7 (tokens), replayed as Bob against Alice's account: the requests of the
probe, asserting the fix. The other findings: test_findings.py and test_findings_input.py."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import UserFactory
from tests.security.conftest import PASSWORD

pytestmark = pytest.mark.django_db

TOKEN_URL = "/api/auth/token/"
NEW_PASSWORD = "another horse battery staple 43"


def token_of(username: str, password: str = PASSWORD) -> str:
    response = APIClient().post(TOKEN_URL, {"username": username, "password": password}, format="json")
    assert response.status_code == 200, response.content
    return str(response.json()["token"])


def api_status(key: str) -> tuple[int, str]:
    response = APIClient().get("/api/projects/", HTTP_AUTHORIZATION=f"Token {key}")
    return response.status_code, response.json().get("detail", "") if response.status_code != 200 else ""


# ---------------------------------------------------------------------------------------------------- finding 7


def test_f7_a_token_expires_and_asking_again_issues_a_new_one(alice: Any, settings: Any) -> None:
    settings.ALWEB_TOKEN_TTL = 3600
    response = APIClient().post(TOKEN_URL, {"username": "alice", "password": PASSWORD}, format="json")
    key = response.json()["token"]
    expires = timezone.datetime.fromisoformat(response.json()["expires"])
    assert abs((expires - timezone.now()) - timedelta(hours=1)) < timedelta(minutes=1)
    assert api_status(key) == (200, "")
    Token.objects.filter(key=key).update(created=timezone.now() - timedelta(seconds=3601))
    status, detail = api_status(key)
    assert status == 401 and "expired" in detail
    fresh = token_of("alice")
    assert fresh != key and api_status(fresh) == (200, "")
    assert api_status(key)[0] == 401  # the expired key was replaced, never revived


def test_f7_the_holder_revokes_a_token_and_only_their_own(alice: Any, bob: Any) -> None:
    alices, bobs = token_of("alice"), token_of("bob")
    response = APIClient().delete(TOKEN_URL, HTTP_AUTHORIZATION=f"Token {bobs}")
    assert response.status_code == 204
    assert api_status(bobs) == (401, "Invalid token.")
    assert api_status(alices) == (200, "")  # Bob's DELETE touched his token only
    assert APIClient().delete(TOKEN_URL).status_code == 401
    assert token_of("bob") != bobs  # a new login, a new key


def test_f7_a_password_change_ends_every_token_through_the_dashboard_the_admin_or_a_script(
    alice: Any, bob: Any
) -> None:
    # The dashboard: Alice changes her own password.
    key = token_of("alice")
    browser = Client()
    browser.force_login(alice)
    form = {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    response = browser.post("/accounts/password_change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert api_status(key) == (401, "Invalid token.")
    assert api_status(token_of("alice", NEW_PASSWORD)) == (200, "")
    # The admin: a superuser sets Bob's password.
    key = token_of("bob")
    admin = Client()
    admin.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    form = {"usable_password": "true", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
    response = admin.post(f"/admin/auth/user/{bob.pk}/password/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert api_status(key) == (401, "Invalid token.")
    # Any other code path (manage.py changepassword, a script): set_password and save.
    key = token_of("bob", NEW_PASSWORD)
    bob.refresh_from_db()
    bob.set_password(PASSWORD)
    bob.save()
    assert api_status(key) == (401, "Invalid token.")
    # Saving the user for another reason keeps the token.
    key = token_of("bob")
    bob.refresh_from_db()
    bob.email = "bob@example.org"
    bob.save()
    assert api_status(key) == (200, "")
