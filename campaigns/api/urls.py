"""/api/: projects and what is under them, the token endpoint, the OpenAPI schema and its browsable UI."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from campaigns.api import views

app_name = "api"

router = SimpleRouter()
router.register("projects", views.ProjectViewSet, basename="project")
_nested = rf"projects/(?P<project_pk>{views.ID_REGEX})"
router.register(f"{_nested}/members", views.MembershipViewSet, basename="project-member")
router.register(f"{_nested}/items", views.ItemViewSet, basename="project-item")
router.register(f"{_nested}/annotations", views.AnnotationViewSet, basename="project-annotation")
router.register(f"{_nested}/model-versions", views.ModelVersionViewSet, basename="project-model-version")

urlpatterns = [
    path("auth/token/", views.TokenView.as_view(), name="token"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("schema/swagger/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="swagger"),
    *router.urls,
]
