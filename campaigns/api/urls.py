"""/api/: projects and what is under them, the token endpoint, the OpenAPI schema and its browsable UI."""

from __future__ import annotations

from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import SimpleRouter

from campaigns.api import (
    agreement_views,
    auth_views,
    backbone_views,
    cycle_views,
    export_views,
    feature_views,
    label_views,
    ml_backend_views,
    predict_views,
    pretraining_views,
    simulation_views,
    stats_views,
    views,
)
from campaigns.api.common import ID_REGEX

app_name = "api"

router = SimpleRouter()
router.register("projects", views.ProjectViewSet, basename="project")
_nested = rf"projects/(?P<project_pk>{ID_REGEX})"
router.register(f"{_nested}/members", views.MembershipViewSet, basename="project-member")
router.register(f"{_nested}/items", views.ItemViewSet, basename="project-item")
router.register(f"{_nested}/annotations", views.AnnotationViewSet, basename="project-annotation")
router.register(f"{_nested}/model-versions", views.ModelVersionViewSet, basename="project-model-version")
router.register(f"{_nested}/cycles", cycle_views.CycleViewSet, basename="project-cycle")
router.register(f"{_nested}/exports", export_views.ExportViewSet, basename="project-export")
router.register(f"{_nested}/suspects", label_views.SuspectViewSet, basename="project-suspect")
router.register(f"{_nested}/reviews", label_views.ReviewViewSet, basename="project-review")
router.register(f"{_nested}/simulations", simulation_views.SimulationViewSet, basename="project-simulation")
router.register(f"{_nested}/pretrainings", pretraining_views.PretrainingViewSet, basename="project-pretraining")

urlpatterns = [
    path("auth/token/", auth_views.TokenView.as_view(), name="token"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its init script as a file: the inline one of SpectacularSwaggerView breaks the CSP.
    path("schema/swagger/", SpectacularSwaggerSplitView.as_view(url_name="api:schema"), name="swagger"),
    re_path(rf"^{_nested}/stats/$", stats_views.ProjectStatsView.as_view(), name="project-stats"),
    re_path(rf"^{_nested}/learning-curve/$", stats_views.LearningCurveView.as_view(), name="project-learning-curve"),
    re_path(rf"^{_nested}/ml-backend/$", ml_backend_views.MLBackendView.as_view(), name="project-ml-backend"),
    re_path(rf"^{_nested}/predict/$", predict_views.PredictView.as_view(), name="project-predict"),
    re_path(rf"^{_nested}/agreement/$", agreement_views.AgreementView.as_view(), name="project-agreement"),
    re_path(rf"^{_nested}/backbones/$", backbone_views.BackboneUploadView.as_view(), name="project-backbones"),
    re_path(rf"^{_nested}/features/$", feature_views.FeaturesView.as_view(), name="project-features"),
    re_path(rf"^{_nested}/annotators/$", agreement_views.AnnotatorsView.as_view(), name="project-annotators"),
    re_path(rf"^{_nested}/model/download/$", predict_views.ModelDownloadView.as_view(), name="project-model-download"),
    *router.urls,
]
