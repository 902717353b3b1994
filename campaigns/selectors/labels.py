"""Reads of label history, suspected label errors and reviews (issue 15)."""

from __future__ import annotations

from collections import defaultdict

from django.db.models import QuerySet

from campaigns.models import (
    Annotation,
    LabelChange,
    LabelQualityRun,
    LabelReview,
    LabelSuspect,
    Project,
    ReviewState,
    RunState,
)


def label_changes_ordered() -> QuerySet[LabelChange]:
    """Label changes oldest first, with who made them (the item detail prefetches an item's through this; the
    labelchange_item_time index serves WHERE item_id IN (...) ORDER BY created_at, id)."""
    return LabelChange.objects.select_related("user").order_by("created_at", "id")


def label_quality_latest(*, project: Project) -> LabelQualityRun | None:
    """The project's most recent finished label-quality run (the suspects shown now)."""
    return (
        LabelQualityRun.objects.filter(project=project, state=RunState.DONE)
        .select_related("cycle", "model_version")
        .order_by("-id")
        .first()
    )


def label_quality_pending(*, project: Project) -> LabelQualityRun | None:
    """The project's newest run if it has not finished (queued, running or failed): what the page says is coming."""
    run = LabelQualityRun.objects.filter(project=project).select_related("cycle").order_by("-id").first()
    return run if run is not None and run.state != RunState.DONE else None


def label_suspects_of_run(*, run: LabelQualityRun | None) -> QuerySet[LabelSuspect]:
    """The run's suspects, most likely wrong first, with their items (their current label) in one query."""
    if run is None:
        return LabelSuspect.objects.none()
    return LabelSuspect.objects.filter(run=run).select_related("item").order_by("rank")


def label_reviews_for_project(*, project: Project, state: str | None = None) -> QuerySet[LabelReview]:
    qs = LabelReview.objects.filter(project=project).select_related("item").order_by("-id")
    return qs.filter(state=state) if state else qs


def open_reviews_by_item(*, item_ids: list[int]) -> dict[int, int]:
    """item id -> its open review's id, for the items given (one query)."""
    return dict(LabelReview.objects.filter(item_id__in=item_ids, state="open").values_list("item_id", "id"))


def answers_by_item(item_ids: list[int]) -> dict[int, dict[str, str]]:
    """Per item, each annotator's latest live class answer (not deleted, skipped or unmappable); items without one
    are left out. One query, streamed."""
    out: dict[int, dict[str, str]] = defaultdict(dict)
    rows = (
        Annotation.objects.filter(item_id__in=item_ids, deleted_at__isnull=True, was_cancelled=False, error="")
        .order_by("ls_created_at", "ls_annotation_id")
        .values_list("item_id", "annotator", "value", "ls_annotation_id")
    )
    for item_id, annotator, value, annotation_id in rows.iterator(chunk_size=5000):
        if isinstance(value, str):
            out[item_id][annotator or f"annotation {annotation_id}"] = value
    # A decided review is an answer too (the label a re-label or a suspect's review asked for): without it ActiveLab
    # and CROWDLAB would see the item's old answers only, and ask for the same item again.
    decided = (
        LabelReview.objects.filter(item_id__in=item_ids, state=ReviewState.DECIDED)
        .order_by("decided_at", "pk")
        .values_list("item_id", "decided_annotator", "decision", "pk")
    )
    for item_id, annotator, value, review_id in decided.iterator(chunk_size=5000):
        if isinstance(value, str):
            out[item_id][annotator or f"review {review_id}"] = value
    return out
