"""/api/projects/{id}/ml-backend/: alweb as the project's Label Studio ML backend. Owners see the URL and the basic-auth
credentials Label Studio needs (so nobody has to dig the secret out of the database), and can have alweb register
itself in the project's Label Studio in one call."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from campaigns.api.common import FIELD_ERRORS, NOT_FOUND, OWNERS_ONLY, PROJECT_PK
from campaigns.api.errors import ApiErrorsMixin
from campaigns.api.permissions import OWNER, ProjectMember, role_of
from campaigns.models import Project
from integrations.labelstudio.connect import ML_BACKEND_USER, labelstudio_register_ml_backend, ml_backend_url


class MLBackendSerializer(serializers.Serializer):
    url = serializers.CharField(help_text="The URL to add as a model in Label Studio (Settings → Model).")
    username = serializers.CharField(help_text="Basic auth user Label Studio must send.")
    password = serializers.CharField(help_text="Basic auth password (the project's secret): owners only.")
    ml_backend_id = serializers.IntegerField(
        required=False, help_text="The ML backend's id in Label Studio, once alweb registered itself (POST)."
    )


@extend_schema(parameters=[PROJECT_PK], tags=["projects"])
class MLBackendView(ApiErrorsMixin, GenericAPIView):
    permission_classes = [IsAuthenticated, ProjectMember]
    serializer_class = MLBackendSerializer
    pagination_class = None
    project: Project  # set by ProjectMember

    def _owner_only(self) -> None:
        if role_of(self.project) != OWNER:
            raise PermissionDenied("Only project owners may see or change the ML backend's credentials.")

    def _answer(self, **extra: Any) -> dict[str, Any]:
        return {
            "url": ml_backend_url(self.project),
            "username": ML_BACKEND_USER,
            "password": self.project.ls_webhook_secret,
            **extra,
        }

    @extend_schema(responses={200: MLBackendSerializer, 403: OWNERS_ONLY, 404: NOT_FOUND})
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The ML backend's URL and credentials, to add alweb in Label Studio by hand."""
        self._owner_only()
        return Response(MLBackendSerializer(self._answer()).data)

    @extend_schema(
        request=None,
        responses={
            201: MLBackendSerializer,
            400: FIELD_ERRORS,
            403: OWNERS_ONLY,
            404: NOT_FOUND,
            503: OpenApiResponse(description="Label Studio could not be reached."),
        },
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Connect as ML backend: alweb registers itself in the project's Label Studio with its credentials
        (idempotent: a second call returns the same backend). Label Studio calls /health and /setup at once, so
        alweb must be reachable from it at ALWEB_BASE_URL."""
        self._owner_only()
        backend = labelstudio_register_ml_backend(project=self.project)
        return Response(MLBackendSerializer(self._answer(ml_backend_id=backend)).data, status=status.HTTP_201_CREATED)
