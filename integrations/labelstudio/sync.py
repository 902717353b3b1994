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
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from django.conf import settings

from campaigns.models import Cycle, Project, SelectedItem, Selection, SyncState
from campaigns.selectors import selected_items_of_cycle
from campaigns.services.cycles import cycle_progress
from integrations.labelstudio import client as lsc
from integrations.labelstudio import convert
from integrations.labelstudio import sync_rows as rows
from integrations.labelstudio.connect import labelstudio_client, labelstudio_connect_project, ls_errors
from integrations.labelstudio.label_config import parse_label_config
from integrations.labelstudio.reconcile import reconcile, recover
from integrations.labelstudio.sync_rows import SyncContext, SyncResult, ls_model_version

__all__ = ["SyncIncomplete", "SyncResult", "cycle_sync_to_labelstudio", "ls_model_version"]

log = logging.getLogger(__name__)
MAX_PASSES = 3


class SyncIncomplete(RuntimeError):
    """Some selected items could not be put in Label Studio (LS refused them); the cycle fails with the reason."""


def cycle_sync_to_labelstudio(*, cycle: Cycle, verify: list[int] | None = None) -> SyncResult:
    """Push the cycle's pending selected items to its project's LS project (created on first use).

    `verify` (a resync from the admin): first check these items' rows (every row of the selection if empty)
    against LS's own listing and repair what LS lacks: a task deleted in LS gets a new one, a missing prediction is
    pushed again, a duplicate is removed, a failed row is retried. Rows LS holds completely are left as they are."""
    selection = Selection.objects.select_related("model_version").get(cycle=cycle)
    project = Project.objects.get(pk=cycle.project_id)
    if project.ls_project_id is None or not project.ls_linked:  # created here, or typed in and not yet checked
        project = labelstudio_connect_project(project=project)
    client = labelstudio_client(project)
    mv = selection.model_version
    version = ls_model_version(version=mv.version if mv else None, cycle_number=cycle.number)
    started = time.monotonic()
    with ls_errors():
        # One GET for the config (tag names, data key), the counts the first pass starts from and the version.
        summary = lsc.project_summary(client, project.ls_project_id or 0, with_config=True)
        info = parse_label_config(summary.label_config, project.task_type)  # type: ignore[arg-type]
        ctx = SyncContext(client, project, selection, info, version, SyncResult(), ls_version=summary.model_version)
        # Rows a resync gave up on are checked first too: LS may hold them complete, in part, or not at all.
        failed = SelectedItem.objects.filter(selection=selection, sync_state=SyncState.FAILED)
        if verify != [] and (failed_ids := list(failed.values_list("item_id", flat=True))):
            verify = sorted({*(verify or []), *failed_ids})
        if verify is not None and _verify(ctx, verify):
            summary = lsc.project_summary(client, ctx.ls_project_id)
        for _ in range(MAX_PASSES):
            # Rows pushed but not verified by an earlier run are looked up in LS before anything is pushed again.
            if recover(ctx):
                summary = lsc.project_summary(client, ctx.ls_project_id)
            if not SelectedItem.objects.filter(selection=selection, sync_state=SyncState.PENDING).exists():
                break
            summary = _push_pending(ctx, summary, cycle_id=cycle.pk, started=started)
        recover(ctx)  # a last pass may have left rows unverified
        if ctx.ls_version != version:
            _follow_model_version(ctx)
    left = list(
        SelectedItem.objects.filter(selection=selection, sync_state=SyncState.PENDING).values_list("item_id", flat=True)
    )
    if left:
        raise SyncIncomplete(f"{len(left)} selected items could not be put in Label Studio (items {left[:10]}...)")
    log.info("cycle %s synced to LS project %s: %s", cycle.pk, ctx.ls_project_id, ctx.result)
    return ctx.result


def _verify(ctx: SyncContext, item_ids: list[int]) -> int:
    """Reconcile the chosen rows with LS in bounded batches; returns how many rows were checked."""
    qs = selected_items_of_cycle(cycle_id=ctx.selection.cycle_id, item_ids=item_ids)
    qs = qs.select_related("item").order_by("rank")
    checked = 0
    size = _batch_size()
    while batch := list(qs[checked : checked + size]):
        expected = {si.item_id: si.ls_task_id or si.item.ls_task_id for si in batch}
        reconcile(ctx, batch, {k: v for k, v in expected.items() if v})
        checked += len(batch)
    log.info("cycle %s: checked %s selected items against LS", ctx.selection.cycle_id, checked)
    return checked


# ---------------------------------------------------------------------------------------------------- push


def _batch_size() -> int:
    return max(1, int(settings.ALWEB_LS_SYNC_BATCH))


# The first batch of a pass is small: nothing overlaps the work before the first POST (reading the rows, marking
# them, building payloads: ~0.1 s per 1,000), so a short first batch puts Label Studio to work sooner. Label
# Studio's cost per request is small beside its cost per task (2,000 tasks in 1, 2 or 4 requests: 2.2-2.5 s).
FIRST_BATCH = 200


@dataclass
class _Prepared:
    """A batch ready to send: its rows marked with a token (committed), its payloads built."""

    rows: list[SelectedItem]
    new: list[SelectedItem]
    to_predict: list[SelectedItem]
    tasks: list[convert.TaskPayload]
    predictions: list[convert.PredictionPayload]


@dataclass
class _Sent:
    task_ids: list[int]
    refused: Exception | None  # LS refused (part of) the predictions import


def _push_pending(ctx: SyncContext, before: lsc.ProjectSummary, *, cycle_id: int, started: float) -> lsc.ProjectSummary:
    """One pass over the pending rows in rank order; LS's counts are compared once, at the end of the pass.

    Two stages overlap: while one batch's POSTs are in flight (a worker thread, HTTP only), the main thread saves
    the previous batch's ids and marks and builds the next batch (the database only). After the last POST the
    closing count GET goes out while the last batch's ids are saved."""
    total = ctx.selection.size
    done = SelectedItem.objects.filter(selection=ctx.selection, sync_state=SyncState.SYNCED).count()
    added_tasks = added_preds = 0
    clean = True
    batches = _pending_batches(ctx)
    closing: Future[lsc.ProjectSummary] | None = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ls-sync") as http:
        current = _prepare(ctx, next(batches, None))
        inflight = http.submit(_send, ctx, current) if current else None
        while current is not None and inflight is not None:
            following = _prepare(ctx, next(batches, None))
            sent = inflight.result()
            if following is not None:
                inflight = http.submit(_send, ctx, following)
            else:  # every POST of the pass has returned: LS's counts can be read while this batch is saved
                inflight, closing = None, http.submit(lsc.project_summary, ctx.client, ctx.ls_project_id)
            pushed = _finish(ctx, current, sent)
            if pushed is None:
                clean = False
            else:
                added_tasks, added_preds = added_tasks + pushed[0], added_preds + pushed[1]
                done += len(current.rows)
                if not ctx.ls_version and pushed[0]:
                    ctx.ls_version = ctx.version  # LS adopts the first imported model_version while it has none
            if ctx.ls_version != ctx.version:
                _follow_model_version(ctx)  # during the pass: LS's stream should use the new predictions at once
            cycle_progress(cycle_id=cycle_id, stage="syncing", done=min(done, total), total=total, started=started)
            current = following
    after = closing.result() if closing is not None else lsc.project_summary(ctx.client, ctx.ls_project_id)
    if ctx.ls_version != ctx.version:  # (a version this pass set may have landed after the closing GET)
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


def _pending_batches(ctx: SyncContext) -> Iterator[list[SelectedItem]]:
    last_rank = -1
    size = min(FIRST_BATCH, _batch_size())
    while True:
        batch = list(
            SelectedItem.objects.filter(selection=ctx.selection, sync_state=SyncState.PENDING, rank__gt=last_rank)
            .select_related("item")
            .order_by("rank")[:size]
        )
        size = _batch_size()
        if not batch:
            return
        last_rank = batch[-1].rank
        yield batch


def _follow_model_version(ctx: SyncContext) -> None:
    """Point the LS project's model_version at this sync's predictions (LS's task stream orders only by those)."""
    try:
        lsc.set_model_version(ctx.client, project_id=ctx.ls_project_id, model_version=ctx.version)
    except lsc.ApiError as exc:
        if exc.status_code != 400:  # 400: no prediction of this version in LS yet (nothing was pushed)
            raise
        return
    ctx.ls_version = ctx.version


def _prepare(ctx: SyncContext, batch: list[SelectedItem] | None) -> _Prepared | None:
    if not batch:
        return None
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
    return _Prepared(
        rows=batch,
        new=new,
        to_predict=to_predict,
        tasks=[rows.task_payload(ctx, si) for si in new],
        predictions=[rows.prediction_payload(ctx, si, task_id=si.item.ls_task_id) for si in to_predict],
    )


def _send(ctx: SyncContext, batch: _Prepared) -> _Sent:
    """HTTP only (runs in the sync's worker thread): the task import, then the predictions import."""
    ids = lsc.import_tasks(ctx.client, project_id=ctx.ls_project_id, tasks=batch.tasks)
    try:
        lsc.import_predictions(ctx.client, project_id=ctx.ls_project_id, predictions=batch.predictions)
    except (lsc.ImportMismatchError, lsc.ApiError) as exc:
        if isinstance(exc, lsc.ApiError) and exc.status_code != 400:
            raise
        return _Sent(ids, exc)
    return _Sent(ids, None)


def _finish(ctx: SyncContext, batch: _Prepared, sent: _Sent) -> tuple[int, int] | None:
    """Save a sent batch's ids; returns the (tasks, predictions) it added, or None if LS refused part of it (the
    batch is then reconciled on the spot)."""
    task_of: dict[int, int] = {si.item_id: int(si.item.ls_task_id or 0) for si in batch.rows if si.item.ls_task_id}
    task_of |= {si.item_id: tid for si, tid in zip(batch.new, sent.task_ids, strict=True)}
    ctx.result.tasks_created += len(batch.new)
    ctx.result.predictions_created += len(batch.new)
    if sent.refused is not None:
        # LS dropped some predictions silently, or refused the whole import because one task is gone (deleted in
        # LS by a person): settle the batch from LS's own listing before any id is saved.
        log.warning("LS project %s refused predictions (%s); reconciling the batch", ctx.ls_project_id, sent.refused)
        reconcile(ctx, batch.rows, task_of)
        return None
    ctx.result.predictions_created += len(batch.to_predict)
    rows.save_synced(ctx, {si.pk: (si, task_of[si.item_id]) for si in batch.rows}, verified=False)
    return len(batch.new), len(batch.new) + len(batch.to_predict)


def _predicted_earlier(ctx: SyncContext, known: list[SelectedItem]) -> set[int]:
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
