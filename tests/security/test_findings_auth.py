"""Issue 18, findings 4 (brute force) and 7 (tokens), replayed as Bob against Alice's account: the requests of the
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


# ---------------------------------------------------------------------------------------------------- finding 4


def guess(username: str, password: str, **headers: str) -> Any:
    return APIClient().post(TOKEN_URL, {"username": username, "password": password}, format="json", **headers)


def test_f4_the_token_endpoint_holds_whatever_x_forwarded_for_or_authorization_say(alice: Any, bob: Any) -> None:
    bobs = Token.objects.create(user=bob).key
    statuses = [
        guess("alice", f"guess-{i}", HTTP_X_FORWARDED_FOR=f"10.9.{i}.1", HTTP_AUTHORIZATION=f"Token {bobs}").status_code
        for i in range(15)
    ]
    assert statuses == [400] * 9 + [429] * 6  # the 10th failure locks the username out
    response = guess("alice", PASSWORD, HTTP_X_FORWARDED_FOR="10.9.99.1", HTTP_AUTHORIZATION=f"Token {bobs}")
    assert response.status_code == 429 and "token" not in response.json()
    assert "Too many failed logins" in response.json()["detail"] and "alice" not in response.json()["detail"]
    assert response["Retry-After"]


def test_f4_a_lockout_says_the_same_for_a_real_and_a_made_up_username(alice: Any) -> None:
    answers = {}
    for username, address in (("alice", "10.0.0.1"), ("nobody-here", "10.0.0.2")):
        failures = [guess(username, "wrong", REMOTE_ADDR=address) for _ in range(10)]
        assert {r.json()["non_field_errors"][0] for r in failures[:9]} == {
            "Unable to log in with provided credentials."
        }
        answers[username] = (failures[-1].status_code, failures[-1].json())
    assert answers["alice"] == answers["nobody-here"]
    assert answers["alice"][0] == 429


def test_f4_one_address_trying_many_usernames_is_held_and_others_are_not(alice: Any, bob: Any) -> None:
    for i in range(10):
        guess(f"user-{i}", "wrong", REMOTE_ADDR="10.0.0.7")
    assert guess("bob", PASSWORD, REMOTE_ADDR="10.0.0.7").status_code == 429  # the address is locked
    assert guess("bob", PASSWORD, REMOTE_ADDR="10.0.0.8").status_code == 200  # bob himself is not


def test_f4_the_token_rate_limit_ignores_forwarded_for_and_tokens(bob: Any) -> None:
    bobs = Token.objects.create(user=bob).key
    codes = [
        guess("bob", PASSWORD, HTTP_X_FORWARDED_FOR=f"10.8.{i}.1", HTTP_AUTHORIZATION=f"Token {bobs}").status_code
        for i in range(31)
    ]
    assert codes == [200] * 30 + [429]


def test_f4_behind_trusted_proxies_the_address_is_the_one_the_proxy_saw(alice: Any, settings: Any) -> None:
    from django.test import RequestFactory

    from alweb.auth import client_ip

    def ip(remote: str, forwarded: str | None) -> str:
        extra = {} if forwarded is None else {"HTTP_X_FORWARDED_FOR": forwarded}
        return client_ip(RequestFactory().get("/", REMOTE_ADDR=remote, **extra))

    assert ip("192.0.2.1", "6.6.6.6") == "192.0.2.1"  # default: no proxy trusted, the header is ignored
    settings.ALWEB_TRUSTED_PROXIES = 1
    assert ip("10.0.0.2", "6.6.6.6, 203.0.113.5") == "203.0.113.5"  # what the client wrote stays on the left
    settings.ALWEB_TRUSTED_PROXIES = 2
    assert ip("10.0.0.3", "6.6.6.6, 203.0.113.5, 10.0.0.2") == "203.0.113.5"
    assert ip("10.0.0.3", "203.0.113.5") == "10.0.0.3"  # fewer entries than proxies: it came around them
    settings.ALWEB_TRUSTED_PROXIES = 1
    codes = [
        guess(f"user-{i}", "wrong", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=f"6.6.{i}.6, 203.0.113.5").status_code
        for i in range(11)
    ]
    assert codes[-1] == 429  # the client's own entries changed every time; the address the proxy saw did not
    assert guess("alice", PASSWORD, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.6").status_code == 200


@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/"])
def test_f4_both_login_forms_lock_out_and_the_right_password_then_fails_too(alice: Any, path: str) -> None:
    alice.is_staff = True
    alice.save()
    browser = Client()
    codes = []
    for i in range(25):
        response = browser.post(path, {"username": "alice", "password": f"guess-{i}"}, REMOTE_ADDR=f"10.7.{i}.1")
        codes.append(response.status_code)
    assert codes == [200] * 9 + [429] * 16
    response = browser.post(path, {"username": "alice", "password": PASSWORD}, REMOTE_ADDR="10.7.99.1")
    assert response.status_code == 429 and "_auth_user_id" not in browser.session
    page = response.content.decode()
    assert "Too many failed logins for this username or from this address" in page
    # A made-up username is answered in the same words.
    for i in range(10):
        response = browser.post(path, {"username": "nobody-here", "password": "x"}, REMOTE_ADDR=f"10.6.{i}.1")
    assert response.status_code == 429 and "Too many failed logins" in response.content.decode()
    assert "nobody-here" not in response.content.decode() and "alice" not in page


def test_f4_counts_live_in_the_shared_cache_redis_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    import sys

    from django.conf import settings

    assert settings.AXES_HANDLER == "axes.handlers.cache.AxesCacheHandler"
    monkeypatch.setenv("DJANGO_SECRET_KEY", "s" * 50)
    monkeypatch.delenv("ALWEB_CACHE_URL", raising=False)
    sys.modules.pop("alweb.settings.production", None)
    try:
        prod = importlib.import_module("alweb.settings.production")
        assert prod.CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
        monkeypatch.setenv("ALWEB_CACHE_URL", "redis://cache.internal:6379/2")
        sys.modules.pop("alweb.settings.production", None)
        prod = importlib.import_module("alweb.settings.production")
        assert prod.CACHES["default"]["LOCATION"] == "redis://cache.internal:6379/2"
        assert prod.ALWEB_TRUSTED_PROXIES == 0
    finally:
        sys.modules.pop("alweb.settings.production", None)
