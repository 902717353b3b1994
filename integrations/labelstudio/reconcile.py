"""Settling pushes Label Studio may hold once, twice or not at all: after a crash between LS's import and alweb's
save, or a POST delivered twice. Works from LS's own listing of the tasks carrying the rows' batch tokens (a Data
Manager filter on `data.alweb_batch`): one task per item and one prediction per (task, model version) stay, the
rest is deleted, what is complete is saved, and only what LS lacks is pushed again. Runs only on recovery.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

from campaigns.models import Item, SelectedItem, SyncState
from integrations.labelstudio import client as lsc
from integrations.labelstudio import sync_rows as rows
from integrations.labelstudio.sync_rows import BATCH_KEY, SyncContext

log = logging.getLogger(__name__)


def recover(ctx: SyncContext) -> bool:
    """Settle rows an earlier run pushed without verifying: LS may hold their tasks or predictions, once or twice.
    Returns whether there were any."""
    unsettled = list(
        SelectedItem.objects.filter(selection=ctx.selection)
        .exclude(sync_batch="")
        .select_related("item")
        .order_by("rank")
    )
    if not unsettled:
        return False
    log.info("cycle %s: settling %s rows pushed but not verified", ctx.selection.cycle_id, len(unsettled))
    expected = {si.item_id: si.ls_task_id or si.item.ls_task_id for si in unsettled}
    reconcile(ctx, unsettled, {k: v for k, v in expected.items() if v})
    return True


def reconcile(ctx: SyncContext, sis: list[SelectedItem], expected: dict[int, int]) -> int:
    """Make LS hold exactly one task per item and one prediction of this model version per task, from LS's own
    listing; save the rows that are complete and return how many. Rows whose task is missing stay pending (their
    Item.ls_task_id cleared if that task is gone) for the next pass; a missing prediction is pushed here."""
    by_item: dict[int, list[dict[str, Any]]] = defaultdict(list)
    seen: dict[int, dict[str, Any]] = {}
    for token in sorted({si.sync_batch for si in sis if si.sync_batch}):
        for task in lsc.iter_tasks(ctx.client, project_id=ctx.ls_project_id, data_equals=(BATCH_KEY, token)):
            seen[int(task["id"])] = task
    missing = [t for t in expected.values() if t and t not in seen]
    for task in lsc.iter_tasks(ctx.client, project_id=ctx.ls_project_id, task_ids=missing) if missing else ():
        seen[int(task["id"])] = task
    ours = {si.item_id for si in sis}
    for task in seen.values():
        item_id = (task.get("data") or {}).get("alweb_item")
        if item_id in ours:
            by_item[int(item_id)].append(task)
    for item_id, task_id in expected.items():
        if task_id in seen and seen[task_id] not in by_item[item_id]:
            by_item[item_id].append(seen[task_id])

    extra_tasks: list[int] = []
    extra_preds: list[int] = []
    complete: dict[int, tuple[SelectedItem, int]] = {}
    need_prediction: list[tuple[SelectedItem, int]] = []
    lost: list[int] = []
    reopened: list[int] = []
    for si in sis:
        ids = sorted(int(t["id"]) for t in by_item.get(si.item_id, []))
        want = expected.get(si.item_id)
        keep = want if want in ids else (ids[0] if ids else None)
        if keep is None:
            if si.item.ls_task_id is not None:  # its task was deleted in LS: it gets a new one
                lost.append(si.item_id)
                si.item.ls_task_id = None
            if si.sync_state != SyncState.PENDING:
                reopened.append(si.pk)
            continue
        extra_tasks += [t for t in ids if t != keep]
        preds = sorted(
            (p for p in seen[keep].get("predictions") or [] if str(p.get("model_version")) == ctx.version),
            key=lambda p: int(p["id"]),
        )
        extra_preds += [int(p["id"]) for p in preds[1:]]
        if preds:
            complete[si.pk] = (si, keep)
        else:
            need_prediction.append((si, keep))
    if lost:
        Item.objects.filter(pk__in=lost).update(ls_task_id=None)
    if reopened:
        SelectedItem.objects.filter(pk__in=reopened).update(sync_state=SyncState.PENDING, ls_task_id=None)
    lsc.delete_tasks(ctx.client, project_id=ctx.ls_project_id, task_ids=extra_tasks)
    lsc.delete_predictions(ctx.client, prediction_ids=extra_preds)
    ctx.result.duplicates_removed += len(extra_tasks) + len(extra_preds)
    ctx.result.already_there += len(complete)
    if extra_tasks or extra_preds:
        log.warning(
            "LS project %s: removed %s duplicate tasks, %s duplicate predictions",
            ctx.ls_project_id,
            len(extra_tasks),
            len(extra_preds),
        )
    if need_prediction:
        try:
            lsc.import_predictions(
                ctx.client,
                project_id=ctx.ls_project_id,
                predictions=[rows.prediction_payload(ctx, si, task_id=t) for si, t in need_prediction],
            )
            complete |= {si.pk: (si, t) for si, t in need_prediction}
            ctx.result.predictions_created += len(need_prediction)
        except lsc.ImportMismatchError as exc:
            log.warning("LS project %s: %s; they stay pending", ctx.ls_project_id, exc)
    rows.save_synced(ctx, complete, verified=True)
    return len(complete)
