"""Reads: the pool a cycle scores, the candidates it selects from, score histograms, the learning curve."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Exists, OuterRef, Q, QuerySet

from campaigns.models import (
    Cycle,
    CycleState,
    Item,
    ItemState,
    Project,
    Score,
    SelectedItem,
    Split,
)


def items_selected_elsewhere(*, project: Project) -> QuerySet[SelectedItem]:
    """Items that a live (not cancelled or failed) cycle of the project already sent, or will send, to annotators."""
    return SelectedItem.objects.filter(selection__cycle__project=project).exclude(
        selection__cycle__state__in=[CycleState.CANCELLED, CycleState.FAILED]
    )


def pool_for_cycle(*, project: Project) -> QuerySet[Item]:
    """The unlabeled, active pool items not already selected by a live cycle, in id order (stable chunks)."""
    selected = items_selected_elsewhere(project=project).filter(item=OuterRef("pk"))
    return (
        Item.objects.filter(project=project, split=Split.POOL, label__isnull=True, state=ItemState.ACTIVE)
        .exclude(Exists(selected))
        .order_by("pk")
    )


def labeled_items(*, project: Project, splits: tuple[str, ...] = (Split.TRAIN, Split.POOL)) -> QuerySet[Item]:
    """Training data: items with a human (or imported) label. Ground truth is never used for training."""
    return Item.objects.filter(project=project, split__in=splits, label__isnull=False, state=ItemState.ACTIVE)


def evaluation_items(*, project: Project, split: str) -> QuerySet[Item]:
    """Validation or test items with a label or, failing that, ground truth."""
    return Item.objects.filter(project=project, split=split, state=ItemState.ACTIVE).filter(
        Q(label__isnull=False) | Q(ground_truth__isnull=False)
    )


def candidates(*, cycle: Cycle, threshold: float | None) -> QuerySet[Score]:
    """Scores of the cycle at or above the threshold, most uncertain first, whose items are still unlabeled."""
    qs = Score.objects.filter(cycle=cycle, item__label__isnull=True, item__state=ItemState.ACTIVE)
    if threshold is not None:
        qs = qs.filter(uncertainty__gte=threshold)
    return qs.order_by("-uncertainty", "item_id")


def threshold_count(*, cycle: Cycle, threshold: float | None) -> int:
    """How many of the cycle's scores reach the threshold (the index on (cycle, -uncertainty) answers it)."""
    qs = Score.objects.filter(cycle=cycle)
    if threshold is not None:
        qs = qs.filter(uncertainty__gte=threshold)
    return qs.count()


def score_histogram(*, cycle: Cycle, bins: int = 50) -> dict[str, Any]:
    """The score distribution, re-binned from the fine histogram stored when scoring finished (no table scan)."""
    stats = cycle.score_stats or {}
    fine = stats.get("histogram") or []
    if not fine:
        return {"edges": [], "counts": [], "count": 0, "min": None, "max": None, "mean": None}
    lo, hi = stats["min"], stats["max"]
    group = max(1, len(fine) // bins)
    counts = [sum(fine[i : i + group]) for i in range(0, len(fine), group)]
    width = (hi - lo) / len(counts) if hi > lo else 0.0
    edges = [lo + i * width for i in range(len(counts) + 1)]
    return {"edges": edges, "counts": counts, "count": stats["count"], "min": lo, "max": hi, "mean": stats["mean"]}


def item_counts(*, project: Project) -> dict[str, Any]:
    """Counts by split, labeled or not, for the dashboard and API."""
    rows = (
        Item.objects.filter(project=project)
        .values("split")
        .annotate(total=Count("pk"), labeled=Count("pk", filter=Q(label__isnull=False)))
    )
    by_split = {r["split"]: {"total": r["total"], "labeled": r["labeled"]} for r in rows}
    return {
        "by_split": by_split,
        "total": sum(v["total"] for v in by_split.values()),
        "labeled": sum(v["labeled"] for v in by_split.values()),
    }


def learning_curve(*, project: Project) -> list[dict[str, Any]]:
    """One point per trained model version: labels used and test metrics, in cycle order."""
    points = []
    cycles = (
        Cycle.objects.filter(project=project, model_version__isnull=False)
        .select_related("model_version")
        .order_by("number")
    )
    for cycle in cycles:
        mv = cycle.model_version
        assert mv is not None
        metrics = mv.metrics or {}
        points.append(
            {
                "cycle": cycle.number,
                "model_version": mv.version,
                "labels": mv.label_count,
                "accuracy": metrics.get("accuracy"),
                "macro_f1": metrics.get("macro_f1"),
                "per_class_f1": metrics.get("per_class_f1", {}),
                "valid_accuracy": (metrics.get("valid") or {}).get("accuracy"),
            }
        )
    return points
