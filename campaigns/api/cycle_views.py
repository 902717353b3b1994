"""/api/projects/{project_pk}/cycles/: list, retrieve, start, and the steps a person (or a script) drives.

Roles: every member of a project may run its cycles: start, preview, select, sync, pull, cancel and retry. A cycle is
the team's day-to-day work, and each step is recorded on the cycle (who started it, the stored selection with its
parameters), so nothing here is owner-only; owners additionally manage members, the Label Studio connection and
deletion (see campaigns.api.views). Non-members get 404 for everything under the project.

State conflicts are 409 with a reason in words: a start while another cycle is open, a select on a cycle that is not
scored, a sync with nothing selected, a retry of a cycle that did not fail.
"""

from __future__ import annotations

from typing import Any, cast

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from campaigns import selectors
from campaigns.api.common import CONFLICT, FIELD_ERRORS, ID_REGEX, NOT_FOUND, PROJECT_PK, ApiViewSet, Conflict
from campaigns.api.cycle_reads import CycleReadsMixin
from campaigns.api.cycle_serializers import (
    CycleSerializer,
    CycleStartSerializer,
    PreviewRequestSerializer,
    PreviewSerializer,
    SelectionRequestSerializer,
    SelectionSerializer,
)
from campaigns.api.parsers import LenientJSONParser
from campaigns.api.permissions import ProjectMember
from campaigns.models import Cycle
from campaigns.services.actions import (
    NothingToSelect,
    cycle_retry_and_resume,
    cycle_start,
    cycle_sync_request,
    project_pull_request,
)
from campaigns.services.cycles import CycleConflict, InvalidTransition, cycle_cancel
from campaigns.services.params import KEEP, SelectionParams
from campaigns.services.selection import selection_make, selection_preview
from campaigns.states import CycleState

S = CycleState


class DetailSerializer(serializers.Serializer):
    detail = serializers.CharField()


def _selection_params(cycle: Cycle, data: dict[str, Any]) -> SelectionParams:
    """A validated selection request as SelectionParams: what is left out keeps the cycle's value."""
    return SelectionParams.for_cycle(
        cycle,
        budget=data.get("budget"),
        threshold=data.get("threshold", KEEP),
        threshold_quantile=data.get("threshold_quantile", KEEP),
        strategy=data.get("strategy"),
        options=data.get("strategy_params"),
        seed=data.get("seed"),
    )


@extend_schema(parameters=[PROJECT_PK], tags=["cycles"])
@extend_schema_view(
    list=extend_schema(summary="The project's cycles, newest first."),
    retrieve=extend_schema(responses={200: CycleSerializer, 404: NOT_FOUND}),
    create=extend_schema(
        summary="Start a cycle",
        request=CycleStartSerializer,
        responses={201: CycleSerializer, 400: FIELD_ERRORS, 404: NOT_FOUND, 409: CONFLICT},
    ),
)
class CycleViewSet(CycleReadsMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """A project's active-learning cycles: state, live progress, parameters, model version and selection size."""

    serializer_class = CycleSerializer
    permission_classes = [IsAuthenticated, ProjectMember]
    parser_classes = [LenientJSONParser]
    lookup_value_regex = ID_REGEX

    def get_queryset(self) -> QuerySet[Cycle]:
        if self.fake():
            return Cycle.objects.none()
        return selectors.cycles_for_project(project=self.project)

    def get_object(self) -> Cycle:
        cycle: Cycle = super().get_object()
        cycle.project = self.project  # already loaded by ProjectMember: the services read its labels, not the DB
        return cycle

    def _cycle_response(self, cycle: Cycle, code: int = status.HTTP_200_OK) -> Response:
        """The cycle as it is now (a service may have moved it), read again with the listing's joins."""
        fresh = self.get_queryset().get(pk=cycle.pk)
        return Response(CycleSerializer(fresh).data, status=code)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Create the project's next cycle and start it (training, or a cold-start selection without labels).

        Parameters left out take the project's defaults. Only one cycle per project may be open at a time.
        """
        params = CycleStartSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        try:
            # IsAuthenticated ran first: the user is a real one.
            user = cast(AbstractBaseUser, request.user)
            cycle = cycle_start(project=self.project, user=user, **params.validated_data)
        except CycleConflict as exc:
            raise Conflict(f"Cannot start a cycle: {exc}. Finish or cancel it first.") from exc
        except NothingToSelect as exc:
            raise Conflict(f"Cannot start a cycle: {exc}.") from exc
        return self._cycle_response(cycle, status.HTTP_201_CREATED)

    @extend_schema(
        request=PreviewRequestSerializer,
        responses={200: PreviewSerializer, 400: FIELD_ERRORS, 404: NOT_FOUND, 409: CONFLICT},
    )
    @action(detail=True, methods=["post"])
    def preview(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """What a selection with these parameters would pick, without storing anything.

        Answers from the scores stored when scoring finished: the qualifying count and histogram need no scan of
        the score table, and the picks read the top of the (cycle, -uncertainty) index.
        """
        cycle = self.get_object()
        body = PreviewRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        if not selectors.cycle_has_scores(cycle=cycle):
            raise Conflict(f"Cycle {cycle.number} has no scores yet ({cycle.state}): a preview needs a scored cycle.")
        preview = selection_preview(cycle=cycle, params=_selection_params(cycle, data), show=data["show"])
        keys = selectors.items_keys(item_ids=[pick["item_id"] for pick in preview["items"]])
        preview["items"] = [{**pick, "key": keys.get(pick["item_id"], "")} for pick in preview["items"]]
        return Response(PreviewSerializer(preview).data)

    @extend_schema(
        request=SelectionRequestSerializer,
        responses={200: SelectionSerializer, 400: FIELD_ERRORS, 404: NOT_FOUND, 409: CONFLICT},
    )
    @action(detail=True, methods=["post"])
    def select(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Select the items to label and store the selection (once: a repeat during the same select returns it).

        Only a scored cycle can be selected: earlier, there is nothing to rank by (and a cycle still training would
        skip its model); later, the cycle has its selection already.
        """
        cycle = self.get_object()
        body = SelectionRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        if cycle.state != S.SCORED:
            raise Conflict(f"Only a scored cycle can be selected; cycle {cycle.number} is {cycle.state}.")
        try:
            selection = selection_make(cycle=cycle, params=_selection_params(cycle, body.validated_data))
        except InvalidTransition as exc:
            raise Conflict(f"Nothing was selected: {exc}.") from exc
        return Response(SelectionSerializer(selection).data)

    @extend_schema(request=None, responses={202: CycleSerializer, 404: NOT_FOUND, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def sync(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Send the selected items, their predictions and scores to Label Studio (queued; follow the cycle's state)."""
        cycle = self.get_object()
        try:
            cycle_sync_request(cycle=cycle)
        except InvalidTransition as exc:
            raise Conflict(f"Not sent: {exc}.") from exc
        return self._cycle_response(cycle, status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: DetailSerializer, 404: NOT_FOUND, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def pull(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Pull the project's annotations from Label Studio now rather than at the next periodic pull (queued).

        A pull is per project (Label Studio holds one project for all cycles); it closes cycles whose items are all
        answered.
        """
        cycle = self.get_object()
        try:
            project_pull_request(project=cycle.project)
        except InvalidTransition as exc:
            raise Conflict(f"Not pulled: {exc}.") from exc
        return Response({"detail": "Pulling annotations from Label Studio."}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={200: CycleSerializer, 404: NOT_FOUND, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Cancel an open cycle; its selected items go back to the pool. A closed, failed or cancelled one is a 409."""
        cycle = self.get_object()
        try:
            cycle_cancel(cycle=cycle)
        except InvalidTransition as exc:
            state = Cycle.objects.filter(pk=cycle.pk).values_list("state", flat=True).first()  # now, not as read
            raise Conflict(f"Only an open cycle can be cancelled; cycle {cycle.number} is {state}.") from exc
        return self._cycle_response(cycle)

    @extend_schema(request=None, responses={200: CycleSerializer, 404: NOT_FOUND, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Retry a failed cycle from the stage it failed in, and queue that stage's task again."""
        cycle = self.get_object()
        try:
            cycle_retry_and_resume(cycle=cycle)
        except InvalidTransition as exc:
            raise Conflict(f"Only a failed cycle can be retried; cycle {cycle.number} is {cycle.state}.") from exc
        except CycleConflict as exc:
            raise Conflict(f"Cannot retry cycle {cycle.number}: {exc}.") from exc
        return self._cycle_response(cycle)
