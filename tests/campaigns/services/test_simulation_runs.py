"""Simulation runs (issue 14): the request's checks and its one-run-at-a-time rule, the task's claim (queued →
running), redeliveries (a finished run is left alone, a running one restarts cleanly after its sandboxes are
deleted), a superseded worker stopping, failure, and the cleanup of what lost runs leave behind.

The comparison itself is exercised for real in tests/campaigns/services/test_comparison.py and, through a real
worker, in tests/integration/test_worker_simulation.py; here it is replaced where a test is about the run's life."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.utils import timezone

from campaigns import selectors
from campaigns.models import Item, Project, SimulationRun
from campaigns.services import simulation_runs
from campaigns.services.comparison import ComparisonError, ComparisonReport, sandbox_create
from campaigns.services.projects import project_delete
from campaigns.services.simulation_runs import (
    SimulationConflict,
    simulation_claim,
    simulation_fail,
    simulation_request,
    simulation_retry,
    simulation_run,
    simulations_cleanup,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def labeled(make_project: Any) -> Any:
    project = make_project(labels=["a", "b"])
    Item.objects.bulk_create(
        Item(project=project, key=f"k{i}", split="pool", text=f"t{i}", label="ab"[i % 2]) for i in range(40)
    )
    return project


@pytest.fixture
def sent(monkeypatch: Any) -> list[int]:
    """The task, recorded instead of sent once the request's transaction commits."""
    from campaigns import tasks

    ids: list[int] = []
    monkeypatch.setattr(tasks.simulation_run, "delay", lambda run_id: ids.append(run_id))
    return ids


def request(project: Any, **kw: Any) -> SimulationRun:
    params: dict[str, Any] = {"strategies": ["topk"], "seeds": 2, "cycles": 2, "budget": 5, **kw}
    return simulation_request(project=project, user=project.owner, **params)


Compare = Callable[..., ComparisonReport]


def fake_compare(monkeypatch: Any, body: Callable[..., None] | None = None) -> list[dict[str, Any]]:
    """Replace the comparison: it makes one sandbox for the run (as the real one does) and reports each arm done,
    running `body(**kwargs)` first; records its calls."""
    calls: list[dict[str, Any]] = []

    def compare(*, project: Project, strategies: Sequence[str], seeds: int, on_progress: Any, **kw: Any) -> Any:
        calls.append({"project": project, "strategies": list(strategies), "seeds": seeds, **kw})
        sandbox = sandbox_create(source=project, name=f"sandbox {len(calls)}", run_id=kw["run_id"])
        if body is not None:
            body(project=project, sandbox=sandbox, on_progress=on_progress, **kw)
        project_delete(project=sandbox)
        total = (len(strategies) + 1) * seeds
        for done in range(1, total + 1):
            on_progress(done, total)
        return ComparisonReport(project=project.pk, seeds=seeds, cycles=2, budget=5, heuristic="margin", grid=[])

    monkeypatch.setattr(simulation_runs, "project_compare_strategies", compare)
    return calls


def test_a_request_names_the_parameter_at_fault_and_records_nothing(labeled: Any, sent: list[int]) -> None:
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"strategies": ["nonsense"]}, "strategies", "unknown nonsense"),
        ({"strategies": ["random"]}, "strategies", "at least one strategy"),
        ({"seeds": 1}, "seeds", "from 2"),
        ({"cycles": 0}, "cycles", "from 1"),
        ({"heuristic": "magic"}, "heuristic", "unknown"),
        # 40 labeled items: 5 cycles of 5 need 50.
        ({"cycles": 5}, "budget", "only 40 items have a label"),
    ]
    for kw, field, words in cases:
        with pytest.raises(ValidationError) as caught:
            request(labeled, **kw)
        assert list(caught.value.message_dict) == [field], kw
        assert words in caught.value.message_dict[field][0]
    assert not SimulationRun.objects.exists() and sent == []


def test_a_request_records_the_run_and_queues_it_after_commit(
    labeled: Any, sent: list[int], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        run = request(labeled, strategies=["topk", "badge", "topk", "random"])
    assert sent == [run.pk]
    assert (run.state, run.strategies, run.attempt) == ("queued", ["topk", "badge"], 0)
    assert run.progress["done"] == 0 and run.progress["total"] == 6  # 3 arms x 2 seeds


def test_one_queued_or_running_run_per_project(labeled: Any, sent: list[int]) -> None:
    first = request(labeled)
    with pytest.raises(SimulationConflict, match=f"simulation {first.pk} is queued"):
        request(labeled)
    # The database holds the rule too, for two requests that both passed the check.
    with pytest.raises(IntegrityError), transaction.atomic():
        SimulationRun.objects.create(project=labeled, strategies=["topk"], seeds=2, state="running")
    SimulationRun.objects.filter(pk=first.pk).update(state="done")
    assert request(labeled).state == "queued"


def test_the_claim_moves_queued_to_running_and_a_finished_run_is_not_claimed(labeled: Any, sent: list[int]) -> None:
    run = request(labeled)
    assert simulation_claim(run_id=run.pk) == 1
    assert SimulationRun.objects.get(pk=run.pk).state == "running"
    # Running and delivered again: its worker died; the redelivery takes it over.
    assert simulation_claim(run_id=run.pk) == 2
    for state in ("done", "failed"):
        SimulationRun.objects.filter(pk=run.pk).update(state=state)
        assert simulation_claim(run_id=run.pk) is None
    assert simulation_claim(run_id=run.pk + 1000) is None


def test_a_run_writes_progress_and_its_report(labeled: Any, sent: list[int], monkeypatch: Any) -> None:
    calls = fake_compare(monkeypatch)
    run = request(labeled, strategies=["topk", "badge"])
    finished = simulation_run(run_id=run.pk)
    assert finished is not None and finished.state == "done" and finished.finished_at is not None
    assert finished.progress["done"] == finished.progress["total"] == 6
    assert finished.report["project"] == labeled.pk and "recommendation" in finished.report
    assert calls[0]["run_id"] == run.pk and calls[0]["strategies"] == ["topk", "badge"]
    assert not Project.objects.filter(sandbox_of=labeled).exists()


def test_a_redelivered_finished_run_does_nothing(labeled: Any, sent: list[int], monkeypatch: Any) -> None:
    calls = fake_compare(monkeypatch)
    run = request(labeled)
    simulation_run(run_id=run.pk)
    report = SimulationRun.objects.get(pk=run.pk).report
    assert simulation_run(run_id=run.pk) is None
    assert len(calls) == 1 and SimulationRun.objects.get(pk=run.pk).report == report


def test_a_redelivered_running_run_deletes_its_orphan_sandboxes_and_starts_again(
    labeled: Any, sent: list[int], monkeypatch: Any
) -> None:
    run = request(labeled)
    simulation_claim(run_id=run.pk)  # the first worker claimed it, made a sandbox, and died
    orphan = sandbox_create(source=labeled, name="left by the dead worker", run_id=run.pk)
    other = sandbox_create(source=labeled, name="the simulate command's", run_id=None)
    seen: list[list[int]] = []

    def at_start(**kw: Any) -> None:
        seen.append(
            list(Project.objects.filter(sandbox_run=run).exclude(pk=kw["sandbox"].pk).values_list("pk", flat=True))
        )

    fake_compare(monkeypatch, at_start)
    finished = simulation_run(run_id=run.pk)
    assert finished is not None and (finished.state, finished.attempt) == ("done", 2)
    assert seen == [[]] and not Project.objects.filter(pk=orphan.pk).exists()
    assert Project.objects.filter(pk=other.pk).exists()  # not this run's: left to the cleanup


def test_a_superseded_worker_stops_without_writing(labeled: Any, sent: list[int], monkeypatch: Any) -> None:
    run = request(labeled)

    def taken_over(**kw: Any) -> None:
        # A redelivery took the run over while this worker was still in its first arm.
        SimulationRun.objects.filter(pk=run.pk).update(attempt=7, progress={"done": 0, "total": 4, "by": "new"})

    fake_compare(monkeypatch, taken_over)
    assert simulation_run(run_id=run.pk) is None
    after = SimulationRun.objects.get(pk=run.pk)
    assert (after.state, after.attempt, after.progress["by"], after.report) == ("running", 7, "new", {})


def test_a_comparison_refused_at_run_time_fails_the_run_with_its_reason(
    labeled: Any, sent: list[int], monkeypatch: Any
) -> None:
    def refuse(**kw: Any) -> None:
        raise ComparisonError("budget", "only 3 items have a label to simulate with")

    fake_compare(monkeypatch, refuse)
    run = request(labeled)
    assert simulation_run(run_id=run.pk) is None
    failed = SimulationRun.objects.get(pk=run.pk)
    assert failed.state == "failed" and failed.failure_reason == "budget: only 3 items have a label to simulate with"
    assert not Project.objects.filter(sandbox_of=labeled).exists()


def test_a_failed_run_can_be_retried_and_a_done_one_cannot(
    labeled: Any, sent: list[int], django_capture_on_commit_callbacks: Any
) -> None:
    run = request(labeled)
    simulation_claim(run_id=run.pk)
    sandbox_create(source=labeled, name="in flight", run_id=run.pk)
    simulation_fail(run_id=run.pk, reason="RuntimeError: boom")
    failed = SimulationRun.objects.get(pk=run.pk)
    assert (failed.state, failed.failure_reason) == ("failed", "RuntimeError: boom")
    assert not Project.objects.filter(sandbox_run=run).exists()
    with django_capture_on_commit_callbacks(execute=True):
        again = simulation_retry(run=failed)
    assert (again.state, again.failure_reason) == ("queued", "") and sent[-1] == run.pk
    SimulationRun.objects.filter(pk=run.pk).update(state="done")
    simulation_fail(run_id=run.pk, reason="late")  # a finished run stays done
    with pytest.raises(SimulationConflict, match="only a failed run"):
        simulation_retry(run=SimulationRun.objects.get(pk=run.pk))
    assert SimulationRun.objects.get(pk=run.pk).state == "done"


def test_cleanup_fails_lost_runs_and_deletes_what_they_left(labeled: Any, sent: list[int], settings: Any) -> None:
    lost = request(labeled)
    simulation_claim(run_id=lost.pk)
    long_ago = timezone.now() - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 60)
    SimulationRun.objects.filter(pk=lost.pk).update(started_at=long_ago)
    lost_sandbox = sandbox_create(source=labeled, name="lost", run_id=lost.pk)
    old_unowned = sandbox_create(source=labeled, name="old, from a crashed simulate command")
    Project.objects.filter(pk=old_unowned.pk).update(created_at=timezone.now() - timedelta(days=2))
    young_unowned = sandbox_create(source=labeled, name="a simulate command still running")

    out = io.StringIO()
    call_command("simulations_cleanup", stdout=out)
    assert out.getvalue().strip() == "1 lost runs failed, 2 sandboxes deleted"
    assert SimulationRun.objects.get(pk=lost.pk).state == "failed"
    remaining = set(Project.objects.values_list("pk", flat=True))
    assert remaining == {labeled.pk, young_unowned.pk} and lost_sandbox.pk not in remaining
    assert Item.objects.filter(project=labeled).count() == 40  # the source is untouched


def test_the_cleanup_runs_hourly_from_beat(labeled: Any, settings: Any) -> None:
    from alweb.celery import app
    from campaigns import tasks

    entry = settings.CELERY_BEAT_SCHEDULE["cleanup-simulations"]
    assert entry["task"] in app.tasks and entry["schedule"] == 3600
    left = sandbox_create(source=labeled, name="left by a finished run")
    done = SimulationRun.objects.create(project=labeled, strategies=["topk"], seeds=2, state="done")
    Project.objects.filter(pk=left.pk).update(sandbox_run=done)
    tasks.cleanup_simulations.run()
    assert not Project.objects.filter(pk=left.pk).exists()
    assert simulations_cleanup().sandboxes_deleted == 0  # nothing left: a second pass does nothing


def test_sandboxes_are_nobodys_projects_and_go_with_their_source(labeled: Any) -> None:
    sandbox = sandbox_create(source=labeled, name="sandbox")
    owner = labeled.owner
    sandbox.memberships.create(user=owner, role="owner")  # even with a membership, it is not listed
    assert list(selectors.projects_for_user(user=owner)) == [labeled]
    assert selectors.project_for_member(user=owner, project_id=sandbox.pk) is None
    assert [p.pk for p in selectors.projects_with_counts_for_user(user=owner)] == [labeled.pk]
    project_delete(project=labeled)
    assert not Project.objects.filter(pk__in=[labeled.pk, sandbox.pk]).exists()
