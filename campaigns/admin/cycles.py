"""Cycles with progress and the ops actions (requeue, resync), and the read-only record of what they decided."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from campaigns.admin.common import CappedCountPaginator, ViewOnlyAdmin
from campaigns.models import Cycle, Score, SelectedItem, Selection
from campaigns.services.actions import cycle_requeue, items_resync
from campaigns.services.cycles import CycleConflict, InvalidTransition


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
        return request.user.has_perm("campaigns.change_cycle")

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
        "sync_error",
    ]
    list_filter = ["sync_state", "selection__cycle__project"]
    list_select_related = ["selection__cycle__project", "item"]
    show_full_result_count = False
    raw_id_fields = ["selection", "item"]
