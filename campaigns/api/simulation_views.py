"""/api/projects/{project_pk}/simulations/: compare strategies with random sampling on the project's own labels.

POST requests a run (202: a task runs it on sandbox copies of the project); GET follows its progress and, once done,
its report. Any member may run one (it reads the project and changes nothing of it); a non-member gets 404, as
everywhere under a project. One run at a time per project: a second request while one is queued or running is 409.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from campaigns import selectors
from campaigns.api.common import CONFLICT, FIELD_ERRORS, ID_REGEX, NOT_FOUND, PROJECT_PK, ApiViewSet, Conflict
from campaigns.api.parsers import LenientJSONParser
from campaigns.api.permissions import ProjectMember
from campaigns.models import SimulationRun
from campaigns.services.comparison import MAX_BUDGET, MAX_CYCLES, MAX_SEEDS
from campaigns.services.simulation_runs import SimulationConflict, simulation_request, simulation_retry

ESTIMATE = "[value, 95% low, 95% high]; null where never reached"


class SimulationRequestSerializer(serializers.Serializer):
    # Names and bounds are checked by the service (it knows the strategies and the labels there are), so its 400
    # says why; the serializer checks the types.
    strategies = serializers.ListField(
        child=serializers.CharField(max_length=32),
        max_length=16,
        help_text='Strategies compared with random (random is always an arm), e.g. ["topk", "badge"].',
    )
    seeds = serializers.IntegerField(default=3, help_text=f"Paired seeds, 2 to {MAX_SEEDS}.")
    cycles = serializers.IntegerField(default=4, help_text=f"Cycles per run, 1 to {MAX_CYCLES}.")
    budget = serializers.IntegerField(default=20, help_text=f"Labels per cycle, 1 to {MAX_BUDGET}.")
    heuristic = serializers.CharField(
        max_length=32, required=False, help_text="Uncertainty heuristic; the project's default when left out."
    )
    noise_rate = serializers.FloatField(
        default=0.0, help_text="The simulated annotator's share of wrong answers, in [0, 1); 0: always right."
    )
    annotators = serializers.ListField(
        child=serializers.FloatField(),
        default=list,
        max_length=32,
        help_text="Several simulated annotators instead, by error rate (e.g. [0.05, 0.2, 0.3]): the project's "
        "annotators per task answer each item, the majority is its label. Not with noise_rate.",
    )


class ArmSerializer(serializers.Serializer):
    strategy = serializers.CharField()
    auc = serializers.ListField(child=serializers.FloatField(allow_null=True), help_text=f"Normalised AUC, {ESTIMATE}.")
    auc_gain_vs_random = serializers.ListField(
        child=serializers.FloatField(allow_null=True), help_text=f"AUC minus random's, paired over seeds, {ESTIMATE}."
    )
    labels_fraction_vs_random = serializers.ListField(
        child=serializers.FloatField(allow_null=True),
        help_text=f"Labels to reach random's final macro-F1, over random's, {ESTIMATE}.",
    )
    curve = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField()),
        help_text="The mean learning curve: [labels spent, macro-F1] on the common grid.",
    )


class ReportSerializer(serializers.Serializer):
    project = serializers.IntegerField()
    seeds = serializers.IntegerField()
    cycles = serializers.IntegerField()
    budget = serializers.IntegerField()
    heuristic = serializers.CharField()
    recommendation = serializers.CharField()
    arms = ArmSerializer(many=True)


@extend_schema_field(ReportSerializer)
class ReportField(serializers.JSONField):
    """The report as stored (`ComparisonReport.as_json()`), documented by ReportSerializer; {} until done."""


class SimulationSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", read_only=True, allow_null=True, default=None)
    report = ReportField(read_only=True)

    class Meta:
        model = SimulationRun
        fields = [
            "id",
            "strategies",
            "seeds",
            "cycles",
            "budget",
            "heuristic",
            "noise_rate",
            "annotators",
            "state",
            "progress",
            "report",
            "failure_reason",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


@extend_schema(parameters=[PROJECT_PK], tags=["simulations"])
@extend_schema_view(
    list=extend_schema(summary="The project's simulation runs, newest first."),
    create=extend_schema(
        request=SimulationRequestSerializer,
        responses={202: SimulationSerializer, 400: FIELD_ERRORS, 404: NOT_FOUND, 409: CONFLICT},
    ),
    retrieve=extend_schema(responses={200: SimulationSerializer, 404: NOT_FOUND}),
)
class SimulationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """Strategies against random on the project's own labels: every strategy and random run `seeds` paired seeds of
    `cycles` cycles of `budget` labels through the product's loop on sandbox copies (the labels become an oracle's
    answer key); the report gives per arm the normalised AUC, its gain over random and the labels needed to reach
    random's final macro-F1, each with a 95% bootstrap interval, the mean curves, and a recommendation."""

    serializer_class = SimulationSerializer
    permission_classes = [IsAuthenticated, ProjectMember]
    parser_classes = [LenientJSONParser]
    lookup_value_regex = ID_REGEX

    def get_queryset(self) -> QuerySet[SimulationRun]:
        if self.fake():
            return SimulationRun.objects.none()
        return selectors.simulations_for_project(project=self.project)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = SimulationRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            run = simulation_request(
                project=self.project,
                user=request.user,  # type: ignore[arg-type]
                strategies=data["strategies"],
                seeds=data["seeds"],
                cycles=data["cycles"],
                budget=data["budget"],
                heuristic=data.get("heuristic") or self.project.default_heuristic,
                noise_rate=data["noise_rate"],
                annotators=data["annotators"],
            )
        except SimulationConflict as exc:
            raise Conflict(f"Not started: {exc}.") from exc
        return Response(SimulationSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: SimulationSerializer, 404: NOT_FOUND, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """A failed run, queued again as it was asked."""
        try:
            run = simulation_retry(run=self.get_object())
        except SimulationConflict as exc:
            raise Conflict(f"Not retried: {exc}.") from exc
        return Response(SimulationSerializer(run).data, status=status.HTTP_202_ACCEPTED)
