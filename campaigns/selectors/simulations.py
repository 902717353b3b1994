"""Simulation runs of a project (the comparison of strategies against random), newest first."""

from __future__ import annotations

from django.db.models import QuerySet

from campaigns.models import Project, SimulationRun


def simulations_for_project(*, project: Project) -> QuerySet[SimulationRun]:
    return SimulationRun.objects.filter(project=project).select_related("created_by").order_by("-created_at", "-pk")


def simulation_of_project(*, project: Project, run_id: int) -> SimulationRun | None:
    return SimulationRun.objects.filter(project=project, pk=run_id).select_related("created_by").first()
