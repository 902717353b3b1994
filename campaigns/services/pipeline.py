"""One cycle's way through the loop, one idempotent step per Celery task.

Each step claims its stage with a conditional UPDATE (or finds it already claimed by an earlier delivery of the
same task and carries on), does its slow work outside any transaction, and enqueues the next step after commit.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from campaigns.models import OPEN_CYCLE_STATES, Cycle, CycleState, Project
from campaigns.selectors import labeled_items
from campaigns.services.cycles import InvalidTransition, cycle_create, cycle_progress, cycle_transition
from campaigns.services.scoring import cycle_score_pool
from campaigns.services.selection import selection_make

log = logging.getLogger(__name__)
S = CycleState


def enqueue_on_commit(task_name: str, **kwargs: Any) -> None:
    """Send a task once the current transaction commits, so the worker sees what this one wrote."""
    from campaigns import tasks

    task = getattr(tasks, task_name)
    transaction.on_commit(lambda: task.delay(**kwargs))


def _claim(cycle_id: int, stage: str, from_states: list[str]) -> Cycle | None:
    """Move the cycle into `stage`; a redelivered task finds it already there and continues. None: nothing to do."""
    try:
        cycle_transition(cycle_id=cycle_id, to=stage, from_states=from_states)
    except InvalidTransition:
        cycle = Cycle.objects.select_related("project").filter(pk=cycle_id).first()
        if cycle is None or cycle.state != stage:
            log.info("cycle %s is %s: skipping %s", cycle_id, cycle.state if cycle else "gone", stage)
            return None
    cycle_progress(cycle_id=cycle_id, stage=stage, done=0, total=0)
    return Cycle.objects.select_related("project", "model_version").get(pk=cycle_id)


def cycle_start(*, project: Project, user: AbstractBaseUser | None = None, **params: Any) -> Cycle:
    """Create the next cycle and start it: training (or, without any label yet, a cold-start selection)."""
    with transaction.atomic():
        cycle = cycle_create(project=project, user=user, **params)
        enqueue_on_commit("cycle_train", cycle_id=cycle.pk)
    return cycle


def cycle_run_training(*, cycle_id: int, chain: bool = True) -> None:
    """Train (or cold-start select); then enqueue scoring unless `chain` is false (a caller running the steps
    itself, like a simulation, must not also have a worker score the same cycle)."""
    from models_registry.services import external_champion, model_train_for_cycle

    cycle = Cycle.objects.select_related("project").filter(pk=cycle_id).first()
    if cycle is None:
        log.info("cycle %s no longer exists: nothing to train", cycle_id)  # deleted with its project
        return
    external = external_champion(project=cycle.project)
    if external is not None and cycle.state == S.CREATED:
        # A registered external model (e.g. a detector) scores; alweb does not train it.
        with transaction.atomic():
            cycle_transition(cycle_id=cycle_id, to=S.SCORING, from_states=[S.CREATED], model_version=external)
            if chain:
                enqueue_on_commit("cycle_score", cycle_id=cycle_id)
        return
    if cycle.state == S.CREATED and not labeled_items(project=cycle.project).exists():
        # Cold start: no label to learn from, so no model; select straight from the pool.
        cycle_run_selection(cycle_id=cycle_id)
        return
    claimed = _claim(cycle_id, S.TRAINING, [S.CREATED])
    if claimed is None:
        return
    if claimed.model_version is None or claimed.model_version.status != "ready":
        model_version = model_train_for_cycle(cycle=claimed)
        Cycle.objects.filter(pk=cycle_id).update(model_version=model_version)
    with transaction.atomic():
        cycle_transition(cycle_id=cycle_id, to=S.SCORING, from_states=[S.TRAINING])
        if chain:
            enqueue_on_commit("cycle_score", cycle_id=cycle_id)


def cycle_run_scoring(*, cycle_id: int) -> None:
    cycle = _claim(cycle_id, S.SCORING, [S.CREATED])
    if cycle is None:
        return
    started = time.monotonic()
    cycle_score_pool(
        cycle=cycle,
        on_progress=lambda done, total: cycle_progress(
            cycle_id=cycle_id, stage=S.SCORING, done=done, total=total, started=started
        ),
    )
    with transaction.atomic():
        cycle_transition(cycle_id=cycle_id, to=S.SCORED, from_states=[S.SCORING])
        if cycle.auto_advance:
            enqueue_on_commit("cycle_select", cycle_id=cycle_id)


def cycle_run_selection(*, cycle_id: int) -> None:
    cycle = Cycle.objects.select_related("project", "model_version").filter(pk=cycle_id).first()
    if cycle is None or cycle.state not in (S.SCORED, S.CREATED, S.SELECTED):
        return
    selection_make(cycle=cycle)
    cycle.refresh_from_db()
    if cycle.auto_advance and cycle.state == S.SELECTED:
        cycle_request_sync(cycle=cycle)


def cycle_request_sync(*, cycle: Cycle) -> None:
    with transaction.atomic():
        enqueue_on_commit("cycle_sync", cycle_id=cycle.pk)


def cycle_run_sync(*, cycle_id: int) -> None:
    from campaigns.labelstudio.sync import cycle_sync_to_labelstudio

    cycle = _claim(cycle_id, S.SYNCING, [S.SELECTED])
    if cycle is None:
        return
    cycle_sync_to_labelstudio(cycle=cycle)
    cycle_transition(cycle_id=cycle_id, to=S.LABELING, from_states=[S.SYNCING])


def projects_to_pull() -> list[int]:
    """Projects with a Label Studio project and a cycle waiting for labels."""
    return list(
        Project.objects.filter(ls_project_id__isnull=False, cycles__state__in=[S.LABELING, S.COLLECTING])
        .values_list("pk", flat=True)
        .distinct()
    )


def project_run_pull(*, project_id: int, task_ids: list[int] | None = None) -> None:
    from campaigns.labelstudio.pull import project_pull_annotations
    from campaigns.services.closing import cycles_close_if_labeled

    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return  # deleted since the pull was queued
    project_pull_annotations(project=project, task_ids=task_ids)
    cycles_close_if_labeled(project=project)


__all__ = ["OPEN_CYCLE_STATES", "cycle_start"]
