"""/admin/queues/: messages waiting per routed queue, read from the real Redis broker; staff only."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.test import Client

from alweb.celery import app
from campaigns.services import queue
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def own_keys() -> Any:
    """This test's messages under a key prefix of their own, so other tests' leftovers are not counted."""

    def use(options: dict[str, Any]) -> None:
        app.conf.broker_transport_options = options
        if app._pool is not None:  # pooled connections (and producers) keep the options they were made with
            app._pool.force_close_all()
            app._pool = None
        app.amqp._producer_pool = None

    original = dict(app.conf.broker_transport_options or {})
    use({**original, "global_keyprefix": f"alweb-test-queues-{uuid.uuid4().hex[:8]}:"})
    yield
    with app.connection_for_write() as conn:  # drop what this test queued
        for name in ("io", "cpu"):
            conn.default_channel.queue_purge(name)
    use(original)


def test_queues_page_counts_waiting_messages_per_queue(client: Client, settings: Any, own_keys: None) -> None:
    settings.ALWEB_QUEUES_INSPECT_TIMEOUT = 0.2
    for project_id in (1, 2):
        queue.registered_task(queue.PROJECT_PULL).delay(project_id=project_id)  # routed to io
    queue.registered_task(queue.CYCLE_TRAIN).delay(cycle_id=1)  # routed to the training queue, cpu

    staff = UserFactory(username="ops", is_staff=True)
    client.force_login(staff)
    page = client.get("/admin/queues/")
    assert page.status_code == 200
    rows = {r.name: r for r in page.context["rows"]}
    assert rows["io"].waiting == 2 and rows["cpu"].waiting == 1 and rows["celery"].waiting == 0
    assert "project_pull" in rows["io"].tasks and "cycle_train" in rows["cpu"].tasks
    assert set(page.context["unserved"]) >= {"io", "cpu"}  # no worker runs in this test
    assert b"none answering" in page.content and b'id="queues-link"' in page.content


def test_queues_page_is_for_staff_only(client: Client) -> None:
    client.force_login(UserFactory(username="annotator", is_staff=False))
    assert client.get("/admin/queues/").status_code == 302  # to the admin login
