"""Shared admin pieces: view-only records and a paginator that never counts a whole large table."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.functional import cached_property


class ViewOnlyAdmin(admin.ModelAdmin):
    """Immutable records: browsable, never added, changed or deleted from the admin."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class CappedCountPaginator(Paginator):
    """Counts at most CAP rows (COUNT over a LIMIT subquery): an unfiltered count of a 10M-row table takes seconds."""

    CAP = 100_000

    @cached_property
    def count(self) -> int:
        rows = self.object_list
        if isinstance(rows, QuerySet):
            return rows[: self.CAP].count()
        return min(len(rows), self.CAP)
