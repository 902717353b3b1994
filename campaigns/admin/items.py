"""Items (state and Label Studio resync actions) and annotations."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from campaigns.admin.common import ViewOnlyAdmin
from campaigns.admin.labels import LabelChangeInline
from campaigns.models import Annotation, Item, ItemState, LabelSource
from campaigns.services.actions import items_resync_where_labeling
from campaigns.services.item_state import items_set_state


class LabelSourceFilter(admin.SimpleListFilter):
    """Fixed choices: the default filter for a plain CharField runs SELECT DISTINCT over every item."""

    title = "label source"
    parameter_name = "label_source"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [*LabelSource.choices, ("none", "None")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Item]) -> QuerySet[Item]:
        value = self.value()
        if value == "none":
            return queryset.filter(label_source="")
        return queryset.filter(label_source=value) if value else queryset


class SyncedFilter(admin.SimpleListFilter):
    title = "in Label Studio"
    parameter_name = "synced"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Has a task"), ("no", "No task")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Item]) -> QuerySet[Item]:
        if self.value() in ("yes", "no"):
            return queryset.filter(ls_task_id__isnull=self.value() == "no")
        return queryset


class DisagreementFilter(admin.SimpleListFilter):
    """Items by how far their annotators agreed (`metadata.agreement`: the most frequent answer's share)."""

    title = "annotator agreement"
    parameter_name = "agreement"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("disputed", "Disputed (not unanimous)"),
            ("split", "No clear majority (half or less)"),
            ("unanimous", "Unanimous"),
            ("none", "No answer yet"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Item]) -> QuerySet[Item]:
        match self.value():
            case "disputed":
                return queryset.filter(metadata__agreement__lt=1)
            case "split":
                return queryset.filter(metadata__agreement__lte=0.5)
            case "unanimous":
                return queryset.filter(metadata__agreement=1)
            case "none":
                return queryset.filter(metadata__agreement__isnull=True)
        return queryset


def _set_state(admin_: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Item], state: str) -> None:
    changed = items_set_state(items=queryset, state=state)
    admin_.message_user(request, f"{changed} item(s) marked {state}.", messages.SUCCESS)


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = [
        "key",
        "project",
        "split",
        "state",
        "label",
        "label_source",
        "agreement",
        "ls_task_id",
        "short_label_error",
    ]
    list_filter = ["project", "split", "state", LabelSourceFilter, SyncedFilter, DisagreementFilter]
    list_select_related = ["project"]
    show_full_result_count = False
    list_per_page = 100
    search_fields = ["key"]
    search_help_text = "Exact key, or a key prefix ending with *."
    raw_id_fields = ["project"]
    actions = ["mark_invalid", "mark_skipped", "mark_active", "resync"]
    readonly_fields = [f.name for f in Item._meta.fields]
    inlines = [LabelChangeInline]

    @admin.display(description="agreement")
    def agreement(self, obj: Item) -> Any:
        # Written by annotations resolution into metadata; absent until two or more annotators answered.
        return obj.metadata.get("agreement") if isinstance(obj.metadata, dict) else None

    @admin.display(description="label error")
    def short_label_error(self, obj: Item) -> str:
        return obj.label_error[:80]

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[Item], search_term: str) -> Any:
        # Exact (or prefix) matches only: the default icontains scans every item of every project.
        term = search_term.strip()
        if not term:
            return queryset, False
        if term.endswith("*"):
            return queryset.filter(key__startswith=term[:-1]), False
        return queryset.filter(key=term), False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # items come in through items_import (command, API, dashboard)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # mark invalid instead: deleting would drop annotations, scores and selections with it

    @admin.action(description="Mark selected items invalid", permissions=["change"])
    def mark_invalid(self, request: HttpRequest, queryset: QuerySet[Item]) -> None:
        _set_state(self, request, queryset, ItemState.INVALID)

    @admin.action(description="Mark selected items skipped", permissions=["change"])
    def mark_skipped(self, request: HttpRequest, queryset: QuerySet[Item]) -> None:
        _set_state(self, request, queryset, ItemState.SKIPPED)

    @admin.action(description="Mark selected items active", permissions=["change"])
    def mark_active(self, request: HttpRequest, queryset: QuerySet[Item]) -> None:
        _set_state(self, request, queryset, ItemState.ACTIVE)

    @admin.action(description="Resync selected items to Label Studio", permissions=["change"])
    def resync(self, request: HttpRequest, queryset: QuerySet[Item]) -> None:
        """Per cycle out for labeling that selected them: check each item's task and prediction in LS and repair."""
        queued, outside = items_resync_where_labeling(items=queryset)
        self.message_user(
            request,
            f"{queued} item(s) queued for a resync with Label Studio"
            + (f"; {outside} not in a cycle out for labeling, left alone." if outside else "."),
            messages.SUCCESS if queued else messages.WARNING,
        )


# --- annotations ----------------------------------------------------------------------------------------------------


class AnnotatorFilter(admin.SimpleListFilter):
    """Annotators of the project chosen in the project filter (all projects' otherwise), not a scan of every row
    for each page load of an unrelated project."""

    title = "annotator"
    parameter_name = "annotator"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        qs = Annotation.objects.all()
        project = request.GET.get("project__id__exact")
        if project and project.isdigit():
            qs = qs.filter(project_id=int(project))
        names = qs.exclude(annotator="").order_by("annotator").values_list("annotator", flat=True).distinct()[:200]
        return [(name, name) for name in names]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Annotation]) -> QuerySet[Annotation]:
        return queryset.filter(annotator=self.value()) if self.value() else queryset


@admin.register(Annotation)
class AnnotationAdmin(ViewOnlyAdmin):
    list_display = [
        "ls_annotation_id",
        "item",
        "project",
        "annotator",
        "value",
        "lead_time",
        "was_cancelled",
        "ground_truth",
        "deleted_at",
        "error",
    ]
    list_filter = [
        "project",
        AnnotatorFilter,
        "was_cancelled",
        "ground_truth",
        ("deleted_at", admin.EmptyFieldListFilter),
    ]
    list_select_related = ["item", "project"]
    show_full_result_count = False
    search_fields = ["=ls_annotation_id", "=ls_task_id"]
    raw_id_fields = ["item"]
