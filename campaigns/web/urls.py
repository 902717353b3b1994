"""Dashboard URLs (namespace "dashboard"), mounted at the site root; each view is the URL name with `_view` (so it never
clashes with the service it calls). Cycles are addressed by their number within the
project, as people name them ("cycle 3"), not by database id."""

from __future__ import annotations

from django.urls import path

from campaigns.web import (
    agreement_views,
    cycle_views,
    export_views,
    label_views,
    labelstudio_views,
    model_views,
    pretraining_views,
    simulation_views,
    views,
)

app_name = "dashboard"

cycle = "projects/<int:pk>/cycles/<int:number>/"
simulation = "projects/<int:pk>/simulations/<int:run_id>/"
urlpatterns = [
    path("", views.project_list_view, name="project-list"),
    path("projects/new/", views.project_create_view, name="project-create"),
    path("projects/<int:pk>/", views.project_detail_view, name="project-detail"),
    path("projects/<int:pk>/import/", views.project_import_view, name="project-import"),
    path("projects/<int:pk>/cycles/", views.project_cycles_view, name="project-cycles"),
    path("projects/<int:pk>/cycles/start/", views.cycle_start_view, name="cycle-start"),
    path("projects/<int:pk>/pull/", cycle_views.project_pull_view, name="project-pull"),
    path("projects/<int:pk>/ml-backend/", labelstudio_views.ml_backend_connect_view, name="ml-backend-connect"),
    path("projects/<int:pk>/exports/", export_views.export_start_view, name="export-start"),
    path("projects/<int:pk>/model/download/", model_views.model_download_view, name="model-download"),
    path("projects/<int:pk>/agreement/", agreement_views.agreement_view, name="agreement"),
    path("projects/<int:pk>/label-errors/", label_views.label_suspects_view, name="label-suspects"),
    path("projects/<int:pk>/label-errors/review/", label_views.label_review_view, name="label-review"),
    path("projects/<int:pk>/exports/<int:export_id>/", export_views.export_status_view, name="export-status"),
    path("projects/<int:pk>/simulations/", simulation_views.simulations_view, name="simulations"),
    path(simulation, simulation_views.simulation_detail_view, name="simulation-detail"),
    path(f"{simulation}status/", simulation_views.simulation_status_view, name="simulation-status"),
    path(f"{simulation}retry/", simulation_views.simulation_retry_view, name="simulation-retry"),
    path("projects/<int:pk>/pretraining/", pretraining_views.pretraining_view, name="pretraining"),
    path(
        "projects/<int:pk>/pretraining/<int:run_id>/status/",
        pretraining_views.pretraining_status_view,
        name="pretraining-status",
    ),
    path(
        "projects/<int:pk>/pretraining/<int:run_id>/cancel/",
        pretraining_views.pretraining_cancel_view,
        name="pretraining-cancel",
    ),
    path(cycle, cycle_views.cycle_detail_view, name="cycle-detail"),
    path(f"{cycle}status/", cycle_views.cycle_status_view, name="cycle-status"),
    path(f"{cycle}preview/", cycle_views.cycle_preview_view, name="cycle-preview"),
    path(f"{cycle}select/", cycle_views.cycle_select_view, name="cycle-select"),
    path(f"{cycle}sync/", cycle_views.cycle_sync_view, name="cycle-sync"),
    path(f"{cycle}cancel/", cycle_views.cycle_cancel_view, name="cycle-cancel"),
    path(f"{cycle}retry/", cycle_views.cycle_retry_view, name="cycle-retry"),
]
