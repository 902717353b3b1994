"""Backbone pretraining runs in the admin: which project's trunk was pretrained on how many images, how far a run
got and why one failed. Requested through the dashboard or the API; the records stay read-only, and operators may
cancel a run or requeue a stalled one (its message or worker lost)."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from campaigns.admin.common import ViewOnlyAdmin
from campaigns.models import BackbonePretraining
from campaigns.services.pretraining import PretrainingConflict, pretraining_cancel, pretraining_requeue


@admin.register(BackbonePretraining)
class BackbonePretrainingAdmin(ViewOnlyAdmin):
    list_display = ["id", "project", "state", "images", "done", "backbone", "model_uri", "created_at"]
    list_filter = ["state"]
    list_select_related = ["project", "created_by"]
    search_fields = ["project__name", "backbone"]
    actions = ["requeue", "cancel"]

    def has_ops_permission(self, request: HttpRequest) -> bool:
        # The actions only queue the run's own idempotent task, or stop it.
        return request.user.has_perm("campaigns.change_backbonepretraining")

    def _each(
        self, request: HttpRequest, queryset: QuerySet[BackbonePretraining], act: Callable[[BackbonePretraining], str]
    ) -> None:
        for run in queryset:
            try:
                self.message_user(request, f"pretraining {run.pk}: {act(run)}", messages.SUCCESS)
            except PretrainingConflict as exc:
                self.message_user(request, str(exc), messages.WARNING)

    @admin.action(description="Requeue: send a stalled run's task again", permissions=["ops"])
    def requeue(self, request: HttpRequest, queryset: QuerySet[BackbonePretraining]) -> None:
        self._each(request, queryset, lambda run: f"queued again ({pretraining_requeue(run=run).state})")

    @admin.action(description="Cancel the run", permissions=["ops"])
    def cancel(self, request: HttpRequest, queryset: QuerySet[BackbonePretraining]) -> None:
        self._each(request, queryset, lambda run: pretraining_cancel(run=run, user=request.user).failure_reason)

    @admin.display(description="progress")
    def done(self, obj: BackbonePretraining) -> str:
        return f"{obj.progress.get('done', 0)} / {obj.progress.get('total', '?')}"
