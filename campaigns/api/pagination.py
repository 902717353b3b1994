"""Limit/offset pagination with bounds, so one request can neither page a million items nor overflow SQL OFFSET."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import QuerySet
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.views import APIView


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    max_limit = 1000
    # Postgres OFFSET is a bigint; larger values are an error there, so they are clamped here (and return nothing).
    max_offset = 2**62

    def get_offset(self, request: Request) -> int:
        return min(super().get_offset(request), self.max_offset)


class KnownCountPagination(BoundedLimitOffsetPagination):
    """Limit/offset whose total comes from the view's `known_count()` when the view knows it without counting rows
    (None: the queryset is counted, as usual). A million-item project's page cost 0.4 s in COUNT(*) alone."""

    def paginate_queryset(
        self, queryset: QuerySet[Any] | Sequence[Any], request: Request, view: APIView | None = None
    ) -> list[Any] | None:
        self._view = view
        return super().paginate_queryset(queryset, request, view)

    def get_count(self, queryset: QuerySet[Any] | Sequence[Any]) -> int:
        known_count = getattr(self._view, "known_count", None)
        known = known_count() if known_count is not None else None
        return int(known) if known is not None else int(super().get_count(queryset))
