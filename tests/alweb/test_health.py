"""/healthz: the web process, the database and the broker, for load balancers and compose healthchecks."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from alweb.celery import app

pytestmark = pytest.mark.django_db


@pytest.fixture
def broker() -> Any:
    """Point the Celery app's connections at another broker URL for one test, then back (the URL connections are
    made for: Celery reads `broker_write_url` first, and its pool is dropped so no connection outlives the test)."""
    original = app.conf.broker_write_url

    def point(url: str | None) -> None:
        app.conf.broker_write_url = url
        if app._pool is not None:
            app._pool.force_close_all()
            app._pool = None

    yield point
    point(original)


def test_healthz_answers_200_with_each_check_without_login(client: Client, broker: Any) -> None:
    broker(None)  # the real Redis of the test settings
    response = client.get("/healthz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "web": True,
        "database": True,
        "broker": True,
    }
    assert "no-cache" in response["Cache-Control"]


def test_healthz_is_503_naming_the_broker_when_it_is_unreachable(client: Client, broker: Any) -> None:
    broker("redis://127.0.0.1:9/0")  # nothing listens there
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"]["ok"] is True and body["checks"]["broker"]["ok"] is False
    assert "127.0.0.1:9" in body["checks"]["broker"]["error"]


def test_healthz_is_503_naming_the_database_when_it_fails(client: Client, broker: Any, monkeypatch: Any) -> None:
    from django.db import OperationalError

    from alweb import health

    def down() -> None:
        raise OperationalError("connection to server at 127.0.0.1, port 5432 failed")

    monkeypatch.setitem(health.CHECKS, "database", down)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert "port 5432 failed" in response.json()["checks"]["database"]["error"]


def test_healthz_answers_a_load_balancer_calling_by_address_over_http(client: Client, settings: Any) -> None:
    """Production names only the public host and redirects HTTP to HTTPS; a probe by address must still work."""
    settings.ALLOWED_HOSTS = ["alweb.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    response = client.get("/healthz", HTTP_HOST="10.0.0.7:8000")
    assert response.status_code == 200
    assert client.get("/", HTTP_HOST="10.0.0.7:8000").status_code == 400  # everything else still checks the host
