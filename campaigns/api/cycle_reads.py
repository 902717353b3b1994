"""Read-only views of one cycle's data: its stored selection, its score histogram and its scores.

Mixed into `CycleViewSet` (campaigns.api.cycle_views), so they share its project/cycle lookup and permissions. Each
answers in a fixed number of queries, whatever the size of the pool.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from campaigns import selectors
from campaigns.api.common import FIELD_ERRORS, NOT_FOUND
from campaigns.api.cycle_serializers import (
    HistogramQuerySerializer,
    HistogramSerializer,
    ScoreFilterSerializer,
    ScoreSerializer,
    SelectedItemSerializer,
    SelectionPageSerializer,
    SelectionSerializer,
)
from campaigns.api.pagination import BoundedLimitOffsetPagination

if TYPE_CHECKING:
    from rest_framework.viewsets import GenericViewSet

    _Base = GenericViewSet
else:
    _Base = object

NO_SELECTION = OpenApiResponse(description="No such project or cycle, or the cycle has not selected yet.")


class CycleReadsMixin(_Base):
    @extend_schema(
        parameters=[
            OpenApiParameter("limit", OpenApiTypes.INT, OpenApiParameter.QUERY, description="Items per page."),
            OpenApiParameter("offset", OpenApiTypes.INT, OpenApiParameter.QUERY, description="Items to skip."),
        ],
        responses={200: SelectionPageSerializer, 404: NO_SELECTION},
    )
    @action(detail=True, methods=["get"], pagination_class=BoundedLimitOffsetPagination)
    def selection(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The stored selection: its parameters and model version, and its items by rank (paginated) with score,
        predicted label, key, Label Studio task and sync state."""
        cycle = self.get_object()
        selection = getattr(cycle, "selection", None)
        if selection is None:
            raise NotFound(f"Cycle {cycle.number} has not selected any items yet.")
        paginator = self.paginator
        assert paginator is not None
        page = paginator.paginate_queryset(selectors.selected_items_for(selection=selection), request, view=self)
        return Response(
            {
                "selection": SelectionSerializer(selection).data,
                "count": paginator.count,  # type: ignore[attr-defined]
                "next": paginator.get_next_link(),  # type: ignore[attr-defined]
                "previous": paginator.get_previous_link(),  # type: ignore[attr-defined]
                "results": SelectedItemSerializer(page, many=True).data,
            }
        )

    @extend_schema(
        parameters=[HistogramQuerySerializer],
        responses={200: HistogramSerializer, 400: FIELD_ERRORS, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["get"])
    def histogram(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The distribution of the cycle's uncertainties, from the statistics stored when scoring finished (empty
        before). `bins` re-bins the stored fine histogram; no score is read."""
        cycle = self.get_object()
        query = HistogramQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return Response(
            HistogramSerializer(selectors.scores_histogram(cycle=cycle, bins=query.validated_data["bins"])).data
        )

    @extend_schema(
        parameters=[ScoreFilterSerializer],
        responses={200: ScoreSerializer(many=True), 400: FIELD_ERRORS, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["get"], pagination_class=BoundedLimitOffsetPagination)
    def scores(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The cycle's per-item uncertainties (higher = more informative), filtered by range and predicted label,
        most uncertain first unless `ordering=uncertainty`; paginated."""
        cycle = self.get_object()
        query = ScoreFilterSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        scores = selectors.scores_for_cycle(
            cycle=cycle,
            min_uncertainty=params.get("min_uncertainty"),
            max_uncertainty=params.get("max_uncertainty"),
            predicted_label=params.get("predicted_label"),
            descending=params["ordering"] == "-uncertainty",
        )
        page = self.paginate_queryset(scores)
        return self.get_paginated_response(ScoreSerializer(page, many=True).data)
