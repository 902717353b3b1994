"""/api/projects/{project_pk}/pretrainings/: self-supervised pretraining of an image project's trunk on its pool.

POST requests a run (202: a task pretrains it, stores the TorchScript file under backbones/ and registers it in
MLflow; with "use": true the project's model_config.backbone then points at it); GET follows its progress. Any member
may (as any member may edit the project's settings); a non-member gets 404, as everywhere under a project. One run
at a time per project: a second request while one is queued or running is 409. POST .../{id}/cancel/ stops a queued
or running run; POST .../{id}/requeue/ sends a stalled one's task again (its message or worker was lost).
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from campaigns.api.common import CONFLICT, FIELD_ERRORS, ID_REGEX, NOT_FOUND, PROJECT_PK, ApiViewSet, Conflict
from campaigns.api.parsers import LenientJSONParser
from campaigns.api.permissions import ProjectMember
from campaigns.models import BackbonePretraining
from campaigns.selectors.pretraining import pretrainings_for_project
from campaigns.services.pretraining import (
    MAX_EPOCHS,
    PretrainingConflict,
    pretraining_cancel,
    pretraining_request,
    pretraining_requeue,
)
from engine.ssl import SSLConfig


class PretrainingRequestSerializer(serializers.Serializer):
    # Bounds are checked by the service (its 400 names the field and why); the serializer checks the types.
    epochs = serializers.IntegerField(default=SSLConfig.epochs, help_text=f"Passes over the pool, 1 to {MAX_EPOCHS}.")
    max_seconds = serializers.IntegerField(
        default=600, help_text="Training stops after this many seconds (at most ALWEB_SSL_MAX_SECONDS)."
    )
    flip = serializers.BooleanField(
        default=False, help_text="Mirror images in the views: only where a mirrored image means the same."
    )
    use = serializers.BooleanField(
        default=False, help_text="Once done, model_config.backbone points at the new trunk (frozen mode)."
    )


class PretrainingSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", read_only=True, allow_null=True, default=None)

    class Meta:
        model = BackbonePretraining
        fields = [
            "id",
            "state",
            "params",
            "progress",
            "images",
            "backbone",
            "sha256",
            "model_uri",
            "mlflow_run_id",
            "metrics",
            "failure_reason",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


@extend_schema(parameters=[PROJECT_PK], tags=["pretraining"])
@extend_schema_view(
    list=extend_schema(summary="The project's pretraining runs, newest first."),
    create=extend_schema(
        request=PretrainingRequestSerializer,
        responses={202: PretrainingSerializer, 400: FIELD_ERRORS, 404: NOT_FOUND, 409: CONFLICT},
    ),
    retrieve=extend_schema(responses={200: PretrainingSerializer, 404: NOT_FOUND}),
)
class PretrainingViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """SimCLR on the project's own images (no label used): the compact CNN's trunk, exported as TorchScript to
    backbones/project-<id>/ and registered in MLflow as a version of alweb-project-<id>-backbone. Its file name
    (`backbone`) is what model_config.backbone takes; `use` sets it when the run is done."""

    serializer_class = PretrainingSerializer
    permission_classes = [IsAuthenticated, ProjectMember]
    parser_classes = [LenientJSONParser]
    lookup_value_regex = ID_REGEX

    def get_queryset(self) -> QuerySet[BackbonePretraining]:
        if self.fake():
            return BackbonePretraining.objects.none()
        return pretrainings_for_project(project=self.project)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = PretrainingRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            run = pretraining_request(project=self.project, user=request.user, **serializer.validated_data)  # type: ignore[arg-type]
        except PretrainingConflict as exc:
            raise Conflict(f"Not started: {exc}.") from exc
        return Response(PretrainingSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={200: PretrainingSerializer, 404: NOT_FOUND, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Stop a queued or running pretraining (it ends failed, "cancelled by <you>"); a finished one is a 409."""
        try:
            run = pretraining_cancel(run=self.get_object(), user=request.user)
        except PretrainingConflict as exc:
            raise Conflict(f"Not cancelled: {exc}.") from exc
        return Response(PretrainingSerializer(run).data)

    @extend_schema(request=None, responses={202: PretrainingSerializer, 404: NOT_FOUND, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def requeue(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Send the task of a run stuck queued or running (no progress for ALWEB_REQUEUE_STALE_AFTER seconds)
        again; a finished run, or one that moved more recently, is a 409 saying why."""
        try:
            run = pretraining_requeue(run=self.get_object())
        except PretrainingConflict as exc:
            raise Conflict(f"Not requeued: {exc}.") from exc
        return Response(PretrainingSerializer(run).data, status=status.HTTP_202_ACCEPTED)
