"""Simulation runs: "what would active learning save me on my data?" as a product feature (issue 14).

A person (dashboard) or automation (API) requests a run; a Celery task runs `comparison.project_compare_strategies`
on sandbox copies of the project and stores its report. Delivery is at least once, so the task is idempotent:

- the run is claimed with a conditional UPDATE (queued → running) that also bumps its `attempt`;
- a redelivered message for a run already done or failed does nothing;
- a redelivered message for a running run means the worker that held it died (the broker redelivers only after its
  visibility timeout, longer than a task's hard time limit): the run is taken over (attempt + 1), the dead attempt's
  sandboxes are deleted first, and it starts again from the first arm;
- progress and the result are written only while the attempt is still the worker's own, so a worker that was
  superseded stops at its next arm instead of writing over the new one.

`simulations_cleanup` deletes what a lost run leaves behind (`manage.py simulations_cleanup`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import cast

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from campaigns.models import ACTIVE_SIMULATION_STATES, Heuristic, Project, SimulationRun, SimulationState
from campaigns.services import queue
from campaigns.services.comparison import (
    ComparisonError,
    comparison_validate,
    noise_validate,
    project_compare_strategies,
    sandboxes_delete,
)
from campaigns.services.run_claims import attempt_errors, run_claim
from engine.label_quality import Noise

log = logging.getLogger(__name__)
St = SimulationState


class SimulationConflict(Exception):
    """The project already has a simulation queued or running (the API's 409)."""


class _Superseded(Exception):
    """Another attempt took the run over: this worker stops."""


def _conflict(project: Project) -> SimulationConflict:
    active = SimulationRun.objects.filter(project=project, state__in=ACTIVE_SIMULATION_STATES).first()
    which = f"simulation {active.pk} is {active.state}" if active else "a simulation is queued or running"
    return SimulationConflict(f"{which} for this project: one at a time (wait for it, or follow it)")


def simulation_request(
    *,
    project: Project,
    user: AbstractBaseUser | None,
    strategies: Sequence[str],
    seeds: int = 3,
    cycles: int = 4,
    budget: int = 20,
    heuristic: str = Heuristic.MARGIN,
    noise_rate: float = 0.0,
    annotators: Sequence[float] = (),
) -> SimulationRun:
    """Check the request (a ValidationError naming the parameter), record the run and queue its task after commit.
    SimulationConflict when the project already has one queued or running. `noise_rate` or `annotators`: the
    simulated annotators' error rates (`comparison.noise_validate`)."""
    try:
        arms = comparison_validate(
            project=project, strategies=strategies, seeds=seeds, cycles=cycles, budget=budget, heuristic=heuristic
        )
        noise = noise_validate(noise_rate=noise_rate, annotators=annotators)
    except ComparisonError as exc:
        raise ValidationError({exc.field: exc.reason}) from exc
    if SimulationRun.objects.filter(project=project, state__in=ACTIVE_SIMULATION_STATES).exists():
        raise _conflict(project)
    try:
        with transaction.atomic():
            run = SimulationRun.objects.create(
                project=project,
                strategies=arms[1:],
                seeds=seeds,
                cycles=cycles,
                budget=budget,
                heuristic=heuristic,
                noise_rate=noise.rate,
                annotators=list(noise.annotators),
                created_by=cast(User | None, user),
                progress=_progress_value(0, len(arms) * seeds),
            )
            queue.enqueue_on_commit(queue.SIMULATION_RUN, run_id=run.pk)
    except IntegrityError as exc:  # two requests at once: the one-active-run constraint let one through
        raise _conflict(project) from exc
    return run


def simulation_retry(*, run: SimulationRun) -> SimulationRun:
    """A failed run queued again, as it was asked (its sandboxes are deleted when the task claims it)."""
    if run.state != St.FAILED:
        raise SimulationConflict(f"simulation {run.pk} is {run.state}: only a failed run can be retried")
    try:
        with transaction.atomic():
            moved = SimulationRun.objects.filter(pk=run.pk, state=St.FAILED).update(
                state=St.QUEUED, failure_reason="", report={}, started_at=None, finished_at=None
            )
            if moved != 1:
                raise SimulationConflict(f"simulation {run.pk} is no longer failed")
            queue.enqueue_on_commit(queue.SIMULATION_RUN, run_id=run.pk)
    except IntegrityError as exc:
        raise _conflict(run.project) from exc
    run.refresh_from_db()
    return run


def _progress_value(done: int, total: int) -> dict[str, object]:
    return {"done": done, "total": total, "updated_at": timezone.now().isoformat()}


def simulation_claim(*, run_id: int) -> int | None:
    """Take the run for this worker; returns the attempt it now holds, or None when there is nothing to do (done,
    failed, deleted)."""
    return run_claim(SimulationRun, run_id=run_id, queued=St.QUEUED, running=St.RUNNING, failure_reason="")


def _mine(run_id: int, attempt: int) -> Q:
    return Q(pk=run_id, state=St.RUNNING, attempt=attempt)


def simulation_run(*, run_id: int) -> SimulationRun | None:
    """The task's work (idempotent, see the module's docstring). Returns the run once this attempt finished it, None
    when there was nothing to do or another attempt took over."""
    attempt = simulation_claim(run_id=run_id)
    if attempt is None:
        return None
    with attempt_errors(attempt):  # giving up fails the run only while it is still this attempt's
        return _simulate(run_id, attempt)


def _simulate(run_id: int, attempt: int) -> SimulationRun | None:
    run = SimulationRun.objects.select_related("project").get(pk=run_id)
    # A restart starts clean: whatever an earlier attempt of this run left is deleted before the first arm.
    sandboxes_delete(sandboxes=Project.objects.filter(sandbox_run=run))

    def on_progress(done: int, total: int) -> None:
        written = SimulationRun.objects.filter(_mine(run_id, attempt)).update(progress=_progress_value(done, total))
        if written != 1:
            raise _Superseded

    total = (len(run.strategies) + 1) * run.seeds
    on_progress(0, total)
    try:
        report = project_compare_strategies(
            project=run.project,
            strategies=list(run.strategies),
            seeds=run.seeds,
            cycles=run.cycles,
            budget=run.budget,
            heuristic=run.heuristic,
            on_progress=on_progress,
            run_id=run.pk,
            noise=Noise(run.noise_rate, tuple(run.annotators)),
        )
    except _Superseded:
        log.warning("simulation %s: attempt %s superseded, stopping", run_id, attempt)
        return None
    except ComparisonError as exc:  # the project changed since the request (labels removed, items invalid)
        _fail(run_id=run_id, reason=f"{exc}", only_attempt=attempt)
        return None
    except Exception:
        if not SimulationRun.objects.filter(_mine(run_id, attempt)).exists():
            # A takeover deleted this attempt's sandbox under it: the new attempt owns the run now.
            log.warning("simulation %s: attempt %s lost its run to a takeover", run_id, attempt, exc_info=True)
            return None
        raise
    SimulationRun.objects.filter(_mine(run_id, attempt)).update(
        state=St.DONE, report=report.as_json(), progress=_progress_value(total, total), finished_at=timezone.now()
    )
    run.refresh_from_db()
    return run


def _fail(*, run_id: int, reason: str, only_attempt: int | None = None) -> int:
    """Fail the run (unless finished, or taken over when `only_attempt` is given); returns the sandboxes deleted."""
    runs = SimulationRun.objects.filter(pk=run_id, state__in=ACTIVE_SIMULATION_STATES)
    if only_attempt is not None:
        runs = runs.filter(attempt=only_attempt)
    if not runs.update(state=St.FAILED, failure_reason=reason[:2000], finished_at=timezone.now()):
        return 0
    return sandboxes_delete(sandboxes=Project.objects.filter(sandbox_run_id=run_id))


def simulation_fail(*, run_id: int, reason: str, attempt: int | None = None) -> None:
    """The task gave up: the run fails with the reason (a finished run stays done) and its sandboxes go. With
    `attempt` (the one whose error it was), only while the run is still that attempt's."""
    _fail(run_id=run_id, reason=reason, only_attempt=attempt)


@dataclass(frozen=True, slots=True)
class CleanupOutcome:
    runs_failed: int
    sandboxes_deleted: int


def simulations_cleanup(*, unowned_older_than: timedelta = timedelta(days=1)) -> CleanupOutcome:
    """Delete what lost runs left behind: runs still "running" past a task's hard time limit (no worker can hold them
    any more) fail, and sandboxes go when their run is over, or when they have no run (the `simulate` command's)
    and are older than `unowned_older_than` (the command may still be running a younger one)."""
    now = timezone.now()
    dead_before = now - timedelta(seconds=int(settings.CELERY_TASK_TIME_LIMIT))
    lost = list(SimulationRun.objects.filter(state=St.RUNNING, started_at__lt=dead_before).values_list("pk", flat=True))
    deleted = sum(
        _fail(run_id=run_id, reason="the worker running it was lost (still running past the task time limit)")
        for run_id in lost
    )
    over = Q(sandbox_run__state__in=[St.DONE, St.FAILED])
    unowned = Q(sandbox_run__isnull=True, created_at__lt=now - unowned_older_than)
    deleted += sandboxes_delete(sandboxes=Project.objects.filter(sandbox_of__isnull=False).filter(over | unowned))
    return CleanupOutcome(runs_failed=len(lost), sandboxes_deleted=deleted)
