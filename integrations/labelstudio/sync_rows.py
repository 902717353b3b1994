"""What a sync writes: the payloads Label Studio receives and the ids alweb keeps. Shared by the push
(`sync.py`) and the recovery that settles interrupted or doubled pushes (`reconcile.py`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import connection, models, transaction
from django.utils import timezone

from campaigns.models import Item, Project, Purpose, SelectedItem, Selection, SyncState, TaskType
from campaigns.services.media import item_media_url
from integrations.labelstudio import client as lsc
from integrations.labelstudio import convert
from integrations.labelstudio.label_config import LabelConfigInfo

# Task data key carrying the token of the batch that pushed the task: what a retry looks LS's tasks up by.
BATCH_KEY = "alweb_batch"


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
class SyncContext:
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


def save_synced(ctx: SyncContext, synced: dict[int, tuple[SelectedItem, int]], *, verified: bool) -> None:
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


def _set_task_ids(model: type[models.Model], values: dict[int, int], also: dict[str, Any] | None = None) -> None:
    """UPDATE ls_task_id to a value per row (plus constant columns). On Postgres one join against unnest()ed
    arrays: bulk_update's CASE WHEN grows with the square of the batch and took a third of the sync at 500 rows."""
    if not values:
        return
    also = also or {}
    if connection.vendor != "postgresql":
        model._default_manager.bulk_update(
            [model(pk=pk, ls_task_id=v) for pk, v in values.items()], ["ls_task_id"], batch_size=500
        )
        if also:
            model._default_manager.filter(pk__in=list(values)).update(**also)
        return
    quote = connection.ops.quote_name
    sets = ", ".join(f"{quote(_column(model, name))} = %s" for name in also)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote(model._meta.db_table)} AS t SET ls_task_id = v.value{', ' + sets if sets else ''} "
            "FROM unnest(%s::bigint[], %s::bigint[]) AS v(id, value) WHERE t.id = v.id",
            [*also.values(), list(values), list(values.values())],
        )


def _column(model: type[models.Model], name: str) -> str:
    field = model._meta.get_field(name)
    assert isinstance(field, models.Field) and field.column, f"{name} is not a concrete column of {model.__name__}"
    return field.column


# ---------------------------------------------------------------------------------------------------- payloads


def task_payload(ctx: SyncContext, si: SelectedItem) -> convert.TaskPayload:
    item = si.item
    value = (
        item.text
        if ctx.project.task_type == TaskType.TEXT_CLASSIFICATION
        else item_media_url(item, project=ctx.project)
    )
    data: dict[str, Any] = {ctx.info.data_key: value, "alweb_key": item.key, "alweb_item": item.pk}
    data[BATCH_KEY] = si.sync_batch
    if si.purpose == Purpose.EVALUATION:
        # Visible to annotators and filterable in the Data Manager: this item measures the model and no model chose
        # it. Its prediction carries a score but no label (a suggested label would bias the very labels the model is
        # judged on): the selection has no predicted label for it.
        data["alweb_purpose"] = "evaluation"
        data["alweb_split"] = item.split
    return {"data": data, "predictions": [prediction_payload(ctx, si)]}


def prediction_payload(ctx: SyncContext, si: SelectedItem, *, task_id: int | None = None) -> convert.PredictionPayload:
    if si.uncertainty is not None:
        uncertainty = float(si.uncertainty)
    else:
        # Cold start (no model): a pseudo-uncertainty falling with the rank, so LS serves alweb's order.
        uncertainty = (ctx.selection.size - si.rank) / max(ctx.selection.size, 1)
    result: list[convert.ResultRegion] = []
    label = si.predicted_label
    if ctx.project.task_type == TaskType.OBJECT_DETECTION:
        # The model's boxes as regions the annotator corrects or accepts (none for the evaluation sample or a cold
        # start: the selection kept no boxes for them).
        result = convert.fraction_boxes_result(
            si.boxes or [],
            image_width=si.item.media_width,
            image_height=si.item.media_height,
            known_labels=ctx.info.labels,
            from_name=ctx.info.from_name,
            to_name=ctx.info.to_name,
        )
    elif label and label in ctx.info.labels:
        result = convert.choice_result(label, from_name=ctx.info.from_name, to_name=ctx.info.to_name)
    return convert.prediction(result, uncertainty=uncertainty, model_version=ctx.version, task_id=task_id)
