"""Two users, Alice and Bob, each with an API client: every finding is replayed as one of them attacking the other."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import UserFactory

PASSWORD = "correct horse battery staple 42"


def make_user(username: str) -> Any:
    user = UserFactory(username=username)
    user.set_password(PASSWORD)
    user.save()
    return user


def api_client(user: Any) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def send(client: APIClient, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body)
    return getattr(client, method)(path, data=data, content_type="application/json")


@pytest.fixture
def alice(db: None) -> Any:
    return make_user("alice")


@pytest.fixture
def bob(db: None) -> Any:
    return make_user("bob")
