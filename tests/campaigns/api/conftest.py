"""API fixtures: token-authenticated clients for an owner, a member and an outsider, and a secret-scanning client.

Every response any API test receives goes through `ScanningClient`, which fails the test if the project's Label
Studio key or webhook secret appears in it: a check on every endpoint and status, not only on the ones we thought of.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from campaigns.models import Membership
from tests.factories import ProjectFactory, UserFactory

LS_KEY = "ls-key-0f6a1c9e7b2d4e3f9a8b"
HOOK_SECRET = "hook-secret-4d2b8e1f0a7c6b5d"
SECRETS = (LS_KEY, HOOK_SECRET)


# The one deliberate disclosure: the ML-backend endpoint shows its owner the basic-auth password Label Studio needs
# (the webhook secret), so nobody has to read it from the database. Its own tests check that only owners get it.
DISCLOSED = {"/ml-backend/": HOOK_SECRET}


class ScanningClient(APIClient):
    def request(self, **kwargs: Any) -> Any:
        response = super().request(**kwargs)
        body = response.content.decode("utf-8", errors="replace") if hasattr(response, "content") else ""
        path = str(kwargs.get("PATH_INFO", ""))
        allowed = {
            secret for suffix, secret in DISCLOSED.items() if path.endswith(suffix) and response.status_code < 300
        }
        for secret in SECRETS:
            if secret not in allowed:
                assert secret not in body, f"a secret leaked in {path}: {body[:300]}"
        return response


@pytest.fixture(autouse=True)
def _clear_throttles() -> None:
    cache.clear()


@pytest.fixture
def anon() -> ScanningClient:
    return ScanningClient()


@pytest.fixture
def client_for(db: None) -> Callable[[Any], ScanningClient]:
    def make(user: Any) -> ScanningClient:
        client = ScanningClient()
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return client

    return make


def make_user(username: str) -> Any:
    user = UserFactory(username=username)
    # UserFactory skips the save after set_password, so the hash would live only in memory: keep it, so that
    # password login and session auth (which checks the hash) work.
    user.save()
    return user


@pytest.fixture
def owner(db: None) -> Any:
    return make_user("olivia")


@pytest.fixture
def project(owner: Any) -> Any:
    return ProjectFactory(owner=owner, name="reviews", ls_api_key=LS_KEY, ls_webhook_secret=HOOK_SECRET)


@pytest.fixture
def member(project: Any) -> Any:
    user = make_user("mario")
    Membership.objects.create(project=project, user=user, role=Membership.Role.MEMBER)
    return user


@pytest.fixture
def outsider(db: None) -> Any:
    return make_user("oscar")


@pytest.fixture
def as_owner(client_for: Callable[[Any], ScanningClient], owner: Any, project: Any) -> ScanningClient:
    return client_for(owner)


@pytest.fixture
def as_member(client_for: Callable[[Any], ScanningClient], member: Any) -> ScanningClient:
    return client_for(member)


@pytest.fixture
def as_outsider(client_for: Callable[[Any], ScanningClient], outsider: Any) -> ScanningClient:
    return client_for(outsider)


@pytest.fixture
def post_json(django_capture_on_commit_callbacks: Any) -> Callable[..., Any]:
    """POST a raw JSON body (NaN and Infinity literals reach the server as Python's json.dumps writes them) and run
    the request's on-commit callbacks, as a real commit would: that is when the services queue their tasks."""

    def post(client: ScanningClient, path: str, body: Any = None) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            data = "" if body is None else json.dumps(body)
            return client.post(path, data=data, content_type="application/json")

    return post
