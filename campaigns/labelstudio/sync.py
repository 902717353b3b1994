"""Sync: push a cycle's selected items to Label Studio as tasks with alweb's prediction and score, idempotently.

Normal path, one pass over the pending SelectedItems in rank order, in batches (`ALWEB_LS_SYNC_BATCH`, 1000):
  1. per batch, write a token on its rows (committed before any POST; it also goes into each task's data);
  2. one bulk task import (new items, prediction inline) and one bulk predictions import (items that already have
     a task from an earlier cycle: only the new prediction, never a second task);
  3. save the task ids (Item.ls_task_id, SelectedItem.ls_task_id, synced) in one transaction;
  and once per pass, LS's task and prediction counts before and after: if LS holds no more than the pass sent,
  nothing arrived twice and the tokens are cleared in one UPDATE. A row that still has a token is "pushed, not
  verified".

What can go wrong, and what finds it:
  * a crash (or LS killed) anywhere after a token was written: the next run starts with `_recover`, which lists
    LS's tasks carrying the unverified tokens (a Data Manager filter on `data.alweb_batch`), keeps one task per
    item and one prediction per (task, model version), deletes the rest, saves what it found and clears the
    tokens; only what LS really lacks is pushed again;
  * a POST delivered twice (a proxy or client retry): the counts at the end of the pass exceed what was sent, so
    the tokens stay and the next pass's `_recover` settles them the same way;
  * a predictions import LS refuses (a task deleted in LS): that batch is reconciled on the spot; an item whose
    task is gone gets a new one in the next pass.
Cost in the normal path: per batch one UPDATE, two POSTs and one transaction; per pass two count GETs and one
UPDATE. Listing LS's tasks happens only on recovery.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from campaigns.labelstudio import client as lsc
from campaigns.labelstudio import convert
from campaigns.labelstudio.connect import labelstudio_client, labelstudio_connect_project, ls_errors
from campaigns.labelstudio.label_config import LabelConfigInfo, parse_label_config
from campaigns.models import Cycle, Item, Project, SelectedItem, Selection, SyncState, TaskType
from campaigns.services.cycles import cycle_progress
from campaigns.services.media import item_media_url

log = logging.getLogger(__name__)
# Bounded requests (a 1000-task import with predictions is ~1.3 s and ~1 MB); fewer, larger ones cost LS less.
DEFAULT_BATCH = 1000
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
    ls_version: str = ""  # the LS project's model_version as last seen

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
    started = time.monotonic()
    with ls_errors():
        # One GET for the config (tag names, data key), the counts the first pass starts from and the version.
        summary = lsc.project_summary(client, project.ls_project_id or 0, with_config=True)
        info = parse_label_config(summary.label_config, project.task_type)  # type: ignore[arg-type]
        ctx = _Ctx(client, project, selection, info, version, SyncResult(), ls_version=summary.model_version)
        for _ in range(MAX_PASSES):
            # Rows pushed but not verified by an earlier run are looked up in LS before anything is pushed again.
            if _recover(ctx):
                summary = lsc.project_summary(client, ctx.ls_project_id)
            if not SelectedItem.objects.filter(selection=selection, sync_state=SyncState.PENDING).exists():
                break
            summary = _push_pending(ctx, summary, cycle_id=cycle.pk, started=started)
        _recover(ctx)  # a last pass may have left rows unverified
        if ctx.ls_version != version:
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


def _push_pending(ctx: _Ctx, before: lsc.ProjectSummary, *, cycle_id: int, started: float) -> lsc.ProjectSummary:
    """One pass over the pending rows in rank order; LS's counts are compared once, at the end of the pass."""
    total = ctx.selection.size
    done = SelectedItem.objects.filter(selection=ctx.selection, sync_state=SyncState.SYNCED).count()
    added_tasks = added_preds = 0
    clean = True
    last_rank = -1
    while True:
        batch = list(
            SelectedItem.objects.filter(selection=ctx.selection, sync_state=SyncState.PENDING, rank__gt=last_rank)
            .select_related("item")
            .order_by("rank")[: _batch_size()]
        )
        if not batch:
            break
        last_rank = batch[-1].rank
        pushed = _push_batch(ctx, batch)
        if pushed is None:
            clean = False
        else:
            added_tasks, added_preds = added_tasks + pushed[0], added_preds + pushed[1]
            done += len(batch)
            if not ctx.ls_version and pushed[0]:
                ctx.ls_version = ctx.version  # LS adopts the first imported model_version while it has none
        if ctx.ls_version != ctx.version:
            _follow_model_version(ctx)  # during the pass: LS's stream should use the new predictions at once
        cycle_progress(cycle_id=cycle_id, stage="syncing", done=min(done, total), total=total, started=started)
    after = lsc.project_summary(ctx.client, ctx.ls_project_id)
    ctx.ls_version = after.model_version
    if clean and after.tasks <= before.tasks + added_tasks and after.predictions <= before.predictions + added_preds:
        # LS holds no more than this pass sent: nothing arrived twice. The rows' tokens have done their job.
        SelectedItem.objects.filter(selection=ctx.selection, sync_state=SyncState.SYNCED).exclude(sync_batch="").update(
            sync_batch=""
        )
    else:
        # More arrived than was sent (a POST delivered twice) or a batch was refused in part: the rows keep their
        # tokens and the next pass's `_recover` settles them from LS's own listing.
        log.warning(
            "LS project %s: %s tasks / %s predictions more than sent (or a refused batch); reconciling",
            ctx.ls_project_id,
            after.tasks - before.tasks - added_tasks,
            after.predictions - before.predictions - added_preds,
        )
    return after


def _follow_model_version(ctx: _Ctx) -> None:
    """Point the LS project's model_version at this sync's predictions (LS's task stream orders only by those)."""
    try:
        lsc.set_model_version(ctx.client, project_id=ctx.ls_project_id, model_version=ctx.version)
    except lsc.ApiError as exc:
        if exc.status_code != 400:  # 400: no prediction of this version in LS yet (nothing was pushed)
            raise
        return
    ctx.ls_version = ctx.version


def _push_batch(ctx: _Ctx, batch: list[SelectedItem]) -> tuple[int, int] | None:
    """Push one batch and save its ids; returns the (tasks, predictions) it added, or None if LS refused part of
    it (the batch was then reconciled on the spot)."""
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
    ctx.result.tasks_created += len(new)
    ctx.result.predictions_created += len(new)
    try:
        lsc.import_predictions(
            ctx.client,
            project_id=ctx.ls_project_id,
            predictions=[_prediction(ctx, si, task_id=task_of[si.item_id]) for si in to_predict],
        )
    except (lsc.ImportMismatchError, lsc.ApiError) as exc:
        if isinstance(exc, lsc.ApiError) and exc.status_code != 400:
            raise
        # LS dropped some predictions silently, or refused the whole import because one task is gone (deleted in
        # LS by a person): settle the batch from LS's own listing before any id is saved.
        log.warning("LS project %s refused predictions (%s); reconciling the batch", ctx.ls_project_id, exc)
        _reconcile(ctx, batch, task_of)
        return None
    ctx.result.predictions_created += len(to_predict)
    _save(ctx, {si.pk: (si, task_of[si.item_id]) for si in batch}, verified=False)
    return len(new), len(new) + len(to_predict)


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


def _save(ctx: _Ctx, synced: dict[int, tuple[SelectedItem, int]], *, verified: bool) -> None:
    """Store task ids and mark the rows synced; `verified` also clears their token (LS was checked for them)."""
    now = timezone.now()
    items = {si.item_id: task_id for si, task_id in synced.values() if si.item.ls_task_id != task_id}
    rows = {si.pk: task_id for si, task_id in synced.values()}
    for si, task_id in synced.values():
        si.item.ls_task_id = si.ls_task_id = task_id
        si.sync_state, si.synced_at, si.sync_error = SyncState.SYNCED, now, ""
    done: dict[str, Any] = {"sync_state": SyncState.SYNCED, "synced_at": now, "sync_error": ""}
    if verified:
        done["sync_batch"] = ""
    with transaction.atomic():
        _set_task_ids(Item, items)
        _set_task_ids(SelectedItem, rows, also=done)


def _set_task_ids(
    model: type[Item] | type[SelectedItem], values: dict[int, int], also: dict[str, Any] | None = None
) -> None:
    """UPDATE ls_task_id to a value per row (plus constant columns). On Postgres one join against unnest()ed
    arrays: bulk_update's CASE WHEN grows with the square of the batch and took a third of the sync at 500 rows."""
    if not values:
        return
    also = also or {}
    if connection.vendor != "postgresql":
        model.objects.bulk_update(  # type: ignore[attr-defined]
            [model(pk=pk, ls_task_id=v) for pk, v in values.items()], ["ls_task_id"], batch_size=500
        )
        if also:
            model.objects.filter(pk__in=list(values)).update(**also)  # type: ignore[attr-defined]
        return
    quote = connection.ops.quote_name
    sets = ", ".join(f"{quote(model._meta.get_field(name).column)} = %s" for name in also)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote(model._meta.db_table)} AS t SET ls_task_id = v.value{', ' + sets if sets else ''} "
            "FROM unnest(%s::bigint[], %s::bigint[]) AS v(id, value) WHERE t.id = v.id",
            [*also.values(), list(values), list(values.values())],
        )


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


def _recover(ctx: _Ctx) -> bool:
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
    _reconcile(ctx, unsettled, {k: v for k, v in expected.items() if v})
    return True


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
                predictions=[_prediction(ctx, si, task_id=t) for si, t in need_prediction],
            )
            complete |= {si.pk: (si, t) for si, t in need_prediction}
            ctx.result.predictions_created += len(need_prediction)
        except lsc.ImportMismatchError as exc:
            log.warning("LS project %s: %s; they stay pending", ctx.ls_project_id, exc)
    _save(ctx, complete, verified=True)
    return len(complete)
