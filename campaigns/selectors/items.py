"""Item reads: the pool a cycle scores, the training and evaluation sets, counts and class balance."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from django.db.models import Count, Exists, OuterRef, QuerySet
from numpy.typing import NDArray

from campaigns.models import Annotation, Item, ItemEmbedding, ItemState, Project, SelectedItem, Split, TaskType
from campaigns.selectors.item_counts import items_counts
from campaigns.states import ABANDONED_STATES


def items_selected_elsewhere(*, project: Project) -> QuerySet[SelectedItem]:
    """Items that a live (not cancelled or failed) cycle of the project already sent, or will send, to annotators."""
    return SelectedItem.objects.filter(selection__cycle__project=project).exclude(
        selection__cycle__state__in=ABANDONED_STATES
    )


def items_pool(*, project: Project) -> QuerySet[Item]:
    """The unlabeled, active pool items not already selected by a live cycle, in id order (stable chunks)."""
    selected = items_selected_elsewhere(project=project).filter(item=OuterRef("pk"))
    return (
        Item.objects.filter(project=project, split=Split.POOL, label__isnull=True, state=ItemState.ACTIVE)
        .exclude(Exists(selected))
        .order_by("pk")
    )


def items_labeled(*, project: Project, splits: tuple[str, ...] = (Split.TRAIN, Split.POOL)) -> QuerySet[Item]:
    """Training data: items with a human (or imported) label. Ground truth is never used for training."""
    return Item.objects.filter(project=project, split__in=splits, label__isnull=False, state=ItemState.ACTIVE)


def items_evaluation(*, project: Project, split: str) -> QuerySet[Item]:
    """Validation or test items labeled by people (imported or annotated). Never ground truth: that is the
    simulation's answer key, and a figure built on it would not be the product's own."""
    return Item.objects.filter(project=project, split=split, state=ItemState.ACTIVE, label__isnull=False)


def items_count_by_split(*, project: Project) -> dict[str, Any]:
    """Counts by split, labeled or not, for the dashboard and API (from the kept counts: no item is read)."""
    by_split: dict[str, dict[str, int]] = {}
    for row in items_counts(project=project):
        counts = by_split.setdefault(row.split, {"total": 0, "labeled": 0})
        counts["total"] += row.n
        counts["labeled"] += row.n if row.labeled else 0
    return {
        "by_split": by_split,
        "total": sum(v["total"] for v in by_split.values()),
        "labeled": sum(v["labeled"] for v in by_split.values()),
    }


def items_count_by_state(*, project: Project) -> dict[str, int]:
    counts = {state: 0 for state in ItemState.values}
    for row in items_counts(project=project):
        counts[row.state] = counts.get(row.state, 0) + row.n
    return counts


def _is_classification(project: Project) -> bool:
    return project.task_type != TaskType.OBJECT_DETECTION


def items_label_balance(*, project: Project) -> list[dict[str, Any]]:
    """How many items carry each label, in the project's label order (classification only: a detection label is a
    list of boxes, not a class)."""
    if not _is_classification(project):
        return []
    rows = Item.objects.filter(project=project, label__isnull=False).values("label").annotate(n=Count("pk")).order_by()
    counts = {r["label"]: r["n"] for r in rows if isinstance(r["label"], str)}
    return [{"label": label, "count": counts.get(label, 0)} for label in project.labels]


def items_for_project(
    *,
    project: Project,
    split: str | None = None,
    labeled: bool | None = None,
    state: str | None = None,
    key: str | None = None,
    search: str | None = None,
) -> QuerySet[Item]:
    """Items in id order. `key` is exact (served by the (project, key) unique index); `search` is a substring match
    that scans the project's items, so prefer `key` or a narrower filter on very large projects."""
    qs = Item.objects.filter(project=project)
    if split:
        qs = qs.filter(split=split)
    if labeled is not None:
        qs = qs.filter(label__isnull=not labeled)
    if state:
        qs = qs.filter(state=state)
    if key:
        qs = qs.filter(key=key)
    if search:
        qs = qs.filter(key__contains=search)
    return qs.order_by("pk")


def items_keys(*, item_ids: list[int]) -> dict[int, str]:
    """{item id: key} in one query, for rows (a preview's picks) that carry only ids."""
    return dict(Item.objects.filter(pk__in=item_ids).values_list("pk", "key"))


def annotations_for_project(
    *, project: Project, item_id: int | None = None, annotator: str | None = None, deleted: bool | None = None
) -> QuerySet[Annotation]:
    qs = Annotation.objects.filter(project=project)
    if item_id is not None:
        qs = qs.filter(item_id=item_id)
    if annotator:
        qs = qs.filter(annotator=annotator)
    if deleted is not None:
        qs = qs.filter(deleted_at__isnull=not deleted)
    return qs.order_by("pk")


def item_vectors(*, item_ids: Sequence[int], key: str) -> dict[int, NDArray[np.float32]]:
    """{item id: cached feature vector} of the given items under a feature key (an encoder's or backbone's
    identity); items without one are left out."""
    if not item_ids:
        return {}
    stored = ItemEmbedding.objects.filter(encoder=key)
    low, high = min(item_ids), max(item_ids)
    # A scoring chunk's ids are nearly contiguous: an id range reads the same rows for about half the cost of a
    # thousand-long IN list (the few other items in the range are read and dropped). Scattered ids (a sample) are
    # looked up by list.
    if high - low < 2 * len(item_ids):
        stored = stored.filter(item_id__gte=low, item_id__lte=high)
    else:
        stored = stored.filter(item_id__in=list(item_ids))
    wanted = set(item_ids)
    return {
        item_id: np.frombuffer(bytes(vec), dtype=np.float32)
        for item_id, vec in stored.values_list("item_id", "vector")
        if item_id in wanted
    }
