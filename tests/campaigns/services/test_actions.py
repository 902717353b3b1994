"""Annotator ops: the admin's requeue and resync actions queue the pipeline's own idempotent tasks, only where they
mean something, and say why not elsewhere. (The resync itself runs against a real Label Studio in
tests/integrations/labelstudio/test_sync.py.)"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from campaigns.models import Cycle
from campaigns.services.actions import cycle_requeue, items_resync
from campaigns.services.cycles import InvalidTransition, cycle_progress
from tests.factories import CycleFactory, ItemFactory, ProjectFactory, SelectedItemFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def commits(django_capture_on_commit_callbacks: Any) -> Any:
    return lambda: django_capture_on_commit_callbacks(execute=True)


def test_requeue_resends_a_stalled_stage_but_not_one_a_worker_is_moving(enqueued: list[Any], commits: Any) -> None:
    cycle = CycleFactory(state="scoring")
    cycle_progress(cycle_id=cycle.pk, stage="scoring", done=3, total=10)
    cycle.refresh_from_db()
    with pytest.raises(InvalidTransition, match=r"is scoring and moved \d+ s ago: a worker may hold it"):
        cycle_requeue(cycle=cycle)
    later = timezone.now() + timedelta(seconds=601)
    with commits():
        assert cycle_requeue(cycle=cycle, now=later) == "cycle_score queued again"
    assert enqueued == [("cycle_score", {"cycle_id": cycle.pk})]


def test_requeue_retries_a_failed_cycle_in_its_stage_and_pulls_for_a_labeling_one(
    enqueued: list[Any], commits: Any
) -> None:
    failed = CycleFactory(state="failed", progress={"stage": "training"}, failure_reason="MLflow down")
    with commits():
        assert cycle_requeue(cycle=failed) == "put back in training"
    failed.refresh_from_db()
    assert (failed.state, failed.failure_reason) == ("training", "")
    labeling = CycleFactory(state="labeling")
    with commits():
        assert cycle_requeue(cycle=labeling) == "annotations pull queued"
    assert enqueued == [("cycle_train", {"cycle_id": failed.pk}), ("project_pull", {"project_id": labeling.project_id})]
    with pytest.raises(InvalidTransition, match="is closed: nothing to requeue"):
        cycle_requeue(cycle=CycleFactory(state="closed"))


def test_resync_only_for_cycles_out_for_labeling(enqueued: list[Any], commits: Any) -> None:
    row = SelectedItemFactory(selection__cycle=CycleFactory(state="labeling"))
    cycle = row.selection.cycle
    with commits():
        assert items_resync(cycle=cycle) == 1
        assert items_resync(cycle=cycle, item_ids=[row.item_id + 1000]) == 0  # not selected by this cycle: nothing
    selected = CycleFactory(state="selected")
    with pytest.raises(InvalidTransition, match=r"only a cycle out for labeling can be resynced \(send it"):
        items_resync(cycle=selected)
    assert enqueued == [("cycle_resync", {"cycle_id": cycle.pk, "item_ids": []})]


def test_admin_actions_queue_resync_and_requeue(admin_client: Any, enqueued: list[Any], commits: Any) -> None:
    def act(model: str, action: str, ids: list[int]) -> str:
        with commits():
            url = reverse(f"admin:campaigns_{model}_changelist")
            response = admin_client.post(url, {"action": action, "_selected_action": ids}, follow=True)
        return str(response.content.decode())

    project = ProjectFactory()
    row = SelectedItemFactory(selection__cycle=CycleFactory(project=project, state="labeling"), item__project=project)
    idle = ItemFactory(project=project)
    body = act("item", "resync", [row.item_id, idle.pk])
    assert "1 item(s) queued for a resync with Label Studio; 1 not in a cycle out for labeling" in body
    failed = CycleFactory(project=ProjectFactory(), state="failed", progress={"stage": "scoring"})
    closed = CycleFactory(state="closed")
    body = act("cycle", "requeue", [failed.pk, closed.pk])
    assert "put back in scoring" in body and "nothing to requeue" in body
    assert Cycle.objects.get(pk=failed.pk).state == "scoring"
    assert enqueued == [
        ("cycle_resync", {"cycle_id": row.selection.cycle_id, "item_ids": [row.item_id]}),
        ("cycle_score", {"cycle_id": failed.pk}),
    ]


def test_a_process_that_never_imported_the_tasks_module_can_still_send_them() -> None:
    """The web process (gunicorn, runserver) never imports campaigns.tasks: the queue must find the tasks by name
    all the same (a cycle started from the dashboard answered 500 'NotRegistered' without this)."""
    import subprocess
    import sys

    code = (
        "import django, sys; django.setup(); "
        "assert 'campaigns.tasks' not in sys.modules; "
        "from campaigns.services import queue; "
        "print(queue.registered_task(queue.CYCLE_TRAIN).name)"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "alweb.settings.test"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "campaigns.tasks.cycle_train"
