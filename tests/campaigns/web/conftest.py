"""Dashboard view fixtures: an owner with a project, a member, an outsider, logged-in test clients.

Every response a dashboard test client receives is checked for the project's Label Studio key and webhook secret:
the key is write-only, so it must never appear in any page, partial or error, whatever the test looked at.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from campaigns.models import Membership
from tests.campaigns.web.builders import user_with_password
from tests.factories import ProjectFactory

LS_KEY = "ls-key-web-7c1e9a4b2d"
HOOK_SECRET = "hook-secret-web-3f8d0c6a"


class ScanningClient(Client):
    def request(self, **request: Any) -> Any:
        response = super().request(**request)
        if not getattr(response, "streaming", False):
            body = response.content.decode("utf-8", errors="replace")
            for secret in (LS_KEY, HOOK_SECRET):
                assert secret not in body, f"a secret leaked in {request.get('PATH_INFO')}"
        return response


@pytest.fixture
def owner(db: None) -> Any:
    return user_with_password("olga")


@pytest.fixture
def project(owner: Any) -> Any:
    return ProjectFactory(
        owner=owner, name="reviews", labels=["positive", "negative"], ls_api_key=LS_KEY, ls_webhook_secret=HOOK_SECRET
    )


@pytest.fixture
def member(project: Any) -> Any:
    user = user_with_password("milo")
    Membership.objects.create(project=project, user=user, role=Membership.Role.MEMBER)
    return user


@pytest.fixture
def outsider(db: None) -> Any:
    return user_with_password("oscar")


@pytest.fixture
def client_for(db: None) -> Callable[[Any], ScanningClient]:
    def make(user: Any) -> ScanningClient:
        client = ScanningClient()
        client.force_login(user)
        return client

    return make


@pytest.fixture
def as_owner(client_for: Callable[[Any], ScanningClient], owner: Any, project: Any) -> ScanningClient:
    return client_for(owner)


@pytest.fixture
def as_outsider(client_for: Callable[[Any], ScanningClient], outsider: Any) -> ScanningClient:
    return client_for(outsider)


@pytest.fixture
def anon() -> ScanningClient:
    return ScanningClient()


HTMX = {"HTTP_HX_REQUEST": "true"}
