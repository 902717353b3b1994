"""The one module that knows the Celery task names and sends tasks: always after the current transaction commits,
so the worker sees what this one wrote.

Tasks are looked up in the Celery app's registry by name instead of imported: `campaigns.tasks` calls the services,
so an import of it from here would close a cycle (services → tasks → services), even hidden inside a function.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from celery import Task, current_app, group
from celery.exceptions import NotRegistered
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from campaigns.states import CycleState

S = CycleState

CYCLE_TRAIN = "campaigns.tasks.cycle_train"
CYCLE_SCORE = "campaigns.tasks.cycle_score"
CYCLE_SCORE_CHUNK = "campaigns.tasks.cycle_score_chunk"
CYCLE_SELECT = "campaigns.tasks.cycle_select"
CYCLE_SYNC = "campaigns.tasks.cycle_sync"
CYCLE_RESYNC = "campaigns.tasks.cycle_resync"
CYCLE_TRAIN_CLOSING = "campaigns.tasks.cycle_train_closing"
PROJECT_PULL = "campaigns.tasks.project_pull"
PROJECT_EXPORT = "campaigns.tasks.project_export"
PROJECT_OVERLAP = "campaigns.tasks.project_overlap"
SIMULATION_RUN = "campaigns.tasks.simulation_run"
BACKBONE_PRETRAIN = "campaigns.tasks.backbone_pretrain"
LABEL_QUALITY = "campaigns.tasks.label_quality"
REVIEW_SYNC = "campaigns.tasks.review_sync"
PROJECT_FEATURES = "campaigns.tasks.project_features"
PROJECT_FEATURES_CHUNK = "campaigns.tasks.project_features_chunk"

# The task that carries a cycle on from each stage a retry or a requeue can put it back in. Stages missing here wait
# for a person (scored without auto-advance, selected without it) or for annotators (labeling): nothing to send.
RESUME_TASKS: dict[str, str] = {
    S.CREATED: CYCLE_TRAIN,
    S.TRAINING: CYCLE_TRAIN,
    S.SCORING: CYCLE_SCORE,
    S.SYNCING: CYCLE_SYNC,
}
# With auto-advance, the stages that wait for a person without it carry on by themselves.
AUTO_ADVANCE_TASKS: dict[str, str] = {S.SCORED: CYCLE_SELECT, S.SELECTED: CYCLE_SYNC}


def enqueue_on_commit(task_name: str, **kwargs: Any) -> None:
    """Send task `task_name` (one of the names above) with `kwargs` once the current transaction commits (at once
    when no transaction is open)."""
    transaction.on_commit(lambda: registered_task(task_name).delay(**kwargs))


def enqueue_group_on_commit(task_name: str, calls: list[dict[str, Any]]) -> None:
    """Send one `task_name` task per kwargs in `calls`, as a group (no chord: nothing waits on their results, the
    database says when all are done), once the current transaction commits."""
    transaction.on_commit(lambda: group(registered_task(task_name).s(**kw) for kw in calls).apply_async())


def registered_task(task_name: str) -> Task:
    """The task registered under `task_name`. A web process never imports `campaigns.tasks`, so the first lookup
    there runs Celery's autodiscovery (the import_modules signal the worker sends at start), which registers it."""
    try:
        return current_app.tasks[task_name]
    except NotRegistered:
        current_app.loader.import_default_modules()
        return current_app.tasks[task_name]


def resume_task(*, stage: str, auto_advance: bool) -> str | None:
    """The task that carries a cycle on from `stage`, or None when the stage waits for people."""
    if auto_advance and stage in AUTO_ADVANCE_TASKS:
        return AUTO_ADVANCE_TASKS[stage]
    return RESUME_TASKS.get(stage)


def requeue_too_soon(what: str, progress: Any, *moments: datetime | None, now: datetime | None = None) -> str | None:
    """Why `what` (e.g. "cycle 3 is scoring") may not have its task sent again yet, or None when it may: its work
    last moved (its progress's `updated_at`, or the latest of `moments`, its own timestamps) less than
    ALWEB_REQUEUE_STALE_AFTER seconds ago, so a worker may still hold it."""
    stamp = progress.get("updated_at") if isinstance(progress, dict) else None
    try:
        moved = datetime.fromisoformat(stamp) if isinstance(stamp, str) else None
    except ValueError:
        moved = None
    known = [m for m in (moved, *moments) if m is not None]
    quiet = int(((now or timezone.now()) - max(known)).total_seconds()) if known else 0
    stale_after = int(settings.ALWEB_REQUEUE_STALE_AFTER)
    if quiet >= stale_after:
        return None
    return f"{what} and moved {quiet} s ago: a worker may hold it (requeue once it has not moved for {stale_after} s)"
