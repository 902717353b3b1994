"""/api/projects/{project_pk}/stats/ and /learning-curve/: the project's numbers, for any member."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from campaigns import selectors
from campaigns.api.common import NOT_FOUND, PROJECT_PK
from campaigns.api.cycle_serializers import LearningCurvePointSerializer, ProjectStatsSerializer
from campaigns.api.errors import ApiErrorsMixin
from campaigns.api.permissions import ProjectMember
from campaigns.models import Project


class _ProjectReadView(ApiErrorsMixin, GenericAPIView):
    permission_classes = [IsAuthenticated, ProjectMember]
    pagination_class = None
    project: Project  # set by ProjectMember


@extend_schema(parameters=[PROJECT_PK], tags=["projects"], responses={200: ProjectStatsSerializer, 404: NOT_FOUND})
class ProjectStatsView(_ProjectReadView):
    """Item counts by split, labeled or not, and the evaluation sample's progress."""

    serializer_class = ProjectStatsSerializer

    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        stats = {
            **selectors.items_count_by_split(project=self.project),
            "evaluation": [asdict(s) for s in selectors.evaluation_status(project=self.project)],
        }
        return Response(ProjectStatsSerializer(stats).data)


@extend_schema(
    parameters=[PROJECT_PK],
    tags=["projects"],
    responses={200: LearningCurvePointSerializer(many=True), 404: NOT_FOUND},
)
class LearningCurveView(_ProjectReadView):
    """One point per cycle with a trained model, in cycle order: labels used and test metrics. Not paginated: one
    point per cycle stays small."""

    serializer_class = LearningCurvePointSerializer

    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        points = selectors.project_learning_curve(project=self.project)
        return Response(LearningCurvePointSerializer(points, many=True).data)
