"""Writes the dashboard's buttons need that the pipeline does not offer as one call: send to Label Studio only from
the state where it means something, pull annotations now, and retry a failed cycle *and* wake its stage up again.

Thin on purpose: each checks the one precondition a person can get wrong (and says so in plain words), then calls
the pipeline or enqueues its task after commit.
"""

from __future__ import annotations

from django.db import transaction

from campaigns.models import Cycle, CycleState, Project
from campaigns.services.cycles import InvalidTransition, cycle_retry
from campaigns.services.pipeline import cycle_request_sync, enqueue_on_commit

S = CycleState

# The task that carries a cycle on from each stage a retry can put it back in. Stages missing here wait for a
# person (scored without auto-advance) or for annotators (labeling): nothing to enqueue.
RESUME_TASKS: dict[str, str] = {
    S.CREATED: "cycle_train",
    S.TRAINING: "cycle_train",
    S.SCORING: "cycle_score",
    S.SYNCING: "cycle_sync",
}


def cycle_sync_request(*, cycle: Cycle) -> None:
    """Queue the sync of a selected cycle's items to Label Studio."""
    if cycle.state != S.SELECTED:
        raise InvalidTransition(
            f"only a cycle with a selection waiting to be sent can be synced (this one is {cycle.state})"
        )
    # No check of the connection here: a project without its own falls back to the server in the settings, and
    # a sync that cannot connect fails the cycle with the reason (shown on the cycle page) and can be retried.
    cycle_request_sync(cycle=cycle)


def project_pull_request(*, project: Project) -> None:
    """Queue a pull of annotations from Label Studio now, rather than at the next periodic pull."""
    if project.ls_project_id is None:
        raise InvalidTransition("this project is not linked to a Label Studio project yet: sync a selection first")
    with transaction.atomic():
        enqueue_on_commit("project_pull", project_id=project.pk)


def cycle_retry_and_resume(*, cycle: Cycle) -> str:
    """Put a failed cycle back in the stage it failed in and enqueue that stage's task; returns the stage.

    `cycle_retry` only moves the state, and a task that gave up is not redelivered, so without the enqueue the
    cycle would sit in its stage forever. Raises CycleConflict if the project has another open cycle.
    """
    with transaction.atomic():
        stage = cycle_retry(cycle=cycle)
        task: str | None = RESUME_TASKS.get(stage)
        if stage == S.SCORED and cycle.auto_advance:
            task = "cycle_select"
        elif stage == S.SELECTED and cycle.auto_advance:
            task = "cycle_sync"
        if task is not None:
            enqueue_on_commit(task, cycle_id=cycle.pk)
    return stage
