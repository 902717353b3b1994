"""Limit/offset pagination with bounds, so one request can neither page a million items nor overflow SQL OFFSET."""

from __future__ import annotations

from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    max_limit = 1000
    # Postgres OFFSET is a bigint; larger values are an error there, so they are clamped here (and return nothing).
    max_offset = 2**62

    def get_offset(self, request: Request) -> int:
        return min(super().get_offset(request), self.max_offset)
