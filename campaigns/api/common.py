"""What every API view module shares: the base viewset, path parameters, documented error responses, and the 409
that a refused state change becomes."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import status, viewsets
from rest_framework.exceptions import APIException

from campaigns.api.errors import ApiErrorsMixin
from campaigns.api.pagination import BoundedLimitOffsetPagination
from campaigns.models import Project

ID_REGEX = "[0-9]{1,18}"  # fits a bigint: a longer id is a 404, not a database error
PROJECT_PK = OpenApiParameter("project_pk", OpenApiTypes.INT, OpenApiParameter.PATH, description="Project id.")
FIELD_ERRORS = OpenApiResponse(description='Invalid input, by field: {"field": ["reason", ...]}.')
NOT_FOUND = OpenApiResponse(description="No such project (or you are not a member), or no such object in it.")
OWNERS_ONLY = OpenApiResponse(description="Only project owners may do this.")
CONFLICT = OpenApiResponse(
    description='The cycle (or project) is not in a state that allows this: {"detail": "why, in words"}.'
)


class Conflict(APIException):
    """409: the request is well formed but the cycle's state refuses it (another cycle is open, nothing to sync...)."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state of the resource."
    default_code = "conflict"


class ApiViewSet(ApiErrorsMixin, viewsets.GenericViewSet):
    pagination_class = BoundedLimitOffsetPagination
    project: Project  # set by ProjectMember on nested views

    def fake(self) -> bool:
        """True while drf-spectacular builds the schema (no request user, no project)."""
        return getattr(self, "swagger_fake_view", False)
