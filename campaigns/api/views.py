"""API views, kept thin: resolve the project (404 for non-members), validate the shape with a serializer, call one
service or query, serialize the result. Errors go through `campaigns.api.errors.exception_handler`."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, cast

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Prefetch, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from campaigns import selectors
from campaigns.api.common import FIELD_ERRORS, ID_REGEX, NOT_FOUND, OWNERS_ONLY, PROJECT_PK, ApiViewSet
from campaigns.api.label_views import ItemDetailSerializer
from campaigns.api.pagination import KnownCountPagination
from campaigns.api.parsers import LenientJSONParser
from campaigns.api.permissions import OwnerForActions, ProjectMember, require_owner_for_connection, role_of
from campaigns.api.serializers import (
    AnnotationFilterSerializer,
    AnnotationSerializer,
    ExternalModelSerializer,
    ImportErrorSerializer,
    ImportResultSerializer,
    ItemFilterSerializer,
    ItemImportSerializer,
    ItemSerializer,
    MembershipSerializer,
    MembershipWriteSerializer,
    ModelVersionSerializer,
    ProjectDeleteSerializer,
    ProjectSerializer,
)
from campaigns.models import Annotation, Item, Membership, Project
from campaigns.selectors.labels import label_changes_ordered
from campaigns.services.actions import project_delete_with_labelstudio
from campaigns.services.items import items_import_upload
from campaigns.services.projects import (
    project_add_member,
    project_create,
    project_remove_member,
    project_update,
)
from campaigns.services.training import model_register_external
from models_registry.models import ModelVersion


@extend_schema(tags=["projects"])
@extend_schema_view(
    create=extend_schema(responses={201: ProjectSerializer, 400: FIELD_ERRORS}),
    update=extend_schema(responses={200: ProjectSerializer, 400: FIELD_ERRORS, 403: OWNERS_ONLY, 404: NOT_FOUND}),
    partial_update=extend_schema(
        responses={200: ProjectSerializer, 400: FIELD_ERRORS, 403: OWNERS_ONLY, 404: NOT_FOUND}
    ),
    destroy=extend_schema(responses={204: None, 403: OWNERS_ONLY, 404: NOT_FOUND}),
)
class ProjectViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    ApiViewSet,
):
    """Your projects. Members read and edit settings; owners also delete, manage members and set Label Studio."""

    serializer_class = ProjectSerializer
    permission_classes = [IsAuthenticated, OwnerForActions]
    parser_classes = [LenientJSONParser]
    owner_actions = frozenset({"destroy"})
    lookup_value_regex = ID_REGEX

    def get_queryset(self) -> QuerySet[Project]:
        if self.fake():
            return Project.objects.none()
        return selectors.projects_for_user(user=self.request.user)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        # IsAuthenticated ran first: the user is a real one.
        project = project_create(owner=cast(AbstractBaseUser, request.user), **serializer.validated_data)
        project.user_role = Membership.Role.OWNER  # type: ignore[attr-defined]
        return Response(self.get_serializer(project).data, status=status.HTTP_201_CREATED)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        project = self.get_object()
        serializer = self.get_serializer(project, data=request.data, partial=kwargs.get("partial", False))
        serializer.is_valid(raise_exception=True)
        require_owner_for_connection(project, serializer.validated_data)
        updated = project_update(project=project, **serializer.validated_data)
        updated.user_role = role_of(project)  # type: ignore[attr-defined]
        return Response(self.get_serializer(updated).data)

    @extend_schema(parameters=[ProjectDeleteSerializer])
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        project = self.get_object()
        options = ProjectDeleteSerializer(data=request.query_params)
        options.is_valid(raise_exception=True)
        project_delete_with_labelstudio(project=project, label_studio=options.validated_data["label_studio"])
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(parameters=[PROJECT_PK], tags=["members"])
@extend_schema_view(
    create=extend_schema(
        request=MembershipWriteSerializer,
        responses={201: MembershipSerializer, 400: FIELD_ERRORS, 403: OWNERS_ONLY, 404: NOT_FOUND},
    ),
    destroy=extend_schema(
        parameters=[OpenApiParameter("username", OpenApiTypes.STR, OpenApiParameter.PATH)],
        responses={204: None, 400: FIELD_ERRORS, 403: OWNERS_ONLY, 404: NOT_FOUND},
    ),
)
class MembershipViewSet(mixins.ListModelMixin, ApiViewSet):
    """Who is in a project. Owners add members (or change a role) by username, and remove them."""

    serializer_class = MembershipSerializer
    permission_classes = [IsAuthenticated, ProjectMember, OwnerForActions]
    parser_classes = [LenientJSONParser]
    owner_actions = frozenset({"create", "destroy"})
    lookup_field = "user__username"
    lookup_url_kwarg = "username"
    lookup_value_regex = r"[\w.@+-]+"  # Django's username characters; anything else (NUL included) is a 404

    def get_queryset(self) -> QuerySet[Membership]:
        if self.fake():
            return Membership.objects.none()
        return selectors.memberships_for_project(project=self.project)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = MembershipWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        membership = project_add_member(project=self.project, user=data["username"], role=data["role"])
        return Response(MembershipSerializer(membership).data, status=status.HTTP_201_CREATED)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        membership = self.get_object()
        project_remove_member(project=self.project, user=membership.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(parameters=[PROJECT_PK], tags=["items"])
@extend_schema_view(list=extend_schema(parameters=[ItemFilterSerializer]))
class ItemViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """A project's items, filtered by split, labeled, state and key; and bulk import by upload."""

    serializer_class = ItemSerializer
    permission_classes = [IsAuthenticated, ProjectMember]
    lookup_value_regex = ID_REGEX
    pagination_class = KnownCountPagination

    def get_serializer_class(self) -> Any:
        return ItemDetailSerializer if self.action == "retrieve" else super().get_serializer_class()

    def get_queryset(self) -> QuerySet[Item]:
        if self.fake():
            return Item.objects.none()
        if self.action == "retrieve":  # with its label history, oldest first
            return selectors.items_for_project(project=self.project).prefetch_related(
                Prefetch("label_changes", queryset=label_changes_ordered())
            )
        if self.action != "list":
            return selectors.items_for_project(project=self.project)
        filters = ItemFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        self.item_filters = filters.validated_data
        return selectors.items_for_project(project=self.project, **filters.validated_data)

    def known_count(self) -> int | None:
        """The list's total from the kept item counts when only split, labeled and state filter it (the paginator's
        COUNT(*) read every matching item: 0.4 s at a million); a key or a search is counted on the rows."""
        filters = getattr(self, "item_filters", None)
        if filters is None or filters.get("key") or filters.get("search"):
            return None
        return selectors.items_count_matching(
            project=self.project, split=filters.get("split"), labeled=filters.get("labeled"), state=filters.get("state")
        )

    @extend_schema(
        request={"multipart/form-data": ItemImportSerializer},
        responses={
            200: ImportResultSerializer,
            400: OpenApiResponse(
                ImportErrorSerializer,
                description="The file was refused and nothing was imported (or a form field is invalid).",
            ),
            404: NOT_FOUND,
        },
    )
    @action(
        detail=False,
        methods=["post"],
        url_path="import",
        url_name="import",
        parser_classes=[MultiPartParser, FormParser],
        serializer_class=ItemImportSerializer,
    )
    def import_items(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Import items from an uploaded file, synchronously and all or nothing (the `import_items` command's rules)."""
        serializer = ItemImportSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        result = items_import_upload(
            project=self.project,
            upload=data["file"],
            fmt=data.get("format"),
            tile=data.get("tile"),
            label_from_dir=data["labels_from_folders"],
            labels_as_ground_truth=data["as_ground_truth"],
        )
        return Response(ImportResultSerializer(asdict(result)).data)


@extend_schema(parameters=[PROJECT_PK], tags=["annotations"])
@extend_schema_view(list=extend_schema(parameters=[AnnotationFilterSerializer]))
class AnnotationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """Every annotator's answer as received from Label Studio (the item holds the resolved label)."""

    serializer_class = AnnotationSerializer
    permission_classes = [IsAuthenticated, ProjectMember]
    lookup_value_regex = ID_REGEX

    def get_queryset(self) -> QuerySet[Annotation]:
        if self.fake():
            return Annotation.objects.none()
        if self.action != "list":
            return selectors.annotations_for_project(project=self.project)
        filters = AnnotationFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        params = filters.validated_data
        return selectors.annotations_for_project(
            project=self.project,
            item_id=params.get("item"),
            annotator=params.get("annotator"),
            deleted=params.get("deleted"),
        )


@extend_schema(parameters=[PROJECT_PK], tags=["model versions"])
class ModelVersionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """The project's model versions with their metrics, oldest first; owners register external models."""

    serializer_class = ModelVersionSerializer
    permission_classes = [IsAuthenticated, ProjectMember, OwnerForActions]
    lookup_value_regex = ID_REGEX
    owner_actions = ("create",)

    def get_queryset(self) -> QuerySet[ModelVersion]:
        if self.fake():
            return ModelVersion.objects.none()
        return selectors.model_versions_for_project(project=self.project)

    @extend_schema(
        request=ExternalModelSerializer,
        responses={201: ModelVersionSerializer, 400: FIELD_ERRORS, 403: OWNERS_ONLY, 404: NOT_FOUND},
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Register an MLflow pyfunc (e.g. a detector) as the project's next version and champion: cycles then
        score with it instead of training. The URI is loaded first: one that does not load is a 400 on model_uri."""
        body = ExternalModelSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        mv = model_register_external(project=self.project, **body.validated_data)
        return Response(ModelVersionSerializer(mv).data, status=status.HTTP_201_CREATED)
