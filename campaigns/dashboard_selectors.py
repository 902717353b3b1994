"""Reads the dashboard needs beyond `campaigns.selectors` (which it builds on): project counts for the list,
membership-scoped lookups that 404, class balance, labeling progress, MLflow and Label Studio links, and a stopping
suggestion.

Every lookup by id goes through the user's memberships, so a project someone is not a member of is a 404, the same
answer as a project that does not exist (no way to probe which ids exist).
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404
from django.shortcuts import get_object_or_404

from campaigns import selectors
from campaigns.models import OPEN_CYCLE_STATES, Cycle, Item, ItemState, Project, SelectedItem, Selection, TaskType
from models_registry.models import ModelVersion

# A stopping suggestion needs this many trained models, and this small a gain (in accuracy or macro-F1 points) over
# each of the last STOP_WINDOW cycles: one flat cycle is noise, two in a row is a trend worth telling the lead about.
STOP_WINDOW = 2
STOP_MIN_GAIN = 0.005


def projects_for_user(*, user: AbstractBaseUser) -> QuerySet[Project]:
    """The user's projects with item, label and cycle counts (subqueries: a join of items and cycles would multiply)."""

    def count_of(qs: QuerySet[Any]) -> Coalesce:
        counted = qs.order_by().values("project").annotate(n=Count("pk")).values("n")
        return Coalesce(Subquery(counted, output_field=IntegerField()), 0)

    items = Item.objects.filter(project=OuterRef("pk"))
    open_cycle = Cycle.objects.filter(project=OuterRef("pk"), state__in=OPEN_CYCLE_STATES)
    return selectors.projects_for_user(user=user).annotate(
        item_count=count_of(items),
        labeled_count=count_of(items.filter(label__isnull=False)),
        cycle_count=count_of(Cycle.objects.filter(project=OuterRef("pk"))),
        open_cycle_number=Subquery(open_cycle.values("number")[:1]),
        open_cycle_state=Subquery(open_cycle.values("state")[:1]),
    )


def project_for_member(*, user: AbstractBaseUser, pk: int) -> Project:
    project = selectors.project_for_member(user=user, project_id=pk)
    if project is None:
        raise Http404("No such project")
    return project


def cycle_for_member(*, user: AbstractBaseUser, project_pk: int, number: int) -> Cycle:
    return get_object_or_404(
        Cycle.objects.select_related("project", "model_version").filter(project__memberships__user_id=int(user.pk)),
        project_id=project_pk,
        number=number,
    )


def item_state_counts(*, project: Project) -> dict[str, int]:
    rows = Item.objects.filter(project=project).values("state").annotate(n=Count("pk")).order_by()
    counts = {state: 0 for state in ItemState.values}
    counts.update({r["state"]: r["n"] for r in rows})
    return counts


def _is_classification(project: Project) -> bool:
    return project.task_type != TaskType.OBJECT_DETECTION


def label_balance(*, project: Project) -> list[dict[str, Any]]:
    """How many items carry each label, in the project's label order (classification only: a detection label is a
    list of boxes, not a class)."""
    if not _is_classification(project):
        return []
    rows = Item.objects.filter(project=project, label__isnull=False).values("label").annotate(n=Count("pk")).order_by()
    counts = {r["label"]: r["n"] for r in rows if isinstance(r["label"], str)}
    return [{"label": label, "count": counts.get(label, 0)} for label in project.labels]


def selection_balance(*, project: Project) -> list[dict[str, Any]]:
    """How many selected items the models predicted as each label, over every live selection of the project."""
    rows = (
        SelectedItem.objects.filter(selection__cycle__project=project)
        .exclude(selection__cycle__state__in=["cancelled", "failed"])
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


def selected_items(*, cycle: Cycle, limit: int = 200) -> tuple[list[SelectedItem], int]:
    """The cycle's selection in rank order (first `limit`, with key, task id and label annotated), and its size."""
    selection = Selection.objects.filter(cycle=cycle).first()
    if selection is None:
        return [], 0
    return list(selectors.selected_items_for(selection=selection)[:limit]), selection.size


def selection_labeled_count(*, cycle: Cycle) -> int:
    """Selected items that have a label now: the cycle's labeling progress."""
    return SelectedItem.objects.filter(selection__cycle=cycle, item__label__isnull=False).count()


def model_versions(*, project: Project) -> list[ModelVersion]:
    """Newest first: the model in use is the one people look for."""
    return list(selectors.model_versions_for_project(project=project).order_by("-version"))


def mlflow_base_url() -> str | None:
    """The MLflow UI, when the tracking URI is a server people can open (not a sqlite file)."""
    uri = str(settings.MLFLOW_TRACKING_URI or "")
    return uri.rstrip("/") if uri.startswith(("http://", "https://")) else None


def mlflow_link(*, model_version: ModelVersion) -> str | None:
    base = mlflow_base_url()
    if base is None:
        return None
    if model_version.registered_name and model_version.registered_version:
        name = quote(model_version.registered_name, safe="")
        return f"{base}/#/models/{name}/versions/{quote(model_version.registered_version, safe='')}"
    return base


def ls_base_url(*, project: Project) -> str:
    """The Label Studio server the project syncs to: its own, else the one in the settings (the same rule as
    `campaigns.labelstudio.connect.labelstudio_credentials`)."""
    return str(project.ls_url or settings.LABEL_STUDIO_URL or "").rstrip("/")


def ls_project_link(*, project: Project) -> str | None:
    base = ls_base_url(project=project)
    if not base or project.ls_project_id is None:
        return None
    return f"{base}/projects/{project.ls_project_id}"


def ls_task_link(*, project: Project, task_id: int | None) -> str | None:
    base = ls_project_link(project=project)
    if base is None or task_id is None:
        return None
    return f"{base}/data?task={task_id}"


def stopping_suggestion(*, curve: list[dict[str, Any]]) -> str | None:
    """Plain-language advice once the learning curve flattens: the last STOP_WINDOW cycles each gained less than
    STOP_MIN_GAIN in both accuracy and macro-F1. A suggestion, never an automatic stop."""
    points = [p for p in curve if p.get("accuracy") is not None]
    if len(points) < STOP_WINDOW + 1:
        return None
    recent = points[-(STOP_WINDOW + 1) :]
    for before, after in pairwise(recent):
        for metric in ("accuracy", "macro_f1"):
            if before.get(metric) is None or after.get(metric) is None:
                return None
            if after[metric] - before[metric] >= STOP_MIN_GAIN:
                return None
    last = points[-1]
    return (
        f"The last {STOP_WINDOW} cycles improved accuracy and macro-F1 by less than {STOP_MIN_GAIN * 100:.1f} points "
        f"each (accuracy {last['accuracy']:.1%} with {last['labels']} labels). More labels may no longer pay off: "
        "consider stopping, or changing the model or heuristic."
    )
