"""Export reads: the rows of a project's dataset, page by page, with what each item's history adds (annotators,
agreement, the cycle that selected it and its score then, the latest prediction), and a project's exports.

Pages are keyset-paginated (item id, or a snapshot's position), never one long query: a million-item export holds
one page in memory and no transaction open for minutes. Each page costs four queries whatever its size.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.db.models import Max, Min, QuerySet

from campaigns.models import (
    Annotation,
    Cycle,
    Export,
    Item,
    ItemState,
    Project,
    Score,
    SelectedItem,
    TrainingSetItem,
)
from campaigns.states import ABANDONED_STATES
from models_registry.models import ModelStatus, ModelVersion

_MAX_SPAN = 1 << 24  # ids skipped at most per page over a stretch of other projects' items
_ITEM_FIELDS = (
    "pk",
    "key",
    "split",
    "text",
    "media",
    "url",
    "media_width",
    "media_height",
    "label",
    "label_source",
    "source",
    "metadata",
)


@dataclass(slots=True)
class ExportRow:
    key: str
    split: str
    text: str
    media: str  # the storage name of the item's image ("" for text or a URL)
    url: str
    width: int | None
    height: int | None
    label: Any
    label_source: str
    source: str
    metadata: dict[str, Any]
    item_id: int
    annotators: list[str] = field(default_factory=list)
    agreement: float | None = None
    selected_cycle: int | None = None
    selection_score: float | None = None
    predicted_label: str = ""
    confidence: float | None = None


def _row(values: tuple[Any, ...], label: Any = None, *, snapshot: bool = False) -> ExportRow:
    pk, key, split, text, media, url, width, height, current, source_of_label, source, metadata = values
    return ExportRow(
        key=key,
        split=split,
        text=text,
        media=media or "",
        url=url,
        width=width,
        height=height,
        # A snapshot exports the label the model was trained on, not the item's label today.
        label=label if snapshot else current,
        label_source=source_of_label,
        source=source,
        metadata=metadata or {},
        item_id=pk,
    )


def _enrich(rows: list[ExportRow], *, items: dict[str, Any], max_cycle: int | None) -> None:
    """Annotators and agreement from the live annotations; the selecting cycle and its score; the latest prediction.
    `items` filters the page's items: an id range for a page in id order (a list of thousands of ids costs more to
    send and plan than the rows it finds), the ids themselves for a snapshot's page. `max_cycle`: a snapshot sees no
    cycle after its own."""
    answers: dict[int, list[tuple[str, Any]]] = defaultdict(list)
    live = Annotation.objects.filter(**items, deleted_at__isnull=True, was_cancelled=False)
    for item_id, annotator, value in live.values_list("item_id", "annotator", "value"):
        answers[item_id].append((annotator, value))
    selected = SelectedItem.objects.filter(**items).exclude(selection__cycle__state__in=ABANDONED_STATES)
    scores = Score.objects.filter(**items)
    if max_cycle is not None:
        selected = selected.filter(selection__cycle__number__lte=max_cycle)
        scores = scores.filter(cycle__number__lte=max_cycle)
    # Ordered by cycle: the last row per item wins, i.e. the latest cycle's.
    picks = {
        item_id: (number, score)
        for item_id, number, score in selected.order_by("selection__cycle__number").values_list(
            "item_id", "selection__cycle__number", "uncertainty"
        )
    }
    scores = scores.order_by("item_id", "-cycle__number")
    if connection.vendor == "postgresql":
        scores = scores.distinct("item_id")  # DISTINCT ON: one row per item, however many cycles scored it
    predictions: dict[int, tuple[str, float | None]] = {}
    for item_id, predicted, confidence in scores.values_list("item_id", "predicted_label", "confidence"):
        predictions.setdefault(item_id, (predicted, confidence))
    for row in rows:
        given = answers.get(row.item_id)
        if given:
            row.annotators = sorted({name for name, _ in given if name})
            if row.label is not None:
                row.agreement = sum(1 for _, value in given if value == row.label) / len(given)
        if row.item_id in picks:
            row.selected_cycle, row.selection_score = picks[row.item_id]
        if row.item_id in predictions:
            row.predicted_label, row.confidence = predictions[row.item_id]


def export_pages(*, project: Project, page_size: int, labeled_only: bool = True) -> Iterator[list[ExportRow]]:
    """The project's active items (invalid and skipped ones are out of the dataset, as out of training), labeled
    ones only unless asked, in id order, one page at a time.

    Each page is bounded in ids as well as in rows (`id > last AND id <= last + span`), so its cost never depends
    on the plan: right after a million-row import, before Postgres has gathered statistics, the planner takes the
    project for a few rows and would fetch and sort all the rest for every page (quadratic). `span` doubles over
    sparse stretches (other projects' ids) and falls back to one page's worth where rows are dense."""
    own = Item.objects.filter(project=project)
    bounds = own.aggregate(low=Min("pk"), high=Max("pk"))  # both ends of the (project, id) index
    if bounds["low"] is None:
        return
    items = own.filter(state=ItemState.ACTIVE)
    if labeled_only:
        items = items.filter(label__isnull=False)
    last, span = bounds["low"] - 1, page_size
    while last < bounds["high"]:
        window = items.filter(pk__gt=last, pk__lte=last + span).order_by("pk")
        page = list(window.values_list(*_ITEM_FIELDS)[:page_size])
        full = len(page) == page_size
        upper = page[-1][0] if full else last + span
        if page:
            rows = [_row(values) for values in page]
            # Every item of the project in (last, upper] is on the page or filtered out above: the range is exact.
            _enrich(rows, items={"item__project": project, "item_id__gt": last, "item_id__lte": upper}, max_cycle=None)
            yield rows
        last, span = upper, page_size if full else min(span * 2, _MAX_SPAN)


def snapshot_pages(*, model_version: ModelVersion, cycle_number: int, page_size: int) -> Iterator[list[ExportRow]]:
    """The recorded training set of `model_version` in its hash order (by key), with the labels it was trained on."""
    last = -1
    fields = ("position", "label", *(f"item__{name}" for name in _ITEM_FIELDS))
    while True:
        page = list(
            TrainingSetItem.objects.filter(model_version=model_version, position__gt=last)
            .order_by("position")
            .values_list(*fields)[:page_size]
        )
        if not page:
            return
        last = page[-1][0]
        rows = [_row(values[2:], values[1], snapshot=True) for values in page]
        _enrich(rows, items={"item_id__in": [r.item_id for r in rows]}, max_cycle=cycle_number)
        yield rows


def export_count(*, project: Project, labeled_only: bool = True) -> int:
    items = Item.objects.filter(project=project, state=ItemState.ACTIVE)
    return (items.filter(label__isnull=False) if labeled_only else items).count()


def snapshot_count(*, model_version: ModelVersion) -> int:
    return TrainingSetItem.objects.filter(model_version=model_version).count()


def snapshot_model_version(*, project: Project, cycle_number: int) -> tuple[Cycle | None, ModelVersion | None]:
    """Cycle `cycle_number` of the project and the model version it trained and scored with (None where it has
    none: a cold start or an external model scores without training). The cycle's own link first: a cycle may
    start from the model trained when the previous one closed, and that is the model whose training set it used."""
    cycle = Cycle.objects.filter(project=project, number=cycle_number).select_related("model_version").first()
    if cycle is None:
        return None, None
    version = cycle.model_version
    if version is None:
        trained = ModelVersion.objects.filter(project=project, status=ModelStatus.READY, params__cycle_id=cycle.pk)
        version = next((v for v in trained.order_by("version") if not v.params.get("closing")), None)
    return cycle, version if version is not None and version.kind == "trained" else None


def snapshot_is_recorded(*, model_version: ModelVersion) -> bool:
    """Versions trained before alweb recorded training sets have a hash of nothing to compare with."""
    return TrainingSetItem.objects.filter(model_version=model_version).exists() or (
        model_version.params.get("training_set_size") == 0
    )


def exports_for_project(*, project: Project) -> QuerySet[Export]:
    return Export.objects.filter(project=project).select_related("created_by").order_by("-created_at")


def export_of_project(*, project: Project, export_id: int) -> Export | None:
    return Export.objects.filter(project=project, pk=export_id).first()
