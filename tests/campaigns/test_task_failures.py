"""A task that gives up marks its record failed with the reason, whether the record's id came by name or by
position (`campaigns.tasks.RecordTask`)."""

from __future__ import annotations

from typing import Any

import pytest

from campaigns import tasks
from campaigns.models import Cycle, Export
from campaigns.states import CycleState
from tests.factories import CycleFactory

pytestmark = pytest.mark.django_db


def test_an_export_that_gives_up_is_failed_with_the_reason(make_project: Any) -> None:
    export = Export.objects.create(project=make_project(), format="csv", state="running")
    tasks.project_export.on_failure(OSError("disk full"), "t1", (), {"export_id": export.pk}, None)
    export.refresh_from_db()
    assert export.state == "failed" and export.failure_reason == "OSError: disk full"


def test_a_cycle_task_that_gives_up_fails_its_cycle_id_given_by_position(make_project: Any) -> None:
    cycle = CycleFactory(project=make_project(), state=CycleState.TRAINING)
    tasks.cycle_train.on_failure(RuntimeError("no labels"), "t2", (cycle.pk,), {}, None)
    cycle = Cycle.objects.get(pk=cycle.pk)
    assert cycle.state == CycleState.FAILED and "RuntimeError: no labels" in cycle.failure_reason
