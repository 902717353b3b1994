"""Annotator ops (the admin's actions): requeue a cycle whose work stopped, resync selected items with Label Studio.

Both only enqueue idempotent tasks after commit, so pressing a button twice, or on a cycle a worker is already
carrying on, costs at most a task that finds nothing to do.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from campaigns.models import Cycle, CycleState, Item, SelectedItem, SyncState
from campaigns.selectors import selected_items_of_cycle
from campaigns.services.cycles import InvalidTransition
from campaigns.services.dashboard import RESUME_TASKS, cycle_retry_and_resume
from campaigns.services.pipeline import enqueue_on_commit

S = CycleState
WAITING_FOR_LABELS = (S.LABELING, S.COLLECTING)


def _last_progress(cycle: Cycle) -> datetime:
    stamp = (cycle.progress or {}).get("updated_at")
    try:
        moment = datetime.fromisoformat(stamp) if isinstance(stamp, str) else None
    except ValueError:
        moment = None
    return max(moment or cycle.updated_at, cycle.updated_at)


def cycle_requeue(*, cycle: Cycle, now: datetime | None = None) -> str:
    """Send a stopped cycle's work again; returns what was done, in words.

    failed → put back in the stage it failed in and enqueue it; a working stage (training, scoring, syncing) whose
    progress has not moved for ALWEB_REQUEUE_STALE_AFTER → enqueue that stage's task again (it resumes where the
    lost one stopped); labeling / collecting → pull annotations now. Anything else is refused with the reason.
    """
    if cycle.state == S.FAILED:
        return f"put back in {cycle_retry_and_resume(cycle=cycle)}"
    if cycle.state in WAITING_FOR_LABELS:
        with transaction.atomic():
            enqueue_on_commit("project_pull", project_id=cycle.project_id)
        return "annotations pull queued"
    task = RESUME_TASKS.get(cycle.state)
    if task is None:
        raise InvalidTransition(f"cycle {cycle.number} is {cycle.state}: nothing to requeue")
    quiet = (now or timezone.now()) - _last_progress(cycle)
    stale_after = timedelta(seconds=settings.ALWEB_REQUEUE_STALE_AFTER)
    if quiet < stale_after:
        raise InvalidTransition(
            f"cycle {cycle.number} is {cycle.state} and moved {int(quiet.total_seconds())} s ago: a worker has it "
            f"(requeue once it has not moved for {int(stale_after.total_seconds())} s)"
        )
    with transaction.atomic():
        enqueue_on_commit(task, cycle_id=cycle.pk)
    return f"{task} queued again"


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
            enqueue_on_commit("cycle_resync", cycle_id=cycle.pk, item_ids=sorted(item_ids or []))
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


def cycle_run_resync(*, cycle_id: int, item_ids: list[int]) -> None:
    """The resync task's work: nothing if the cycle has moved on (closed, cancelled) since it was queued."""
    from campaigns.labelstudio.sync import cycle_sync_to_labelstudio

    cycle = Cycle.objects.filter(pk=cycle_id, state__in=WAITING_FOR_LABELS).first()
    if cycle is not None:
        cycle_sync_to_labelstudio(cycle=cycle, verify=item_ids)


def cycle_resync_failed(*, cycle_id: int, item_ids: list[int], reason: str) -> int:
    """A resync gave up (Label Studio unreachable past the retries, or an error no retry fixes): its rows are marked
    failed with the reason, so the admin's sync-state filter finds them; the next resync or sync of the cycle checks
    them against LS first and repairs them. Returns how many rows were marked."""
    rows = selected_items_of_cycle(cycle_id=cycle_id, item_ids=item_ids)
    return rows.update(sync_state=SyncState.FAILED, sync_error=f"resync failed: {reason}"[:2000])
