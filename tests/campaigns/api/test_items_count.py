"""The items page's total comes from the kept item counts for the filters they answer (split, labeled, state), and
from counting the rows for a key or a search; the total is the same either way."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext

from campaigns.models import Item, ItemState
from tests.factories import ItemFactory


def item_counts(queries: list[dict[str, Any]]) -> int:
    return sum('FROM "campaigns_item"' in q["sql"] and "COUNT(" in q["sql"] for q in queries)


def test_items_page_total_without_counting_rows(
    as_owner: Any, project: Any, django_assert_max_num_queries: Any
) -> None:
    Item.objects.bulk_create([Item(project=project, key=f"k{i:03d}", split="pool") for i in range(70)])
    ItemFactory.create_batch(4, project=project, split="pool", label="positive")
    ItemFactory.create_batch(3, project=project, split="test", label="negative", state=ItemState.SKIPPED)
    url = f"/api/projects/{project.pk}/items/"
    cases = [({}, 77), ({"split": "pool"}, 74), ({"labeled": "yes"}, 7), ({"labeled": "no", "split": "pool"}, 70)]
    cases += [({"state": "skipped"}, 3), ({"split": "train"}, 0)]
    for params, total in cases:
        with django_assert_max_num_queries(6), CaptureQueriesContext(connection) as ctx:
            response = as_owner.get(url, {**params, "limit": 10, "offset": 20})
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["count"] == total == Item.objects.filter(project=project, **_orm(params)).count(), params
        assert len(body["results"]) == max(0, min(10, total - 20))
        assert item_counts(ctx.captured_queries) == 0, params


def test_a_key_or_search_filter_is_counted_on_the_rows(as_owner: Any, project: Any) -> None:
    Item.objects.bulk_create([Item(project=project, key=f"k{i:03d}", split="pool") for i in range(30)])
    with CaptureQueriesContext(connection) as ctx:
        body = as_owner.get(f"/api/projects/{project.pk}/items/", {"search": "k01", "limit": 5}).json()
    assert body["count"] == 10 and item_counts(ctx.captured_queries) == 1


def _orm(params: dict[str, str]) -> dict[str, Any]:
    orm: dict[str, Any] = {k: v for k, v in params.items() if k in ("split", "state")}
    if "labeled" in params:
        orm["label__isnull"] = params["labeled"] != "yes"
    return orm
