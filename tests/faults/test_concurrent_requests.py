"""Concurrent requests through the API: two "start cycle" and two "select" at once → one cycle, one selection."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from campaigns.models import Cycle, SelectedItem, Selection
from tests.factories import ItemFactory, ProjectFactory, scored_cycle

pytestmark = [pytest.mark.django_db(transaction=True)]


def concurrently(n: int, call: Callable[[], int]) -> list[int]:
    barrier = threading.Barrier(n)
    codes: list[int] = []

    def run() -> None:
        barrier.wait()
        try:
            codes.append(call())
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(codes)


def client_for(user: Any) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def test_two_concurrent_starts_make_one_cycle(monkeypatch: Any) -> None:
    from campaigns import tasks

    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(tasks.cycle_train, "delay", lambda **kw: sent.append(kw))  # no worker in this test
    project = ProjectFactory()
    ItemFactory(project=project, split="pool")
    url = f"/api/projects/{project.pk}/cycles/"
    codes = concurrently(2, lambda: client_for(project.owner).post(url, {"budget": 5}, format="json").status_code)
    assert len(sent) == 1  # one training task, for the one cycle
    assert codes == [201, 409]
    assert Cycle.objects.filter(project=project).count() == 1


def test_two_concurrent_selects_make_one_selection() -> None:
    project = ProjectFactory(labels=["a", "b"])
    cycle = scored_cycle(project, n=30, budget=7)
    url = f"/api/projects/{project.pk}/cycles/{cycle.pk}/select/"
    codes = concurrently(2, lambda: client_for(project.owner).post(url, {}, format="json").status_code)
    assert codes[0] in (200, 201) and codes[1] in (200, 201, 409)
    assert Selection.objects.filter(cycle=cycle).count() == 1
    assert SelectedItem.objects.filter(selection__cycle=cycle).count() == 7
