"""What a person triggers (dashboard buttons, API calls, admin actions, Label Studio's "Start training"): start a
cycle, send a selection to Label Studio, pull annotations now, retry a failed cycle, requeue stopped work, resync
selected items.

Each checks the one precondition a person can get wrong (and says so in plain words), then changes state and sends
the stage's task after commit through `campaigns.services.queue`. Pressing a button twice, or on a cycle a worker
already carries on, costs at most a task that finds nothing to do. This module imports the pipeline; the pipeline
never imports it.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet

from campaigns.models import Cycle, Item, ItemState, Project, SelectedItem, Split
from campaigns.selectors import items_pool, selected_items_of_cycle
from campaigns.services import queue
from campaigns.services.cycles import InvalidTransition, cycle_create, cycle_retry
from campaigns.services.projects import project_delete
from campaigns.states import WAITING_FOR_LABELS, CycleState
from integrations.labelstudio.connect import (
    RELEASE_KEEP,
    RELEASE_TASKS,
    LabelStudioRequestError,
    LabelStudioUnavailable,
    labelstudio_project_release,
)

S = CycleState


class NothingToSelect(Exception):
    """The project's pool has no unlabeled item a new cycle could select."""


def pool_problem(*, project: Project) -> str | None:
    """Why a new cycle would have nothing to select, in words; None when the pool has items to offer."""
    if items_pool(project=project).exists():
        return None
    pool = Item.objects.filter(project=project, split=Split.POOL)
    if not pool.exists():
        return "the project has no pool items: import items first"
    if not pool.filter(label__isnull=True, state=ItemState.ACTIVE).exists():
        return "every pool item is labeled or set aside: import more items"
    return "every unlabeled pool item is already selected by a live cycle"


def cycle_start(*, project: Project, user: AbstractBaseUser | None = None, **params: Any) -> Cycle:
    """Create the next cycle and start it: training (or, without any label yet, a cold-start selection).

    Refused (NothingToSelect) when the pool has nothing left to select: such a cycle would train, score nothing and
    close empty, looking like success."""
    with transaction.atomic():
        # After creation's own checks (bad parameters, another open cycle), in its transaction: a refusal undoes it.
        cycle = cycle_create(project=project, user=user, **params)
        if (reason := pool_problem(project=project)) is not None:
            raise NothingToSelect(reason)
        queue.enqueue_on_commit(queue.CYCLE_TRAIN, cycle_id=cycle.pk)
    return cycle


def cycle_sync_request(*, cycle: Cycle) -> None:
    """Queue the sync of a selected cycle's items to Label Studio."""
    if cycle.state != S.SELECTED:
        raise InvalidTransition(
            f"only a cycle with a selection waiting to be sent can be synced (this one is {cycle.state})"
        )
    # No check of the connection here: a project without its own falls back to the server in the settings, and
    # a sync that cannot connect fails the cycle with the reason (shown on the cycle page) and can be retried.
    with transaction.atomic():
        queue.enqueue_on_commit(queue.CYCLE_SYNC, cycle_id=cycle.pk)


def project_pull_request(*, project: Project) -> None:
    """Queue a pull of annotations from Label Studio now, rather than at the next periodic pull."""
    if project.ls_project_id is None:
        raise InvalidTransition("this project is not linked to a Label Studio project yet: sync a selection first")
    with transaction.atomic():
        queue.enqueue_on_commit(queue.PROJECT_PULL, project_id=project.pk)


def cycle_retry_and_resume(*, cycle: Cycle) -> str:
    """Put a failed cycle back in the stage it failed in and enqueue that stage's task; returns the stage.

    `cycle_retry` only moves the state, and a task that gave up is not redelivered, so without the enqueue the
    cycle would sit in its stage forever. Raises CycleConflict if the project has another open cycle.
    """
    with transaction.atomic():
        stage = cycle_retry(cycle=cycle)
        task = queue.resume_task(stage=stage, auto_advance=cycle.auto_advance)
        if task is not None:
            queue.enqueue_on_commit(task, cycle_id=cycle.pk)
    return stage


def cycle_requeue(*, cycle: Cycle, now: datetime | None = None) -> str:
    """Send a stopped cycle's work again; returns what was done, in words.

    failed → put back in the stage it failed in and enqueue it; a working stage (training, scoring, syncing) whose
    progress has not moved for ALWEB_REQUEUE_STALE_AFTER → enqueue that stage's task again (it resumes where the
    lost one stopped); labeling → pull annotations now. Anything else is refused with the reason.
    """
    if cycle.state == S.FAILED:
        return f"put back in {cycle_retry_and_resume(cycle=cycle)}"
    if cycle.state in WAITING_FOR_LABELS:
        with transaction.atomic():
            queue.enqueue_on_commit(queue.PROJECT_PULL, project_id=cycle.project_id)
        return "annotations pull queued"
    task = queue.RESUME_TASKS.get(cycle.state)
    if task is None:
        raise InvalidTransition(f"cycle {cycle.number} is {cycle.state}: nothing to requeue")
    if too_soon := queue.requeue_too_soon(
        f"cycle {cycle.number} is {cycle.state}", cycle.progress, cycle.updated_at, now=now
    ):
        raise InvalidTransition(too_soon)
    with transaction.atomic():
        queue.enqueue_on_commit(task, cycle_id=cycle.pk)
    return f"{task.rsplit('.', 1)[-1]} queued again"


def items_resync(*, cycle: Cycle, item_ids: list[int] | None = None) -> int:
    """Check the cycle's selected items (these ones, or all) against Label Studio and repair what LS lacks; returns
    how many rows will be checked. Only for a cycle whose items are out for labeling."""
    if cycle.state not in WAITING_FOR_LABELS:
        raise InvalidTransition(
            f"cycle {cycle.number} is {cycle.state}: only a cycle out for labeling can be resynced"
            + (" (send it to Label Studio first)" if cycle.state == S.SELECTED else "")
        )
    count = selected_items_of_cycle(cycle_id=cycle.pk, item_ids=item_ids).count()
    if count:
        with transaction.atomic():
            queue.enqueue_on_commit(queue.CYCLE_RESYNC, cycle_id=cycle.pk, item_ids=sorted(item_ids or []))
    return count


def items_resync_where_labeling(*, items: QuerySet[Item]) -> tuple[int, int]:
    """Resync these items in whichever cycle has them out for labeling (one per project at most); returns how many
    were queued and how many were left alone (not out for labeling)."""
    rows = SelectedItem.objects.filter(item__in=items, selection__cycle__state__in=WAITING_FOR_LABELS)
    by_cycle: dict[int, list[int]] = defaultdict(list)
    for cycle_id, item_id in rows.values_list("selection__cycle_id", "item_id"):
        by_cycle[cycle_id].append(item_id)
    queued = sum(items_resync(cycle=c, item_ids=by_cycle[c.pk]) for c in Cycle.objects.filter(pk__in=by_cycle))
    return queued, items.count() - queued


def project_delete_with_labelstudio(*, project: Project, label_studio: str = RELEASE_TASKS) -> None:
    """Delete a project in alweb and, first, what alweb put in Label Studio for it (`label_studio`: "tasks", the
    default, "project" when alweb created the LS project, or "keep"). If Label Studio cannot do its part, nothing is
    deleted: the owner learns why and may choose "keep" to delete in alweb only."""
    try:
        labelstudio_project_release(project=project, mode=label_studio)
    except (LabelStudioUnavailable, LabelStudioRequestError) as exc:
        raise ValidationError(
            {"label_studio": f"{exc}; nothing was deleted. Try again, or choose '{RELEASE_KEEP}' to leave Label Studio"}
        ) from None
    except ValidationError as exc:
        if hasattr(exc, "error_dict") and "label_studio" in exc.error_dict:
            raise
        reasons = "; ".join(exc.messages)  # no key or URL for this project's Label Studio: cannot reach it
        raise ValidationError(
            {"label_studio": f"{reasons}; nothing was deleted. Choose '{RELEASE_KEEP}' to leave Label Studio as is"}
        ) from None
    project_delete(project=project)
