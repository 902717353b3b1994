"""/api/projects/{id}/items/: filters, retrieve, roles, query-count guards; ground truth is not exposed."""

from __future__ import annotations

from typing import Any

import pytest

from tests.factories import ItemFactory, ProjectFactory

pytestmark = pytest.mark.django_db


def url(project: Any, item: Any = None) -> str:
    return f"/api/projects/{project.pk}/items/" + (f"{item.pk}/" if item else "")


@pytest.fixture
def items(project: Any) -> dict[str, Any]:
    return {
        "pool": ItemFactory(project=project, key="pool-a", split="pool"),
        "pool_labeled": ItemFactory(project=project, key="pool-b", split="pool", label="positive"),
        "test": ItemFactory(project=project, key="test-a", split="test", ground_truth="negative"),
        "invalid": ItemFactory(project=project, key="bad-a", split="pool", state="invalid"),
    }


def keys(response: Any) -> set[str]:
    assert response.status_code == 200, response.content
    return {row["key"] for row in response.json()["results"]}


def test_list_and_filters(as_member: Any, project: Any, items: dict[str, Any]) -> None:
    ItemFactory(project=ProjectFactory(), key="someone-elses")
    assert keys(as_member.get(url(project))) == {"pool-a", "pool-b", "test-a", "bad-a"}
    assert keys(as_member.get(url(project), {"split": "pool"})) == {"pool-a", "pool-b", "bad-a"}
    assert keys(as_member.get(url(project), {"labeled": "yes"})) == {"pool-b"}
    assert keys(as_member.get(url(project), {"labeled": "no", "split": "pool"})) == {"pool-a", "bad-a"}
    assert keys(as_member.get(url(project), {"state": "invalid"})) == {"bad-a"}
    assert keys(as_member.get(url(project), {"key": "pool-a"})) == {"pool-a"}
    assert keys(as_member.get(url(project), {"search": "-a"})) == {"pool-a", "test-a", "bad-a"}


def test_list_is_paginated_and_bounded(as_member: Any, project: Any) -> None:
    ItemFactory.create_batch(5, project=project)
    data = as_member.get(url(project), {"limit": 2, "offset": 1}).json()
    assert (data["count"], len(data["results"])) == (5, 2)
    assert data["next"] and data["previous"]
    assert as_member.get(url(project), {"limit": 10**9}).status_code == 200


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"split": "holdout"}, "split"),
        ({"labeled": "maybe"}, "labeled"),
        ({"state": "gone"}, "state"),
        ({"key": "x" * 600}, "key"),
        ({"search": "a\x00b"}, "search"),
    ],
)
def test_bad_filters_are_400_naming_the_parameter(as_member: Any, project: Any, params: Any, field: str) -> None:
    response = as_member.get(url(project), params)
    assert response.status_code == 400
    assert field in response.json()


def test_list_query_count_does_not_grow_with_items(
    as_member: Any, project: Any, django_assert_max_num_queries: Any
) -> None:
    ItemFactory.create_batch(60, project=project)
    with django_assert_max_num_queries(4):  # token, project, count, page
        response = as_member.get(url(project), {"limit": 60, "split": "pool", "labeled": "no"})
    assert len(response.json()["results"]) == 60


def test_retrieve_hides_ground_truth(as_member: Any, project: Any, items: dict[str, Any]) -> None:
    response = as_member.get(url(project, items["test"]))
    assert response.status_code == 200
    data = response.json()
    assert data["key"] == "test-a"
    assert "ground_truth" not in data
    assert {"ls_task_id", "label_error", "split", "state", "label", "media"} <= set(data)


def test_item_of_another_project_is_404(as_member: Any, project: Any) -> None:
    other = ItemFactory(project=ProjectFactory())
    assert as_member.get(url(project, other)).status_code == 404
    assert as_member.get(f"/api/projects/{project.pk}/items/{10**25}/").status_code == 404


def test_permissions(anon: Any, as_outsider: Any, project: Any, items: dict[str, Any]) -> None:
    assert anon.get(url(project)).status_code == 401
    assert anon.get(url(project, items["pool"])).status_code == 401
    assert as_outsider.get(url(project)).status_code == 404
    assert as_outsider.get(url(project, items["pool"])).status_code == 404
    assert as_outsider.get(f"/api/projects/{10**6}/items/").status_code == 404


def test_items_are_read_only_here(as_owner: Any, project: Any, items: dict[str, Any]) -> None:
    assert as_owner.delete(url(project, items["pool"])).status_code == 405
    assert as_owner.patch(url(project, items["pool"]), {"label": "x"}, format="json").status_code == 405
