"""Simulation runs in the admin: which comparisons ran on which project, how far each got and why one failed.
Requested through the dashboard or the API; the admin can retry a failed run (as the dashboard's Retry does) and
otherwise only reads."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from campaigns.admin.common import ViewOnlyAdmin
from campaigns.models import SimulationRun
from campaigns.services.simulation_runs import SimulationConflict, simulation_retry


@admin.register(SimulationRun)
class SimulationRunAdmin(ViewOnlyAdmin):
    list_display = ["id", "project", "state", "strategies", "seeds", "cycles", "budget", "done", "created_at"]
    list_filter = ["state"]
    list_select_related = ["project", "created_by"]
    search_fields = ["project__name"]
    actions = ["retry"]

    @admin.display(description="progress")
    def done(self, obj: SimulationRun) -> str:
        return f"{obj.progress.get('done', 0)} / {obj.progress.get('total', '?')}"

    @admin.action(description="Retry the failed runs")
    def retry(self, request: HttpRequest, queryset: QuerySet[SimulationRun]) -> None:
        for run in queryset.select_related("project"):
            try:
                simulation_retry(run=run)
            except SimulationConflict as exc:
                self.message_user(request, f"Simulation {run.pk}: {exc}", level=messages.WARNING)
            else:
                self.message_user(request, f"Simulation {run.pk} queued again.")
