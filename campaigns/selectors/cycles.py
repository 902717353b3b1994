"""Cycle and selection reads: a member's cycle, a project's cycles, a selection's items and how far they are labeled."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, F, QuerySet

from campaigns.models import Cycle, Project, SelectedItem, Selection
from campaigns.states import ABANDONED_STATES


def cycle_for_member(*, user: AbstractBaseUser, project_id: int, number: int) -> Cycle | None:
    """Cycle `number` of the project, through the user's membership: None for a non-member, as for a missing cycle."""
    return (
        Cycle.objects.select_related("project", "model_version")
        .filter(project__memberships__user_id=int(user.pk), project_id=project_id, number=number)
        .first()
    )


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


def selected_items_first(*, cycle: Cycle, limit: int = 200) -> tuple[list[SelectedItem], int]:
    """The cycle's selection in rank order (first `limit`, with key, task id and label annotated), and its size."""
    selection = Selection.objects.filter(cycle=cycle).first()
    if selection is None:
        return [], 0
    return list(selected_items_for(selection=selection)[:limit]), selection.size


def selected_items_labeled_count(*, cycle: Cycle) -> int:
    """Selected items that have a label now: the cycle's labeling progress."""
    return SelectedItem.objects.filter(selection__cycle=cycle, item__label__isnull=False).count()


def selected_items_label_balance(*, project: Project) -> list[dict[str, Any]]:
    """How many selected items the models predicted as each label, over every live selection of the project."""
    rows = (
        SelectedItem.objects.filter(selection__cycle__project=project)
        .exclude(selection__cycle__state__in=ABANDONED_STATES)
        .values("predicted_label")
        .annotate(n=Count("pk"))
        .order_by()
    )
    counts = {r["predicted_label"]: r["n"] for r in rows}
    balance = [{"label": label, "count": counts.pop(label, 0)} for label in project.labels]
    if counts.get(""):
        # Cold-start selections have no model, hence no prediction: shown apart rather than dropped.
        balance.append({"label": "(no prediction)", "count": counts[""]})
    return balance
