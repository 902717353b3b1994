"""/api/projects/{project_pk}/exports/: start an export (202: it runs as a task) and follow it to its download link.
Any member may export; a non-member gets 404, as everywhere under a project."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from campaigns import selectors
from campaigns.api.common import FIELD_ERRORS, ID_REGEX, NOT_FOUND, PROJECT_PK, ApiViewSet
from campaigns.api.permissions import ProjectMember
from campaigns.models import Export
from campaigns.services.exports import export_create, export_download_url


class ExportRequestSerializer(serializers.Serializer):
    # The format is checked by the service (it knows which formats fit which task), so its 400 says why.
    format = serializers.CharField(max_length=16)
    as_of_cycle = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=2**31 - 1)
    include_media = serializers.BooleanField(default=False)
    include_unlabeled = serializers.BooleanField(default=False)


class ExportSerializer(serializers.ModelSerializer):
    download_url = serializers.SerializerMethodField(help_text="Signed link, valid ALWEB_MEDIA_URL_TTL seconds.")

    class Meta:
        model = Export
        fields = [
            "id",
            "format",
            "as_of_cycle",
            "include_media",
            "include_unlabeled",
            "state",
            "progress",
            "rows",
            "result",
            "failure_reason",
            "created_at",
            "finished_at",
            "download_url",
        ]
        read_only_fields = fields

    def get_download_url(self, export: Export) -> str:
        return export_download_url(export=export)


@extend_schema(parameters=[PROJECT_PK], tags=["exports"])
@extend_schema_view(
    create=extend_schema(
        request=ExportRequestSerializer, responses={202: ExportSerializer, 400: FIELD_ERRORS, 404: NOT_FOUND}
    ),
    retrieve=extend_schema(responses={200: ExportSerializer, 404: NOT_FOUND}),
)
class ExportViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """A project's exports, newest first. POST starts one: the labeled items (or a cycle's training snapshot with
    `as_of_cycle`) as csv, jsonl, parquet, coco, yolo or imagefolder; GET follows its progress and, once done,
    gives a signed download link that expires."""

    serializer_class = ExportSerializer
    permission_classes = [IsAuthenticated, ProjectMember]
    lookup_value_regex = ID_REGEX

    def get_queryset(self) -> QuerySet[Export]:
        if self.fake():
            return Export.objects.none()
        return selectors.exports_for_project(project=self.project)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = ExportRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        export = export_create(
            project=self.project,
            user=request.user,  # type: ignore[arg-type]
            fmt=data["format"],
            as_of_cycle=data.get("as_of_cycle"),
            include_media=data["include_media"],
            include_unlabeled=data["include_unlabeled"],
        )
        return Response(ExportSerializer(export).data, status=status.HTTP_202_ACCEPTED)
