"""Reads: the pool a cycle scores, the candidates it selects from, score histograms, the learning curve."""

from __future__ import annotations

import io
from functools import lru_cache
from typing import Any

import numpy as np
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.files.storage import default_storage
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet
from numpy.typing import NDArray

from campaigns.models import (
    Annotation,
    Cycle,
    CycleState,
    Item,
    ItemState,
    Membership,
    Project,
    Score,
    SelectedItem,
    Selection,
    Split,
)
from models_registry.models import ModelVersion


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
    """How many of the cycle's scores reach the threshold.

    Scores never change once scoring ends, so a sorted copy of the uncertainties (stored then) answers by binary
    search in microseconds whatever the threshold; before that, the index on (cycle, -uncertainty) answers.
    """
    sorted_scores = sorted_uncertainties(cycle_id=cycle.pk)
    if sorted_scores is not None:
        if threshold is None:
            return len(sorted_scores)
        return int(len(sorted_scores) - np.searchsorted(sorted_scores, threshold, side="left"))
    qs = Score.objects.filter(cycle=cycle)
    if threshold is not None:
        qs = qs.filter(uncertainty__gte=threshold)
    return qs.count()


def sorted_scores_name(cycle_id: int) -> str:
    return f"cycles/{cycle_id}/uncertainty_sorted.npy"


@lru_cache(maxsize=16)
def _load_sorted(name: str) -> NDArray[np.float64] | None:
    if not default_storage.exists(name):
        return None
    with default_storage.open(name, "rb") as fh:
        return np.load(io.BytesIO(fh.read()))


def sorted_uncertainties(*, cycle_id: int) -> NDArray[np.float64] | None:
    """The cycle's uncertainties in ascending order, once scoring has finished (cached per process)."""
    result = _load_sorted(sorted_scores_name(cycle_id))
    if result is None:
        _load_sorted.cache_clear()  # don't remember "missing": the file appears when scoring ends
    return result


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


FINE_BINS = 200


def score_stats_compute(*, cycle: Cycle) -> dict[str, Any]:
    """Count, min, max, mean and a fine histogram of the cycle's scores: computed once when scoring ends and
    stored on the cycle, so the dashboard's slider never scans the score table."""
    from django.db.models import Avg, Max, Min

    agg = Score.objects.filter(cycle=cycle).aggregate(
        n=Count("pk"), lo=Min("uncertainty"), hi=Max("uncertainty"), mean=Avg("uncertainty")
    )
    if not agg["n"]:
        return {"count": 0, "histogram": [], "min": None, "max": None, "mean": None}
    lo, hi = float(agg["lo"]), float(agg["hi"])
    counts = [0] * FINE_BINS
    if hi > lo:
        width = (hi - lo) / FINE_BINS
        from django.db.models import FloatField, IntegerField
        from django.db.models.functions import Cast, Floor, Least

        bucket = Least(Cast(Floor((Cast("uncertainty", FloatField()) - lo) / width), IntegerField()), FINE_BINS - 1)
        for row in Score.objects.filter(cycle=cycle).annotate(b=bucket).values("b").annotate(c=Count("pk")).order_by():
            counts[int(row["b"])] = row["c"]
    else:
        counts[0] = agg["n"]
    return {"count": agg["n"], "histogram": counts, "min": lo, "max": hi, "mean": float(agg["mean"])}


# --- Membership-scoped reads for the REST API (moved from campaigns/api/queries.py) ---------------------------------
# Every project-scoped read starts from a membership, so a project the user is not a member of is simply absent
# (the API answers 404, never 403, and so does not reveal that it exists).


def projects_for_user(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[Project]:
    """The user's projects, each annotated with `user_role` (owner or member), newest first.

    The annotation reuses the membership join of the filter: (project, user) is unique, so one row per project.
    """
    if not user.is_authenticated:
        return Project.objects.none()
    return (
        Project.objects.filter(memberships__user_id=int(user.pk))
        .annotate(user_role=F("memberships__role"))
        .select_related("owner")
        .order_by("-created_at", "-pk")
    )


def project_for_member(*, user: AbstractBaseUser | AnonymousUser, project_id: int) -> Project | None:
    return projects_for_user(user=user).filter(pk=project_id).first()


def memberships_for_project(*, project: Project) -> QuerySet[Membership]:
    return Membership.objects.filter(project=project).select_related("user").order_by("user__username")


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


def model_versions_for_project(*, project: Project) -> QuerySet[ModelVersion]:
    return ModelVersion.objects.filter(project=project).order_by("version")


def cycles_for_project(*, project: Project) -> QuerySet[Cycle]:
    """The project's cycles, newest first, with what a listing shows (model version, selection, creator) joined:
    one query whatever the number of cycles."""
    return (
        Cycle.objects.filter(project=project)
        .select_related("model_version", "selection__model_version", "created_by")
        .order_by("-number")
    )


def selected_items_of_cycle(*, cycle_id: int, item_ids: list[int] | None = None) -> QuerySet[SelectedItem]:
    """A cycle's selected items: these items' rows, or all of them when `item_ids` is empty (the ops' convention)."""
    rows = SelectedItem.objects.filter(selection__cycle_id=cycle_id)
    return rows.filter(item_id__in=item_ids) if item_ids else rows


def selected_items_for(*, selection: Selection) -> QuerySet[SelectedItem]:
    """A selection's items by rank, with the item's key, task id and label annotated rather than the whole item
    joined in (an item's text can be large): served by the (selection, rank) unique index."""
    return (
        SelectedItem.objects.filter(selection=selection)
        .annotate(key=F("item__key"), item_ls_task_id=F("item__ls_task_id"), item_label=F("item__label"))
        .order_by("rank")
    )


def scores_for_cycle(
    *,
    cycle: Cycle,
    min_uncertainty: float | None = None,
    max_uncertainty: float | None = None,
    predicted_label: str | None = None,
    descending: bool = True,
) -> QuerySet[Score]:
    """A cycle's scores in uncertainty order (most uncertain first by default), with the item key annotated.

    The (cycle, -uncertainty) index serves the filter on cycle and uncertainty and the order, in either direction;
    the item id only breaks ties, so pages are stable (Postgres sorts just the rows that tie).
    """
    qs = Score.objects.filter(cycle=cycle)
    if min_uncertainty is not None:
        qs = qs.filter(uncertainty__gte=min_uncertainty)
    if max_uncertainty is not None:
        qs = qs.filter(uncertainty__lte=max_uncertainty)
    if predicted_label is not None:
        qs = qs.filter(predicted_label=predicted_label)
    order = ("-uncertainty", "item_id") if descending else ("uncertainty", "item_id")
    return qs.annotate(key=F("item__key")).order_by(*order)


def item_keys(*, item_ids: list[int]) -> dict[int, str]:
    """{item id: key} in one query, for rows (a preview's picks) that carry only ids."""
    return dict(Item.objects.filter(pk__in=item_ids).values_list("pk", "key"))
