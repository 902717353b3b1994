"""Sync: push a cycle's selected items to Label Studio as tasks with alweb's prediction and score, idempotently.

Normal path, per batch of pending SelectedItems in rank order (`ALWEB_LS_SYNC_BATCH`, default 500):
  1. write a batch token on the rows that have none (committed before any POST) — it also goes into task data;
  2. one bulk task import (new items, prediction inline) and one bulk predictions import (items that already have
     a task from an earlier cycle: only the new prediction, never a second task);
  3. one GET of LS's task and prediction counts, compared with what this batch should have added;
  4. save the task ids (Item.ls_task_id, SelectedItem.ls_task_id, synced) in one transaction.

What can go wrong, and what finds it:
  * a crash (or LS killed) between the POST and step 4: the rows keep their token but no task id. The next run
    starts with `_reconcile` on them: it lists LS's tasks carrying those tokens (a Data Manager filter on
    `data.alweb_batch`), keeps one task per item and one prediction per (task, model version), deletes the rest,
    and saves what it found; only what LS really lacks is pushed again.
  * a POST delivered twice (a proxy or client retry): LS's counts exceed the expected ones after step 3, so the
    batch is reconciled before its ids are saved.
Cost in the normal path: one UPDATE, two POSTs, one GET and one transaction per batch; listing only on recovery.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from campaigns.labelstudio import client as lsc
from campaigns.labelstudio import convert
from campaigns.labelstudio.connect import (
    labelstudio_client,
    labelstudio_config_info,
    labelstudio_connect_project,
    ls_errors,
)
from campaigns.labelstudio.label_config import LabelConfigInfo
from campaigns.models import Cycle, Item, Project, SelectedItem, Selection, SyncState, TaskType
from campaigns.services.cycles import cycle_progress
from campaigns.services.media import item_media_url

log = logging.getLogger(__name__)
DEFAULT_BATCH = 500
MAX_PASSES = 3
BATCH_KEY = "alweb_batch"


class SyncIncomplete(RuntimeError):
    """Some selected items could not be put in Label Studio (LS refused them); the cycle fails with the reason."""


@dataclass
class SyncResult:
    tasks_created: int = 0
    predictions_created: int = 0
    already_there: int = 0  # found in LS (or in an earlier cycle's sync) instead of being pushed again
    duplicates_removed: int = 0


def ls_model_version(*, version: int | None, cycle_number: int) -> str:
    """The model_version string LS sees: the alweb ModelVersion, or the cycle for a cold start (no model)."""
    return f"alweb-v{version}" if version is not None else f"cold-start-c{cycle_number}"


@dataclass
class _Ctx:
    client: lsc.LabelStudio
    project: Project
    selection: Selection
    info: LabelConfigInfo
    version: str
    result: SyncResult

    version_set: bool = False

    @property
    def ls_project_id(self) -> int:
        assert self.project.ls_project_id is not None
        return self.project.ls_project_id


def cycle_sync_to_labelstudio(*, cycle: Cycle) -> SyncResult:
    """Push the cycle's pending selected items to its project's LS project (created on first use)."""
    selection = Selection.objects.select_related("model_version").get(cycle=cycle)
    project = Project.objects.get(pk=cycle.project_id)
    if project.ls_project_id is None:
        project = labelstudio_connect_project(project=project)
    client = labelstudio_client(project)
    mv = selection.model_version
    version = ls_model_version(version=mv.version if mv else None, cycle_number=cycle.number)
    ctx = _Ctx(client, project, selection, labelstudio_config_info(client, project), version, SyncResult())
    started = time.monotonic()
    with ls_errors():
        for _ in range(MAX_PASSES):
            # Rows marked by an earlier attempt are looked up in LS before anything is pushed again.
            _recover(ctx)
            if not SelectedItem.objects.filter(selection=selection, sync_state=SyncState.PENDING).exists():
                break
            _push_pending(ctx, cycle_id=cycle.pk, started=started)
        _follow_model_version(ctx)
    left = list(
        SelectedItem.objects.filter(selection=selection, sync_state=SyncState.PENDING).values_list("item_id", flat=True)
    )
    if left:
        raise SyncIncomplete(f"{len(left)} selected items could not be put in Label Studio (items {left[:10]}...)")
    log.info("cycle %s synced to LS project %s: %s", cycle.pk, ctx.ls_project_id, ctx.result)
    return ctx.result


# ---------------------------------------------------------------------------------------------------- push


def _batch_size() -> int:
    return max(1, int(getattr(settings, "ALWEB_LS_SYNC_BATCH", DEFAULT_BATCH)))


def _push_pending(ctx: _Ctx, *, cycle_id: int, started: float) -> None:
    total = ctx.selection.size
    done = SelectedItem.objects.filter(selection=ctx.selection, sync_state=SyncState.SYNCED).count()
    tasks_now, preds_now = lsc.project_counts(ctx.client, ctx.ls_project_id)
    last_rank = -1
    while True:
        batch = list(
            SelectedItem.objects.filter(selection=ctx.selection, sync_state=SyncState.PENDING, rank__gt=last_rank)
            .select_related("item")
            .order_by("rank")[: _batch_size()]
        )
        if not batch:
            return
        last_rank = batch[-1].rank
        tasks_now, preds_now, synced = _push_batch(ctx, batch, tasks_now, preds_now)
        _follow_model_version(ctx)  # after the first batch: LS refuses a version no prediction carries yet
        done += synced
        cycle_progress(cycle_id=cycle_id, stage="syncing", done=done, total=total, started=started)


def _follow_model_version(ctx: _Ctx) -> None:
    """Point the LS project's model_version at this sync's predictions (LS's task stream orders only by those)."""
    if ctx.version_set:
        return
    try:
        lsc.set_model_version(ctx.client, project_id=ctx.ls_project_id, model_version=ctx.version)
    except lsc.ApiError as exc:
        if exc.status_code != 400:  # 400: no prediction of this version in LS yet (nothing was pushed)
            raise
        return
    ctx.version_set = True


def _push_batch(ctx: _Ctx, batch: list[SelectedItem], tasks_before: int, preds_before: int) -> tuple[int, int, int]:
    """Push one batch; returns LS's (tasks, predictions) counts afterwards and how many rows it marked synced."""
    token = secrets.token_hex(8)
    unmarked = [si.pk for si in batch if not si.sync_batch]
    if unmarked:  # committed before the POST: a retry must know LS may hold these
        SelectedItem.objects.filter(pk__in=unmarked, sync_batch="").update(sync_batch=token)
    for si in batch:
        si.sync_batch = si.sync_batch or token
    known = [si for si in batch if si.item.ls_task_id is not None]
    new = [si for si in batch if si.item.ls_task_id is None]
    done_before = _predicted_earlier(ctx, known)
    to_predict = [si for si in known if si.item_id not in done_before]
    ctx.result.already_there += len(known) - len(to_predict)

    ids = lsc.import_tasks(ctx.client, project_id=ctx.ls_project_id, tasks=[_task_payload(ctx, si) for si in new])
    task_of: dict[int, int] = {si.item_id: int(si.item.ls_task_id or 0) for si in known}
    task_of |= {si.item_id: tid for si, tid in zip(new, ids, strict=True)}
    mismatch = False
    try:
        lsc.import_predictions(
            ctx.client,
            project_id=ctx.ls_project_id,
            predictions=[_prediction(ctx, si, task_id=task_of[si.item_id]) for si in to_predict],
        )
    except lsc.ImportMismatchError as exc:  # LS dropped some silently (e.g. a label it does not know)
        log.warning("LS project %s: %s", ctx.ls_project_id, exc)
        mismatch = True
    except lsc.ApiError as exc:
        if exc.status_code != 400:
            raise
        # LS refuses the whole import when one task is gone (deleted in LS by a person): find out which.
        log.warning("LS project %s refused a predictions import (400); reconciling the batch", ctx.ls_project_id)
        mismatch = True
    ctx.result.tasks_created += len(new)
    ctx.result.predictions_created += len(new) + (0 if mismatch else len(to_predict))

    tasks_now, preds_now = lsc.project_counts(ctx.client, ctx.ls_project_id)
    if mismatch or tasks_now > tasks_before + len(new) or preds_now > preds_before + len(new) + len(to_predict):
        # More reached LS than this batch sent (a POST delivered twice), or LS refused part of it: settle the
        # batch from LS's own listing before any id is saved.
        log.warning("LS project %s: counts off after a batch, reconciling %s items", ctx.ls_project_id, len(batch))
        synced = _reconcile(ctx, batch, task_of)
        tasks_now, preds_now = lsc.project_counts(ctx.client, ctx.ls_project_id)
        return tasks_now, preds_now, synced
    _save(ctx, {si.pk: (si, task_of[si.item_id]) for si in batch})
    return tasks_now, preds_now, len(batch)


def _predicted_earlier(ctx: _Ctx, known: list[SelectedItem]) -> set[int]:
    """Items whose task already got this model version's prediction from an earlier cycle's sync."""
    if not known or ctx.selection.model_version_id is None:
        return set()
    return set(
        SelectedItem.objects.filter(
            item_id__in=[si.item_id for si in known],
            sync_state=SyncState.SYNCED,
            selection__model_version_id=ctx.selection.model_version_id,
        )
        .exclude(selection=ctx.selection)
        .values_list("item_id", flat=True)
    )


def _save(ctx: _Ctx, synced: dict[int, tuple[SelectedItem, int]]) -> None:
    now = timezone.now()
    items, rows = [], []
    for si, task_id in synced.values():
        if si.item.ls_task_id != task_id:
            si.item.ls_task_id = task_id
            items.append(si.item)
        si.ls_task_id, si.sync_state, si.synced_at, si.sync_error = task_id, SyncState.SYNCED, now, ""
        rows.append(si)
    with transaction.atomic():
        Item.objects.bulk_update(items, ["ls_task_id"], batch_size=1000)
        SelectedItem.objects.bulk_update(rows, ["ls_task_id", "sync_state", "synced_at", "sync_error"], batch_size=1000)


# ---------------------------------------------------------------------------------------------------- payloads


def _task_payload(ctx: _Ctx, si: SelectedItem) -> convert.TaskPayload:
    item = si.item
    value = item.text if ctx.project.task_type == TaskType.TEXT_CLASSIFICATION else item_media_url(item)
    data: dict[str, Any] = {ctx.info.data_key: value, "alweb_key": item.key, "alweb_item": item.pk}
    data[BATCH_KEY] = si.sync_batch
    return {"data": data, "predictions": [_prediction(ctx, si)]}


def _prediction(ctx: _Ctx, si: SelectedItem, *, task_id: int | None = None) -> convert.PredictionPayload:
    if si.uncertainty is not None:
        uncertainty = float(si.uncertainty)
    else:
        # Cold start (no model): a pseudo-uncertainty falling with the rank, so LS serves alweb's order.
        uncertainty = (ctx.selection.size - si.rank) / max(ctx.selection.size, 1)
    result: list[convert.ResultRegion] = []
    label = si.predicted_label
    if ctx.project.task_type != TaskType.OBJECT_DETECTION and label and label in ctx.info.labels:
        result = convert.choice_result(label, from_name=ctx.info.from_name, to_name=ctx.info.to_name)
    # Detection: the selection keeps an image score, not boxes, so the prediction carries the score only.
    return convert.prediction(result, uncertainty=uncertainty, model_version=ctx.version, task_id=task_id)


# ---------------------------------------------------------------------------------------------------- recovery


def _recover(ctx: _Ctx) -> None:
    """Settle rows an earlier, interrupted run marked but never saved: LS may hold their tasks or predictions."""
    attempted = list(
        SelectedItem.objects.filter(selection=ctx.selection, sync_state=SyncState.PENDING)
        .exclude(sync_batch="")
        .select_related("item")
        .order_by("rank")
    )
    if attempted:
        log.info(
            "cycle %s: %s items were pushed before without saving; reconciling", ctx.selection.cycle_id, len(attempted)
        )
        _reconcile(ctx, attempted, {si.item_id: si.item.ls_task_id for si in attempted if si.item.ls_task_id})


def _reconcile(ctx: _Ctx, sis: list[SelectedItem], expected: dict[int, int]) -> int:
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
    for si in sis:
        ids = sorted(int(t["id"]) for t in by_item.get(si.item_id, []))
        want = expected.get(si.item_id)
        keep = want if want in ids else (ids[0] if ids else None)
        if keep is None:
            if si.item.ls_task_id is not None:  # its task was deleted in LS: it gets a new one
                lost.append(si.item_id)
                si.item.ls_task_id = None
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
                predictions=[_prediction(ctx, si, task_id=t) for si, t in need_prediction],
            )
            complete |= {si.pk: (si, t) for si, t in need_prediction}
            ctx.result.predictions_created += len(need_prediction)
        except lsc.ImportMismatchError as exc:
            log.warning("LS project %s: %s; they stay pending", ctx.ls_project_id, exc)
    _save(ctx, complete)
    return len(complete)
