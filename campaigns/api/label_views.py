"""/api/projects/{project_pk}/suspects/ and /reviews/: likely label errors with the model's suggestion, sending them
back to Label Studio for review, and deciding a review (409 when the item is no longer in review). Any member may
read, send back and decide (it is labeling work); a non-member gets 404, as everywhere under a project."""

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
from campaigns.api.permissions import ProjectMember
from campaigns.api.serializers import ItemSerializer
from campaigns.models import LabelChange, LabelReview, LabelSuspect, ReviewState
from campaigns.selectors.labels import (
    label_quality_latest,
    label_reviews_for_project,
    label_suspects_of_run,
    open_reviews_by_item,
)
from campaigns.services.reviews import ReviewClosed, review_decide, reviews_request


class LabelChangeSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user.username", default="", read_only=True)

    class Meta:
        model = LabelChange
        fields = ["old_value", "new_value", "source", "user", "annotator", "reason", "created_at"]
        read_only_fields = fields


class ItemDetailSerializer(ItemSerializer):
    """An item with its label history, oldest change first (the detail view only: one more query per item)."""

    label_history = LabelChangeSerializer(source="label_changes", many=True, read_only=True)

    class Meta(ItemSerializer.Meta):
        fields = [*ItemSerializer.Meta.fields, "label_history"]
        read_only_fields = fields


class SuspectSerializer(serializers.ModelSerializer):
    item_key = serializers.CharField(source="item.key", read_only=True)
    current_label = serializers.JSONField(source="item.label", read_only=True, help_text="The item's label now.")
    cycle = serializers.IntegerField(source="run.cycle.number", read_only=True)
    review = serializers.SerializerMethodField(help_text="The open review's id, if the item is in review.")

    class Meta:
        model = LabelSuspect
        fields = [
            "item",
            "item_key",
            "rank",
            "quality",
            "label",
            "current_label",
            "suggested_label",
            "suggested_probability",
            "annotations",
            "consensus_label",
            "consensus_quality",
            "cycle",
            "review",
        ]
        read_only_fields = fields

    def get_review(self, suspect: LabelSuspect) -> int | None:
        return self.context.get("open_reviews", {}).get(suspect.item_id)


class ReviewSerializer(serializers.ModelSerializer):
    item_key = serializers.CharField(source="item.key", read_only=True)
    current_label = serializers.JSONField(source="item.label", read_only=True)

    class Meta:
        model = LabelReview
        fields = [
            "id",
            "item",
            "item_key",
            "state",
            "label_before",
            "suggested_label",
            "current_label",
            "sync_state",
            "ls_task_id",
            "decision",
            "decided_annotator",
            "created_at",
            "decided_at",
        ]
        read_only_fields = fields


class ReviewRequestSerializer(serializers.Serializer):
    item_ids = serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=2**63 - 1), min_length=1)


class ReviewDecisionSerializer(serializers.Serializer):
    # `label` shadows Field.label in the stubs, not at run time: DRF reads declared fields from the class body.
    label = serializers.CharField(max_length=200)  # type: ignore[assignment]


class ReviewFilterSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=ReviewState.choices, required=False)


@extend_schema(parameters=[PROJECT_PK], tags=["label quality"])
@extend_schema_view(list=extend_schema(responses={200: SuspectSerializer(many=True), 404: NOT_FOUND}))
class SuspectViewSet(mixins.ListModelMixin, ApiViewSet):
    """Likely label errors from the latest label-quality run (cleanlab's confident learning on out-of-fold
    probabilities after a training), most likely wrong first, with the model's suggestion. POST review/ sends chosen
    items back to Label Studio for review."""

    serializer_class = SuspectSerializer
    permission_classes = [IsAuthenticated, ProjectMember]

    def get_queryset(self) -> QuerySet[LabelSuspect]:
        if self.fake():
            return LabelSuspect.objects.none()
        return label_suspects_of_run(run=label_quality_latest(project=self.project)).select_related("run__cycle")

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        rows = list(page or [])
        context = {
            **self.get_serializer_context(),
            "open_reviews": open_reviews_by_item(item_ids=[s.item_id for s in rows]),
        }
        return self.get_paginated_response(SuspectSerializer(rows, many=True, context=context).data)

    @extend_schema(
        request=ReviewRequestSerializer,
        responses={201: ReviewSerializer(many=True), 400: FIELD_ERRORS, 404: NOT_FOUND},
    )
    @action(detail=False, methods=["post"], url_path="review", url_name="review")
    def review(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Send these items back for review (an item already in review keeps its open review)."""
        body = ReviewRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        reviews = reviews_request(project=self.project, item_ids=body.validated_data["item_ids"], user=request.user)  # type: ignore[arg-type]
        return Response(ReviewSerializer(reviews, many=True).data, status=status.HTTP_201_CREATED)


@extend_schema(parameters=[PROJECT_PK], tags=["label quality"])
@extend_schema_view(
    list=extend_schema(parameters=[ReviewFilterSerializer]),
    retrieve=extend_schema(responses={200: ReviewSerializer, 404: NOT_FOUND}),
)
class ReviewViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """Items sent back for review, newest first; POST {id}/decide/ records a decision given outside Label Studio."""

    serializer_class = ReviewSerializer
    permission_classes = [IsAuthenticated, ProjectMember]
    lookup_value_regex = ID_REGEX

    def get_queryset(self) -> QuerySet[LabelReview]:
        if self.fake():
            return LabelReview.objects.none()
        if self.action != "list":
            return label_reviews_for_project(project=self.project)
        filters = ReviewFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return label_reviews_for_project(project=self.project, state=filters.validated_data.get("state"))

    @extend_schema(
        request=ReviewDecisionSerializer,
        responses={200: ReviewSerializer, 400: FIELD_ERRORS, 404: NOT_FOUND, 409: CONFLICT},
    )
    @action(detail=True, methods=["post"], url_path="decide", url_name="decide")
    def decide(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The reviewer's label: replaces the item's label (history kept). 409 if the item is no longer in review."""
        review = self.get_object()
        body = ReviewDecisionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            decided = review_decide(review=review, label=body.validated_data["label"], user=request.user)  # type: ignore[arg-type]
        except ReviewClosed as exc:
            raise Conflict(str(exc)) from exc
        return Response(ReviewSerializer(decided).data)
