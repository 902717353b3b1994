"""/api/projects/{project_pk}/features/: the items' cached model inputs (text embeddings, a frozen backbone's
features), how many are ready, and a request to compute the missing ones now. Any member may."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from campaigns.api.common import NOT_FOUND, PROJECT_PK
from campaigns.api.errors import ApiErrorsMixin
from campaigns.api.permissions import ProjectMember
from campaigns.models import Project
from campaigns.services.feature_fanout import features_request, features_status


class FeaturesStatusSerializer(serializers.Serializer):
    key = serializers.CharField(
        allow_null=True, help_text="The cache key of the project's inputs; null when they are not cached (pixels)."
    )
    items = serializers.IntegerField(help_text="Items in the project.")
    ready = serializers.IntegerField(help_text="Items whose features are computed and cached.")
    queued = serializers.BooleanField(
        required=False, help_text="POST: whether a computation of the missing features was queued (not for pixels)."
    )


@extend_schema(parameters=[PROJECT_PK], tags=["projects"])
class FeaturesView(ApiErrorsMixin, GenericAPIView):
    """The project's item features (text embeddings, a frozen backbone's features): how many are ready (GET), and a
    request to compute the missing ones on the scoring workers now (POST; an import sends one by itself)."""

    permission_classes = [IsAuthenticated, ProjectMember]
    serializer_class = FeaturesStatusSerializer
    pagination_class = None
    project: Project  # set by ProjectMember

    @extend_schema(responses={200: FeaturesStatusSerializer, 404: NOT_FOUND})
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(FeaturesStatusSerializer(features_status(project=self.project)).data)

    @extend_schema(
        request=None, responses={200: FeaturesStatusSerializer, 202: FeaturesStatusSerializer, 404: NOT_FOUND}
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        queued = features_request(project=self.project)
        data = {**FeaturesStatusSerializer(features_status(project=self.project)).data, "queued": queued}
        return Response(data, status=status.HTTP_202_ACCEPTED if queued else status.HTTP_200_OK)
