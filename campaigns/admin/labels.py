"""Admin for label history, suspected label errors and reviews (issue 15): view-only records of what changed a label
and why. The history is an inline on the item (ItemAdmin); suspects and reviews have lists of their own."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from campaigns.admin.common import ViewOnlyAdmin
from campaigns.models import LabelChange, LabelReview, LabelSuspect


class LabelChangeInline(admin.TabularInline):
    """An item's label history, oldest first: the old value, the new one, what changed it and who."""

    model = LabelChange
    fields = ("created_at", "old_value", "new_value", "source", "user", "annotator", "reason")
    readonly_fields = ("created_at", "old_value", "new_value", "source", "user", "annotator", "reason")
    ordering = ["created_at", "id"]
    extra = 0
    can_delete = False
    verbose_name_plural = "label history"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(LabelSuspect)
class LabelSuspectAdmin(ViewOnlyAdmin):
    list_display = [
        "rank",
        "item",
        "label",
        "suggested_label",
        "suggested_probability",
        "quality",
        "consensus_label",
        "annotations",
        "run",
    ]
    list_select_related = ["item", "run"]
    list_filter = ["run__project"]
    raw_id_fields = ["item", "run"]
    ordering = ["-run_id", "rank"]


@admin.register(LabelReview)
class LabelReviewAdmin(ViewOnlyAdmin):
    list_display = ["item", "project", "state", "label_before", "suggested_label", "decision", "sync_state"]
    list_select_related = ["item", "project"]
    list_filter = ["state", "sync_state", "project"]
    raw_id_fields = ["item", "project", "suspect"]
