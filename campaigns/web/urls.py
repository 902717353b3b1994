"""Dashboard URLs (namespace "dashboard"), mounted at the site root. Cycles are addressed by their number within the
project, as people name them ("cycle 3"), not by database id."""

from __future__ import annotations

from django.urls import path

from campaigns.web import cycle_views, views

app_name = "dashboard"

cycle = "projects/<int:pk>/cycles/<int:number>/"
urlpatterns = [
    path("", views.project_list, name="project-list"),
    path("projects/new/", views.project_create, name="project-create"),
    path("projects/<int:pk>/", views.project_detail, name="project-detail"),
    path("projects/<int:pk>/import/", views.project_import, name="project-import"),
    path("projects/<int:pk>/cycles/", views.project_cycles, name="project-cycles"),
    path("projects/<int:pk>/cycles/start/", views.cycle_start, name="cycle-start"),
    path("projects/<int:pk>/pull/", cycle_views.project_pull, name="project-pull"),
    path(cycle, cycle_views.cycle_detail, name="cycle-detail"),
    path(f"{cycle}status/", cycle_views.cycle_status, name="cycle-status"),
    path(f"{cycle}preview/", cycle_views.cycle_preview, name="cycle-preview"),
    path(f"{cycle}select/", cycle_views.cycle_select, name="cycle-select"),
    path(f"{cycle}sync/", cycle_views.cycle_sync, name="cycle-sync"),
    path(f"{cycle}cancel/", cycle_views.cycle_cancel_view, name="cycle-cancel"),
    path(f"{cycle}retry/", cycle_views.cycle_retry_view, name="cycle-retry"),
]
