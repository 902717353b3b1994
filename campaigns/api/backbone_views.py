"""/api/projects/{project_pk}/backbones/: upload a pretrained image network (TorchScript, torch.export, or a
state_dict for alweb's CNN) into media storage; the answer is the name `model_config.backbone` takes. Any member
may, as any member may edit the project's settings."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from campaigns.api.common import FIELD_ERRORS, NOT_FOUND, PROJECT_PK
from campaigns.api.errors import ApiErrorsMixin
from campaigns.api.permissions import ProjectMember
from campaigns.models import Project
from campaigns.services.backbones import backbone_store


class BackboneUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="torch.jit.save, torch.export.save or torch.save output.")


class BackboneStoredSerializer(serializers.Serializer):
    backbone = serializers.CharField(help_text="The name to put in model_config.backbone.")


@extend_schema(
    parameters=[PROJECT_PK],
    tags=["projects"],
    request={"multipart/form-data": BackboneUploadSerializer},
    responses={201: BackboneStoredSerializer, 400: FIELD_ERRORS, 404: NOT_FOUND},
)
class BackboneUploadView(ApiErrorsMixin, GenericAPIView):
    """Store a backbone file (named by its content: the same file uploaded twice is stored once)."""

    permission_classes = [IsAuthenticated, ProjectMember]
    parser_classes = [MultiPartParser, FormParser]
    serializer_class = BackboneUploadSerializer
    pagination_class = None
    project: Project  # set by ProjectMember

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        upload = BackboneUploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        file = upload.validated_data["file"]
        name = backbone_store(project_id=self.project.pk, upload=file, size=int(file.size or 0))
        return Response(BackboneStoredSerializer({"backbone": name}).data, status=status.HTTP_201_CREATED)
