"""The cycle state machine: numbering, one open cycle per project, refused transitions, concurrent starts."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from campaigns.models import Cycle
from campaigns.services.cycles import (
    CycleConflict,
    InvalidTransition,
    cycle_cancel,
    cycle_create,
    cycle_fail,
    cycle_retry,
    cycle_transition,
)
from campaigns.states import CycleState


@pytest.mark.django_db
def test_cycles_are_numbered_and_only_one_is_open(make_project: Any) -> None:
    project = make_project()
    first = cycle_create(project=project, budget=10)
    assert (first.number, first.state, first.heuristic, first.mc_iterations) == (1, "created", "margin", 20)
    with pytest.raises(CycleConflict, match="already has an open cycle \\(1, created\\)"):
        cycle_create(project=project)
    cycle_cancel(cycle=first)
    second = cycle_create(project=project)
    assert second.number == 2


@pytest.mark.django_db
def test_invalid_transitions_are_refused_with_the_current_state(make_project: Any) -> None:
    cycle = cycle_create(project=make_project())
    with pytest.raises(InvalidTransition, match="is created: it cannot go to labeling"):
        cycle_transition(cycle_id=cycle.pk, to=CycleState.LABELING)
    cycle_transition(cycle_id=cycle.pk, to=CycleState.TRAINING)
    # A redelivered "start training" finds the cycle already moved and is told so.
    with pytest.raises(InvalidTransition, match="is training"):
        cycle_transition(cycle_id=cycle.pk, to=CycleState.TRAINING, from_states=[CycleState.CREATED])
    cycle_transition(cycle_id=cycle.pk, to=CycleState.CANCELLED)
    with pytest.raises(InvalidTransition, match="is cancelled"):
        cycle_transition(cycle_id=cycle.pk, to=CycleState.SCORING)
    cycle.refresh_from_db()
    assert cycle.finished_at is not None


@pytest.mark.django_db
def test_failed_cycle_keeps_reason_and_retries_from_its_stage(make_project: Any) -> None:
    project = make_project()
    cycle = cycle_create(project=project)
    cycle_transition(cycle_id=cycle.pk, to=CycleState.TRAINING)
    Cycle.objects.filter(pk=cycle.pk).update(progress={"stage": "training"})
    cycle_fail(cycle_id=cycle.pk, reason="MLflow unreachable: connection refused")
    cycle.refresh_from_db()
    assert (cycle.state, cycle.failure_reason) == ("failed", "MLflow unreachable: connection refused")
    other = cycle_create(project=project)  # a failed cycle is not open
    with pytest.raises(CycleConflict):
        cycle_retry(cycle=cycle)
    cycle_cancel(cycle=other)
    assert cycle_retry(cycle=cycle) == "training"
    cycle.refresh_from_db()
    assert (cycle.state, cycle.failure_reason, cycle.finished_at) == ("training", "", None)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"budget": 0}, "budget"),
        ({"budget": "10"}, "budget"),
        ({"budget": True}, "budget"),
        ({"threshold": -0.1}, "threshold"),
        ({"threshold": float("nan")}, "threshold"),
        ({"threshold": float("inf")}, "threshold"),
        ({"threshold": "high"}, "threshold"),
        ({"mc_iterations": 0}, "mc_iterations"),
        ({"mc_iterations": 1, "heuristic": "bald"}, "mc_iterations"),  # one pass cannot disagree with itself
        ({"mc_iterations": 1, "heuristic": "variation_ratio"}, "mc_iterations"),
        ({"heuristic": "magic"}, "heuristic"),
        ({"seed": -1}, "seed"),
        ({"strategy": "best"}, "strategy"),
        ({"strategy": "quota", "strategy_params": {"quotas": {"unknown": 0.5}}}, "strategy_params"),
    ],
)
def test_out_of_range_parameters_name_the_field(make_project: Any, params: dict[str, Any], field: str) -> None:
    project = make_project()
    with pytest.raises(ValidationError) as exc:
        cycle_create(project=project, **params)
    assert field in exc.value.message_dict
    assert not Cycle.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_starts_make_exactly_one_cycle(make_project: Any) -> None:
    project = make_project()
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def start() -> None:
        barrier.wait()
        try:
            cycle_create(project=project)
            outcomes.append("created")
        except CycleConflict:
            outcomes.append("conflict")
        finally:
            connection.close()

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict", "conflict", "conflict", "created"]
    assert Cycle.objects.filter(project=project).count() == 1


@pytest.mark.django_db
def test_tasks_for_a_deleted_cycle_or_project_do_nothing(make_project: Any) -> None:
    from campaigns.services.pipeline import (
        cycle_run_scoring,
        cycle_run_selection,
        cycle_run_sync,
        cycle_run_training,
        project_run_pull,
    )

    project = make_project()
    cycle = cycle_create(project=project)
    cycle_id, project_id = cycle.pk, project.pk
    cycle.delete()
    for step in (cycle_run_training, cycle_run_scoring, cycle_run_selection, cycle_run_sync):
        step(cycle_id=cycle_id)  # a message left in the broker after its cycle was deleted: no error
    project.delete()
    project_run_pull(project_id=project_id)


@pytest.mark.django_db
def test_started_at_is_stamped_when_work_starts_and_kept_on_retry(make_project: Any) -> None:
    """Issue 17 item 9: started_at stayed empty on every cycle."""
    cycle = cycle_create(project=make_project())
    assert Cycle.objects.get(pk=cycle.pk).started_at is None
    cycle_transition(cycle_id=cycle.pk, to=CycleState.TRAINING)
    started = Cycle.objects.get(pk=cycle.pk).started_at
    assert started is not None
    cycle_transition(cycle_id=cycle.pk, to=CycleState.FAILED)
    cycle_transition(cycle_id=cycle.pk, to=CycleState.TRAINING)
    assert Cycle.objects.get(pk=cycle.pk).started_at == started
