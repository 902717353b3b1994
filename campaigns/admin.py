"""Admin for annotator ops: items and their Label Studio sync state, annotations, cycles with progress.

Writes go through services (project_update, items_set_state), never through a model form saving whatever it was
given. Records that explain past decisions (cycles, scores, selections) are view-only. Pools run to millions of
items and scores, so list pages join what they show (list_select_related), never count whole tables where they can
avoid it, and use raw-id widgets instead of a <select> of every item.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest
from django.utils.functional import cached_property
from django.utils.html import format_html

from campaigns.models import Annotation, Cycle, Item, ItemState, Membership, Project, Score, SelectedItem, Selection
from campaigns.services.cycles import CycleConflict, InvalidTransition
from campaigns.services.item_state import items_set_state
from campaigns.services.ops import WAITING_FOR_LABELS, cycle_requeue, items_resync
from campaigns.services.projects import UPDATABLE_FIELDS, project_update, validate_project_defaults


class ViewOnlyAdmin(admin.ModelAdmin):
    """Immutable records: browsable, never added, changed or deleted from the admin."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class CappedCountPaginator(Paginator):
    """Counts at most CAP rows (COUNT over a LIMIT subquery): an unfiltered count of a 10M-row table takes seconds."""

    CAP = 100_000

    @cached_property
    def count(self) -> int:
        rows = self.object_list
        if isinstance(rows, QuerySet):
            return rows[: self.CAP].count()
        return min(len(rows), self.CAP)


# --- projects -------------------------------------------------------------------------------------------------------


class MembershipFormSet(BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        creator = self.instance.owner_id
        for form in self.forms:
            data = getattr(form, "cleaned_data", None) or {}
            user = data.get("user")
            if user is None or user.pk != creator:
                continue
            if data.get("DELETE") or data.get("role") != Membership.Role.OWNER:
                raise ValidationError("The project's creator always stays an owner.")


class MembershipInline(admin.TabularInline):
    model = Membership
    formset = MembershipFormSet
    autocomplete_fields = ["user"]
    extra = 0


class ProjectAdminForm(forms.ModelForm):
    # Write-only: the stored key is never rendered into the page, not even masked.
    ls_api_key = forms.CharField(
        label="Label Studio API key",
        required=False,
        strip=True,
        max_length=2048,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only. Leave empty to keep the current key.",
    )
    clear_ls_api_key = forms.BooleanField(label="Remove the Label Studio key", required=False)
    ls_url = forms.URLField(label="Label Studio URL", required=False, assume_scheme="https")

    class Meta:
        model = Project
        fields = [
            "name",
            "default_heuristic",
            "default_mc_iterations",
            "default_budget",
            "model_config",
            "ls_url",
            "ls_api_key",
            "ls_project_id",
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("clear_ls_api_key"):
            data["ls_api_key"] = ""
        elif not data.get("ls_api_key"):
            data["ls_api_key"] = self.instance.ls_api_key
        defaults = ("default_heuristic", "default_mc_iterations", "default_budget", "model_config")
        try:
            validate_project_defaults(**{k: data[k] for k in defaults if data.get(k) is not None})
        except ValidationError as exc:
            self.add_error(None, exc)
        return data


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    """Projects are created through project_create (API, dashboard), which makes the owner membership and the
    webhook secret; deleting one here would render every item on the confirmation page, so that is the API's too."""

    form = ProjectAdminForm
    inlines = [MembershipInline]
    list_display = ["name", "task_type", "owner", "ls_project_id", "key_is_set", "created_at"]
    list_filter = ["task_type"]
    list_select_related = ["owner"]
    search_fields = ["name", "owner__username"]
    readonly_fields = ["owner", "task_type", "labels", "split_ratios", "ls_pulled_until", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "owner", "task_type", "labels", "split_ratios", "created_at", "updated_at"]}),
        (
            "Cycle defaults",
            {"fields": ["default_heuristic", "default_mc_iterations", "default_budget", "model_config"]},
        ),
        (
            "Label Studio",
            {"fields": ["ls_url", "ls_project_id", "ls_api_key", "clear_ls_api_key", "ls_pulled_until"]},
        ),
    ]

    @admin.display(boolean=True, description="LS key set")
    def key_is_set(self, obj: Project) -> bool:
        return bool(obj.ls_api_key)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Project, form: forms.ModelForm, change: bool) -> None:
        # The admin builds its own form class whose Meta.fields follow the fieldsets: pick the model's fields here.
        changed = [f for f in form.changed_data if f in UPDATABLE_FIELDS]
        if "clear_ls_api_key" in form.changed_data and "ls_api_key" not in changed:
            changed.append("ls_api_key")
        if changed:
            project_update(project=obj, **{f: getattr(obj, f) for f in changed})


# --- items ----------------------------------------------------------------------------------------------------------


class LabelSourceFilter(admin.SimpleListFilter):
    """Fixed choices: the default filter for a plain CharField runs SELECT DISTINCT over every item."""

    title = "label source"
    parameter_name = "label_source"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("import", "Import"), ("annotation", "Annotation"), ("none", "None")]

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
    list_filter = ["project", "split", "state", LabelSourceFilter, SyncedFilter]
    list_select_related = ["project"]
    show_full_result_count = False
    list_per_page = 100
    search_fields = ["key"]
    search_help_text = "Exact key, or a key prefix ending with *."
    raw_id_fields = ["project"]
    actions = ["mark_invalid", "mark_skipped", "mark_active", "resync"]
    readonly_fields = [f.name for f in Item._meta.fields]

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
        rows = SelectedItem.objects.filter(item__in=queryset, selection__cycle__state__in=WAITING_FOR_LABELS)
        by_cycle: dict[int, list[int]] = {}
        for cycle_id, item_id in rows.values_list("selection__cycle_id", "item_id"):
            by_cycle.setdefault(cycle_id, []).append(item_id)
        queued = 0
        for cycle in Cycle.objects.filter(pk__in=by_cycle):
            queued += items_resync(cycle=cycle, item_ids=by_cycle[cycle.pk])
        outside = queryset.count() - queued
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


# --- cycles and what they decided -----------------------------------------------------------------------------------


@admin.register(Cycle)
class CycleAdmin(ViewOnlyAdmin):
    list_display = [
        "__str__",
        "state",
        "progress_bar",
        "heuristic",
        "strategy",
        "budget",
        "threshold",
        "model_version",
        "started_at",
        "finished_at",
    ]
    list_filter = ["state", "project"]
    list_select_related = ["project", "model_version"]
    raw_id_fields = ["project", "model_version", "created_by"]
    actions = ["requeue", "resync"]

    def has_ops_permission(self, request: HttpRequest) -> bool:
        # Records stay read-only; these actions only queue the pipeline's own idempotent tasks.
        return bool(getattr(request.user, "has_perm", lambda _: False)("campaigns.change_cycle"))

    def _each(self, request: HttpRequest, queryset: QuerySet[Cycle], act: Any) -> None:
        for cycle in queryset.select_related("project"):
            try:
                self.message_user(request, f"{cycle}: {act(cycle)}", messages.SUCCESS)
            except (InvalidTransition, CycleConflict, ValidationError) as exc:
                self.message_user(request, f"{cycle}: {getattr(exc, 'message', exc)}", messages.WARNING)

    @admin.action(description="Requeue: retry failed, resend stalled work, pull labels now", permissions=["ops"])
    def requeue(self, request: HttpRequest, queryset: QuerySet[Cycle]) -> None:
        self._each(request, queryset, lambda cycle: cycle_requeue(cycle=cycle))

    @admin.action(description="Resync all selected items to Label Studio", permissions=["ops"])
    def resync(self, request: HttpRequest, queryset: QuerySet[Cycle]) -> None:
        self._each(request, queryset, lambda cycle: f"{items_resync(cycle=cycle)} item(s) queued for a resync")

    @admin.display(description="progress")
    def progress_bar(self, obj: Cycle) -> str:
        progress = obj.progress if isinstance(obj.progress, dict) else {}
        done, total = progress.get("done") or 0, progress.get("total") or 0
        if not total:
            return progress.get("stage", "")
        pct = min(100, round(100 * done / total))
        return format_html(
            '<progress value="{}" max="{}"></progress> {} {}/{} ({}%)',
            done,
            total,
            progress.get("stage", ""),
            done,
            total,
            pct,
        )


@admin.register(Score)
class ScoreAdmin(ViewOnlyAdmin):
    list_display = ["item", "cycle", "uncertainty", "heuristic", "predicted_label", "confidence", "chunk"]
    list_filter = ["cycle__project", "heuristic"]
    list_select_related = ["item", "cycle__project"]
    show_full_result_count = False
    paginator = CappedCountPaginator
    raw_id_fields = ["item", "cycle"]


@admin.register(Selection)
class SelectionAdmin(ViewOnlyAdmin):
    list_display = ["cycle", "strategy", "size", "model_version", "created_at"]
    list_filter = ["cycle__project", "strategy"]
    list_select_related = ["cycle__project", "model_version"]
    raw_id_fields = ["cycle", "model_version"]


@admin.register(SelectedItem)
class SelectedItemAdmin(ViewOnlyAdmin):
    """Rank and score are what the selection decided; the sync fields belong to the sync task, so read-only too."""

    list_display = [
        "selection",
        "rank",
        "item",
        "uncertainty",
        "predicted_label",
        "sync_state",
        "ls_task_id",
        "synced_at",
    ]
    list_filter = ["sync_state", "selection__cycle__project"]
    list_select_related = ["selection__cycle__project", "item"]
    show_full_result_count = False
    raw_id_fields = ["selection", "item"]
