"""The dashboard pages a lead keeps open, with more rows than one (so an N+1 would show): how many queries each makes,
and that none of them counts a project's items (bench/load.py: counting a million-item project cost 0.2 to 0.5 s
per count, per request). Counts come from the kept ItemCount rows."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from campaigns.models import Item
from campaigns.services.cycles import cycle_progress
from campaigns.states import CycleState
from tests.campaigns.web.builders import scored_cycle
from tests.factories import CycleFactory, ItemFactory, ProjectFactory

# The one count of items left on the project page: the label balance groups the labeled items (a few thousand
# beside a million-item pool, read through their own partial index) by label.
LABEL_BALANCE = 'SELECT "campaigns_item"."label" AS "label", COUNT('


def counts_items(queries: list[dict[str, Any]]) -> list[str]:
    """Queries that count a project's items row by row."""
    return [
        q["sql"]
        for q in queries
        if '"campaigns_item"' in q["sql"] and "COUNT(" in q["sql"] and not q["sql"].startswith(LABEL_BALANCE)
    ]


def test_project_list_counts_no_items_and_its_queries_do_not_grow(
    client_for: Any, owner: Any, django_assert_max_num_queries: Any
) -> None:
    for i in range(6):
        project = ProjectFactory(owner=owner, name=f"big {i}")
        Item.objects.bulk_create([Item(project=project, key=f"k{j}", split="pool") for j in range(30 + i)])
        ItemFactory.create_batch(2, project=project, split="train", label="positive")
    client = client_for(owner)
    with django_assert_max_num_queries(6), CaptureQueriesContext(connection) as ctx:
        response = client.get(reverse("dashboard:project-list"))
    assert response.status_code == 200
    assert counts_items(ctx.captured_queries) == []
    for i in range(6):
        assert response.context["projects"].get(name=f"big {i}").item_count == 32 + i


def test_project_page_counts_no_items(client_for: Any, owner: Any, django_assert_max_num_queries: Any) -> None:
    project = ProjectFactory(owner=owner, name="big")
    for number in (1, 2, 3):
        CycleFactory(project=project, number=number, state=CycleState.CLOSED)
    scored_cycle(project, n=80)
    ItemFactory.create_batch(5, project=project, split="test", label="positive")
    client = client_for(owner)
    with django_assert_max_num_queries(18), CaptureQueriesContext(connection) as ctx:
        response = client.get(reverse("dashboard:project-detail", args=[project.pk]))
    assert response.status_code == 200
    assert counts_items(ctx.captured_queries) == []
    assert response.context["counts"]["total"] == 85
    assert response.context["counts"]["labeled"] == 5


def test_cycle_page_preview_and_progress_poll_stay_small(
    client_for: Any, owner: Any, django_assert_max_num_queries: Any
) -> None:
    project = ProjectFactory(owner=owner, name="big")
    cycle = scored_cycle(project, n=120, budget=50)
    other = ProjectFactory(owner=owner, name="scoring")
    scoring = CycleFactory(project=other, number=1, state=CycleState.SCORING)
    cycle_progress(cycle_id=scoring.pk, stage=CycleState.SCORING, done=2048, total=1_000_000)
    client = client_for(owner)
    page = reverse("dashboard:cycle-detail", args=[project.pk, cycle.number])
    preview = reverse("dashboard:cycle-preview", args=[project.pk, cycle.number])
    status = reverse("dashboard:cycle-status", args=[other.pk, scoring.number])
    with django_assert_max_num_queries(12):
        assert client.get(page).status_code == 200
    with django_assert_max_num_queries(9):
        response = client.get(preview, {"threshold": 0.1, "budget": 50, "strategy": "topk"})
    assert response.status_code == 200 and len(response.context["preview"]["rows"]) == 20
    with django_assert_max_num_queries(4), CaptureQueriesContext(connection) as ctx:
        response = client.get(f"{status}?seen=scoring", HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and b"2048 of 1000000 items" in response.content
    assert not any("campaigns_score" in q["sql"] or "campaigns_item" in q["sql"] for q in ctx.captured_queries)
