"""Item counts by split, state and labeled-or-not, for the dashboard and the API, without counting the items.

On Postgres they come from `ItemCount` (campaigns/models/item_counts.py): rows the database's triggers append for
every statement that changes the items, a count being the sum of its rows. A few rows per project whatever its size,
where counting a million-item project took 0.2 to 0.5 s per count. Elsewhere (SQLite in `make run`, no triggers) the
items are counted, which is fine at that scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import BooleanField, Count, ExpressionWrapper, IntegerField, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce

from campaigns.models import Item, ItemCount, Project


@dataclass(frozen=True, slots=True)
class ItemCountRow:
    split: str
    state: str
    labeled: bool
    n: int


def item_counts_kept() -> bool:
    """Whether the database keeps ItemCount (the triggers of migration 0023 exist only on Postgres)."""
    return connection.vendor == "postgresql"


def items_counts(*, project: Project) -> list[ItemCountRow]:
    """The project's item counts, one row per (split, state, labeled) that has items: one small query."""
    if item_counts_kept():
        rows: QuerySet[Any] = (
            ItemCount.objects.filter(project_id=project.pk)
            .values("split", "state", "labeled")
            .annotate(total=Sum("n"))
            .order_by()
        )
    else:
        labeled = ExpressionWrapper(Q(label__isnull=False), output_field=BooleanField())
        rows = (
            Item.objects.filter(project=project)
            .annotate(labeled=labeled)
            .values("split", "state", "labeled")
            .annotate(total=Count("pk"))
            .order_by()
        )
    return [ItemCountRow(r["split"], r["state"], bool(r["labeled"]), int(r["total"])) for r in rows if r["total"]]


def items_count_matching(
    *, project: Project, split: str | None = None, labeled: bool | None = None, state: str | None = None
) -> int:
    """How many of the project's items have this split, labeled-ness and state (None: any)."""
    return sum(
        row.n
        for row in items_counts(project=project)
        if (split is None or row.split == split)
        and (labeled is None or row.labeled == labeled)
        and (state is None or row.state == state)
    )


def items_count_annotations() -> dict[str, Coalesce]:
    """`item_count` and `labeled_count` for a queryset of projects (correlated subqueries: one query for a list)."""
    if item_counts_kept():

        def summed(qs: QuerySet[ItemCount]) -> Coalesce:
            total = qs.order_by().values("project_id").annotate(s=Sum("n")).values("s")
            return Coalesce(Subquery(total, output_field=IntegerField()), 0)

        kept = ItemCount.objects.filter(project_id=OuterRef("pk"))
        return {"item_count": summed(kept), "labeled_count": summed(kept.filter(labeled=True))}

    def counted(qs: QuerySet[Item]) -> Coalesce:
        total = qs.order_by().values("project").annotate(c=Count("pk")).values("c")
        return Coalesce(Subquery(total, output_field=IntegerField()), 0)

    items = Item.objects.filter(project=OuterRef("pk"))
    return {"item_count": counted(items), "labeled_count": counted(items.filter(label__isnull=False))}
