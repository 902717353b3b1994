"""/api/projects/{project_pk}/predict/ and /model/download/: the champion model used outside Label Studio.

Members only (a non-member gets 404, as everywhere under a project). Bounded: ALWEB_PREDICT_MAX_ITEMS items and
ALWEB_PREDICT_MAX_BYTES of body per request (a JSON body also stops at the API's JSON limit), over which the answer
is a 413 naming the limit, read from the Content-Length header and the item count before any image is decoded or
any model loaded. A bad item is a 400 naming it, in DRF's shape for lists: `{"items": {"1": {"url": ["why"]}}}`.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from campaigns.api.common import FIELD_ERRORS, NOT_FOUND, PROJECT_PK
from campaigns.api.errors import ApiErrorsMixin
from campaigns.api.parsers import LenientJSONParser
from campaigns.api.permissions import ProjectMember
from campaigns.ingest.jsonlimits import MAX_BYTES as JSON_MAX_BYTES
from campaigns.models import Project
from campaigns.services.predictions import (
    NoChampion,
    PredictInput,
    PredictInputError,
    champion_archive,
    predict,
)

TOO_LARGE = OpenApiResponse(
    description='Over a request limit: {"detail": "why", "limit_items": n} or {"detail": "why", "limit_bytes": n}.'
)
NO_CHAMPION = OpenApiResponse(description='The project has no champion model yet: {"detail": "why"}.')


class PredictItemSerializer(serializers.Serializer):
    key = serializers.CharField(required=False, max_length=512, help_text="Your id for the item, echoed back.")
    text = serializers.CharField(required=False, trim_whitespace=False, max_length=100_000)
    url = serializers.CharField(required=False, max_length=2048, help_text="An image URL on an allowed origin.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        given = [name for name in ("text", "url") if name in attrs]
        if len(given) != 1:
            raise serializers.ValidationError(
                {"text": ["give exactly one of text (a text project) or url (an image project)"]}
            )
        if "text" in attrs and not attrs["text"].strip():
            raise serializers.ValidationError({"text": ["must not be empty"]})
        return attrs


class PredictRequestSerializer(serializers.Serializer):
    items = PredictItemSerializer(many=True, allow_empty=False)


class PredictUploadSerializer(serializers.Serializer):
    images = serializers.ListField(child=serializers.FileField(), allow_empty=False, help_text="One item per file.")


class BoxSerializer(serializers.Serializer):
    """A predicted box in the shape of a detection label: the top-left corner and size as fractions of the image."""

    label = serializers.CharField()  # type: ignore[assignment]  # a field named like Field.label, as elsewhere
    x = serializers.FloatField()
    y = serializers.FloatField()
    w = serializers.FloatField()
    h = serializers.FloatField()
    score = serializers.FloatField(help_text="The detector's confidence in the box.")


class PredictionSerializer(serializers.Serializer):
    key = serializers.CharField(allow_null=True)
    label = serializers.CharField(  # type: ignore[assignment]
        allow_null=True, help_text="The most probable class (detection: the top box's)."
    )
    probabilities = serializers.DictField(child=serializers.FloatField(), help_text="Mean over the MC passes.")
    uncertainty = serializers.FloatField(help_text="By `heuristic`: higher = less sure.")
    confidence = serializers.FloatField()
    boxes = BoxSerializer(many=True, help_text="Detection projects only.")


class ModelVersionRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    version = serializers.IntegerField()
    registered_name = serializers.CharField()
    registered_version = serializers.CharField()
    architecture = serializers.CharField()


class PredictResponseSerializer(serializers.Serializer):
    model_version = ModelVersionRefSerializer()
    heuristic = serializers.CharField(help_text="What the uncertainty is: the project's default heuristic.")
    mc_iterations = serializers.IntegerField(help_text="MC-dropout passes averaged per item.")
    predictions = PredictionSerializer(many=True)


def _field(item: dict[str, Any]) -> str:
    return "text" if "text" in item else "url"


def _too_large(detail: str, **limit: int) -> Response:
    return Response({"detail": detail, **limit}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)


def _input_error(err: PredictInputError) -> Response:
    """The service's error in the serializers' shape (DRF keys a list's errors by the item's index), so every 400 of
    this endpoint reads the same: `{"items": {"2": {"url": ["why"]}}}`, `{"images": {"0": ["why"]}}`."""
    name, index, field = err.where
    detail: Any = {field: [err.reason]} if field else [err.reason]
    return Response({name: {str(index): detail}}, status=status.HTTP_400_BAD_REQUEST)


class _ChampionView(ApiErrorsMixin, GenericAPIView):
    permission_classes = [IsAuthenticated, ProjectMember]
    pagination_class = None
    project: Project  # set by ProjectMember


class PredictView(_ChampionView):
    """The champion model's MC-dropout prediction for new data. JSON `{"items": [{"text": ...} | {"url": ...}]}`,
    or a multipart upload of image files under `images`. Each prediction has the class, the class probabilities
    (mean over the dropout passes), the uncertainty by the project's default heuristic, and the model version.
    Detection projects get the detector's boxes. Nothing is stored."""

    parser_classes = [LenientJSONParser, MultiPartParser]
    serializer_class = PredictRequestSerializer

    @extend_schema(
        parameters=[PROJECT_PK],
        tags=["predictions"],
        request={"application/json": PredictRequestSerializer, "multipart/form-data": PredictUploadSerializer},
        responses={
            200: PredictResponseSerializer,
            400: FIELD_ERRORS,
            404: NOT_FOUND,
            409: NO_CHAMPION,
            413: TOO_LARGE,
        },
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        is_json = request.content_type.startswith("application/json")
        limit = min(settings.ALWEB_PREDICT_MAX_BYTES, JSON_MAX_BYTES) if is_json else settings.ALWEB_PREDICT_MAX_BYTES
        if length > limit:
            return _too_large(f"the request is {length} bytes, over the limit of {limit} bytes", limit_bytes=limit)
        if is_json:
            raw = request.data.get("items") if isinstance(request.data, dict) else None
            count = len(raw) if isinstance(raw, list) else 0
        else:
            count = len(request.FILES.getlist("images"))
        if count > settings.ALWEB_PREDICT_MAX_ITEMS:
            limit = settings.ALWEB_PREDICT_MAX_ITEMS
            return _too_large(f"{count} items, over the limit of {limit} per request", limit_items=limit)
        inputs, keys = self._inputs(request, is_json=is_json)
        try:
            result = predict(project=self.project, inputs=inputs)
        except NoChampion as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        except PredictInputError as exc:
            return _input_error(exc)
        mv = result.model_version
        body = {
            "model_version": {
                "id": mv.pk,
                "version": mv.version,
                "registered_name": mv.registered_name,
                "registered_version": mv.registered_version,
                "architecture": mv.architecture,
            },
            "heuristic": result.heuristic,
            "mc_iterations": result.mc_iterations,
            "predictions": [{"key": key, **vars(p)} for key, p in zip(keys, result.predictions, strict=True)],
        }
        return Response(PredictResponseSerializer(body).data)

    def _inputs(self, request: Request, *, is_json: bool) -> tuple[list[PredictInput], list[str | None]]:
        if is_json:
            body = PredictRequestSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            items = body.validated_data["items"]
            inputs = [
                PredictInput(
                    where=("items", i, "text" if "text" in it else "url"), text=it.get("text"), url=it.get("url")
                )
                for i, it in enumerate(items)
            ]
            return inputs, [it.get("key") for it in items]
        upload = PredictUploadSerializer(data={"images": request.FILES.getlist("images")})
        upload.is_valid(raise_exception=True)
        files = upload.validated_data["images"]
        return [PredictInput(where=("images", i, ""), image=f.read()) for i, f in enumerate(files)], [
            f.name for f in files
        ]


class ModelDownloadView(_ChampionView):
    """The champion's MLflow model folder as a zip (MLmodel, weights, requirements): unpack it and load it with
    `mlflow.pyfunc.load_model(folder)`."""

    @extend_schema(
        parameters=[PROJECT_PK],
        tags=["model versions"],
        responses={
            (200, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY, description="The model folder, zipped."),
            404: NOT_FOUND,
            409: NO_CHAMPION,
        },
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response | FileResponse:
        try:
            name, path = champion_archive(project=self.project)
        except NoChampion as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        handle = path.open("rb")
        path.unlink()  # the open handle keeps the data until the response is sent; nothing is left behind
        return FileResponse(handle, as_attachment=True, filename=name, content_type="application/zip")
