"""/cycles/{id}/scores/ (filters, order, the uncertainty index), /stats/ and /learning-curve/."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

from campaigns import selectors
from tests.factories import CycleFactory, ItemFactory, ModelVersionFactory, ProjectFactory, scored_cycle

pytestmark = pytest.mark.django_db


def scores_url(cycle: Any) -> str:
    return f"/api/projects/{cycle.project_id}/cycles/{cycle.pk}/scores/"


def rows(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.content
    return list(response.json()["results"])


def test_scores_most_uncertain_first_and_paginated(
    as_member: Any, project: Any, django_assert_max_num_queries: Any
) -> None:
    cycle = scored_cycle(project, n=120)
    scored_cycle(ProjectFactory(), n=5)  # another project's cycle
    with django_assert_max_num_queries(5):  # token, project, cycle, count, page (item key joined)
        response = as_member.get(scores_url(cycle), {"limit": 100})
    data = response.json()
    assert data["count"] == 120
    got = [row["uncertainty"] for row in data["results"]]
    assert got == sorted(got, reverse=True) and got[0] == 119 / 120 and len(got) == 100
    first = data["results"][0]
    assert set(first) == {"item", "key", "uncertainty", "heuristic", "predicted_label", "confidence"}
    assert first["key"].startswith("item-") and first["heuristic"] == "bald"
    ascending = [row["uncertainty"] for row in rows(as_member.get(scores_url(cycle), {"ordering": "uncertainty"}))]
    assert ascending[:3] == [0.0, 1 / 120, 2 / 120]


def test_scores_filters(as_member: Any, project: Any) -> None:
    cycle = scored_cycle(project, n=30)
    ranged = rows(as_member.get(scores_url(cycle), {"min_uncertainty": 0.5, "max_uncertainty": 0.6}))
    assert {round(row["uncertainty"] * 30) for row in ranged} == {15, 16, 17, 18}
    negative = rows(as_member.get(scores_url(cycle), {"predicted_label": "negative"}))
    assert len(negative) == 10 and {row["predicted_label"] for row in negative} == {"negative"}
    both = rows(as_member.get(scores_url(cycle), {"predicted_label": "positive", "min_uncertainty": 0.9}))
    assert [round(row["uncertainty"] * 30) for row in both] == [27]
    assert rows(as_member.get(scores_url(cycle), {"predicted_label": "nothing"})) == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"min_uncertainty": "abc"}, "min_uncertainty"),
        ({"min_uncertainty": "nan"}, "min_uncertainty"),
        ({"max_uncertainty": "inf"}, "max_uncertainty"),
        ({"min_uncertainty": 0.8, "max_uncertainty": 0.2}, "max_uncertainty"),
        ({"ordering": "key"}, "ordering"),
        ({"predicted_label": "x" * 201}, "predicted_label"),
        ({"predicted_label": "a\x00b"}, "predicted_label"),
    ],
)
def test_scores_bad_filters_are_400(as_member: Any, project: Any, params: dict[str, Any], field: str) -> None:
    cycle = scored_cycle(project, n=3)
    response = as_member.get(scores_url(cycle), params)
    assert response.status_code == 400
    assert field in response.json()


def test_scores_query_reads_the_uncertainty_index(project: Any) -> None:
    """The list's query can be answered from the (cycle, -uncertainty) index, in both directions, sorting only ties:
    with full scans and full sorts priced out, the planner finds that path (on a few test rows, with whatever
    statistics the shared test table has, it would otherwise sort them)."""
    cycle = scored_cycle(project, n=20)
    for descending in (True, False):
        qs = selectors.scores_for_cycle(cycle=cycle, min_uncertainty=0.1, descending=descending)[:10]
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("SET LOCAL enable_bitmapscan = off")
            cursor.execute("SET LOCAL enable_sort = off")  # incremental sort (of ties) stays allowed
            plan = qs.explain()
        assert "score_cycle_uncertainty" in plan, plan


def test_stats_counts_items_by_split(as_member: Any, project: Any, django_assert_max_num_queries: Any) -> None:
    ItemFactory.create_batch(3, project=project, split="pool")
    ItemFactory(project=project, split="pool", label="positive")
    ItemFactory.create_batch(2, project=project, split="test")
    ItemFactory(project=ProjectFactory(), split="pool")  # another project's
    with django_assert_max_num_queries(4):  # token, project, counts, evaluation sample
        response = as_member.get(f"/api/projects/{project.pk}/stats/")
    assert response.status_code == 200
    assert response.json() == {
        "by_split": {"pool": {"total": 4, "labeled": 1}, "test": {"total": 2, "labeled": 0}},
        "total": 6,
        "labeled": 1,
        # 3 classes x 5 would be 15 test items, but the split holds 2.
        "evaluation": [
            {"split": "valid", "target": 0, "labeled": 0, "pending": 0},
            {"split": "test", "target": 2, "labeled": 0, "pending": 0},
        ],
    }


def test_learning_curve_one_point_per_trained_cycle(as_member: Any, project: Any) -> None:
    for number, (labels, accuracy) in enumerate([(10, 0.5), (30, 0.7)], start=1):
        version = ModelVersionFactory(
            project=project,
            version=number,
            label_count=labels,
            metrics={"accuracy": accuracy, "macro_f1": accuracy - 0.1, "valid": {"accuracy": accuracy + 0.05}},
        )
        CycleFactory(project=project, number=number, state="closed", model_version=version)
    CycleFactory(project=project, number=3, state="cancelled")  # cold start: no model, no point
    response = as_member.get(f"/api/projects/{project.pk}/learning-curve/")
    assert response.status_code == 200
    points = response.json()
    assert [(p["cycle"], p["labels"], p["accuracy"]) for p in points] == [(1, 10, 0.5), (2, 30, 0.7)]
    assert points[1]["macro_f1"] == pytest.approx(0.6) and points[1]["valid_accuracy"] == pytest.approx(0.75)
    assert points[0]["per_class_f1"] == {}


def test_stats_permissions(anon: Any, as_outsider: Any, project: Any) -> None:
    for path in ("stats", "learning-curve"):
        assert anon.get(f"/api/projects/{project.pk}/{path}/").status_code == 401
        assert as_outsider.get(f"/api/projects/{project.pk}/{path}/").status_code == 404
        assert as_outsider.get(f"/api/projects/{10**17}/{path}/").status_code == 404


def test_a_cancelled_cycles_model_is_no_point_and_a_closing_model_is(as_member: Any, project: Any) -> None:
    """Issue 16 item 8: the curve is what people labeled with, and ends at the labels spent."""
    used = ModelVersionFactory(project=project, version=1, label_count=10, metrics={"accuracy": 0.5})
    CycleFactory(project=project, number=1, state="closed", model_version=used)
    closing = {"cycle": 1, "cycle_id": 0, "closing": True}
    ModelVersionFactory(project=project, version=2, label_count=20, metrics={"accuracy": 0.6}, params=closing)
    cancelled = ModelVersionFactory(project=project, version=3, label_count=25, metrics={"accuracy": 0.9})
    CycleFactory(project=project, number=2, state="cancelled", model_version=cancelled)
    points = as_member.get(f"/api/projects/{project.pk}/learning-curve/").json()
    assert [(p["cycle"], p["after_close"], p["labels"]) for p in points] == [(1, False, 10), (1, True, 20)]
