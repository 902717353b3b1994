"""/api/projects/{project_pk}/agreement/ and /annotators/: how far annotators agree, and each one's work. Any
member reads them; a non-member gets 404, as everywhere under a project."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from campaigns import selectors
from campaigns.api.common import FIELD_ERRORS, NOT_FOUND, PROJECT_PK
from campaigns.api.errors import ApiErrorsMixin
from campaigns.api.permissions import ProjectMember
from campaigns.models import Project

MAX_ITEMS = 500


def ratio(help_text: str = "") -> serializers.FloatField:
    """A statistic that is null where undefined (too few answers, or one class only)."""
    return serializers.FloatField(allow_null=True, help_text=help_text or "Null where undefined.")


class ProjectAgreementSerializer(serializers.Serializer):
    applies = serializers.BooleanField(help_text="False for detection projects: no agreement measure for boxes yet.")
    reason = serializers.CharField(help_text="Why a figure is missing, in words; empty when all are there.")
    annotators_per_task = serializers.IntegerField()
    consensus_rule = serializers.CharField()
    answers = serializers.IntegerField(help_text="Live answers with a known class.")
    annotators = serializers.IntegerField()
    items_annotated = serializers.IntegerField()
    items_with_overlap = serializers.IntegerField(help_text="Items with answers from two annotators or more.")
    items_disputed = serializers.IntegerField(help_text="Of those, items whose answers are not all the same.")
    mean_item_agreement = ratio()
    krippendorff_alpha = ratio()
    fleiss_kappa = ratio()
    fleiss_items = serializers.IntegerField(help_text="Items with exactly fleiss_raters answers, the ones it uses.")
    fleiss_raters = serializers.IntegerField()
    cohen_kappa = ratio("Only when exactly two annotators answered.")
    cohen_items = serializers.IntegerField()


class ClassAgreementSerializer(serializers.Serializer):
    label = serializers.CharField()  # type: ignore[assignment]  # a field named like Field.label, as elsewhere
    answers = serializers.IntegerField()
    items = serializers.IntegerField(help_text="Overlapped items whose consensus is this class.")
    krippendorff_alpha = ratio("This class against all others.")
    mean_item_agreement = ratio()


class ItemAgreementSerializer(serializers.Serializer):
    item_id = serializers.IntegerField()
    key = serializers.CharField()
    label = serializers.JSONField(allow_null=True, help_text="The consensus (the item's resolved label).")  # type: ignore[assignment]
    agreement = serializers.FloatField(help_text="Share of the answers that are the most frequent one.")
    answers = serializers.ListField(child=serializers.DictField(), help_text='[{"annotator": ..., "value": ...}]')


class AgreementSerializer(serializers.Serializer):
    project = ProjectAgreementSerializer()
    classes = ClassAgreementSerializer(many=True)
    items = ItemAgreementSerializer(many=True, help_text="The least agreed items first.")


class AgreementQuerySerializer(serializers.Serializer):
    items = serializers.IntegerField(
        min_value=0, max_value=MAX_ITEMS, default=20, help_text="How many of the least agreed items to list."
    )


class AnnotatorSerializer(serializers.Serializer):
    annotator = serializers.CharField()
    answers = serializers.IntegerField()
    items_with_overlap = serializers.IntegerField()
    agreement_with_consensus = ratio()
    kappa_with_consensus = ratio()
    mean_lead_time = serializers.FloatField(allow_null=True, help_text="Seconds on a task, as Label Studio measured.")
    labels_per_hour = serializers.FloatField(allow_null=True, help_text="Answers per hour of lead time.")
    first_answer_at = serializers.DateTimeField(allow_null=True)
    last_answer_at = serializers.DateTimeField(allow_null=True)
    crowdlab_quality = serializers.FloatField(
        allow_null=True,
        help_text="CROWDLAB's estimate of the annotator's quality in [0, 1], from the latest label-quality run over "
        "items with several answers (null before one).",
    )


class _ProjectReadView(ApiErrorsMixin, GenericAPIView):
    permission_classes = [IsAuthenticated, ProjectMember]
    pagination_class = None
    project: Project  # set by ProjectMember


@extend_schema(
    parameters=[PROJECT_PK, AgreementQuerySerializer],
    tags=["agreement"],
    responses={200: AgreementSerializer, 400: FIELD_ERRORS, 404: NOT_FOUND},
)
class AgreementView(_ProjectReadView):
    """Agreement between annotators: the project's Krippendorff's alpha, Fleiss' kappa (items with the same number
    of answers) and Cohen's kappa (two annotators), per class, and the least agreed items with their answers."""

    serializer_class = AgreementSerializer

    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        query = AgreementQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        report = selectors.agreement_for_project(project=self.project, items_limit=query.validated_data["items"])
        return Response(AgreementSerializer(asdict(report)).data)


@extend_schema(
    parameters=[PROJECT_PK], tags=["agreement"], responses={200: AnnotatorSerializer(many=True), 404: NOT_FOUND}
)
class AnnotatorsView(_ProjectReadView):
    """Each annotator's work, most answers first: answers, agreement (and Cohen's kappa) with the consensus on items
    others answered too, mean lead time and labels per hour. Not paginated: one row per annotator."""

    serializer_class = AnnotatorSerializer

    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        rows = selectors.annotators_for_project(project=self.project)
        return Response(AnnotatorSerializer([asdict(r) for r in rows], many=True).data)
