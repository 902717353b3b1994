"""/api/projects/{id}/cycles/: list, retrieve and start (through pipeline.cycle_start), roles, bad input per field."""

from __future__ import annotations

from typing import Any

import pytest

from campaigns.models import Cycle
from tests.factories import (
    CycleFactory,
    ItemFactory,
    ModelVersionFactory,
    ProjectFactory,
    SelectedItemFactory,
    SelectionFactory,
)

pytestmark = pytest.mark.django_db


def url(project: Any, cycle: Any = None, action: str = "") -> str:
    base = f"/api/projects/{project.pk}/cycles/"
    if cycle is not None:
        base += f"{cycle.pk}/"
    return base + (f"{action}/" if action else "")


def test_list_shows_state_progress_parameters_model_and_selection(
    as_member: Any, project: Any, django_assert_max_num_queries: Any
) -> None:
    version = ModelVersionFactory(project=project, version=3)
    closed = CycleFactory(project=project, number=1, state="closed", model_version=version)
    SelectionFactory(cycle=closed, size=7, model_version=version)
    running = CycleFactory(
        project=project,
        number=2,
        state="scoring",
        budget=40,
        threshold=0.25,
        progress={"stage": "scoring", "done": 50, "total": 200, "eta_s": 12.5, "updated_at": "2026-01-01T00:00:00"},
    )
    for number in range(3, 8):
        CycleFactory(project=project, number=number, state="cancelled", model_version=version)
    CycleFactory(project=ProjectFactory(), number=1)  # another project's
    with django_assert_max_num_queries(4):  # token, project, count, page (model, selection, creator joined)
        response = as_member.get(url(project))
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["count"] == 7
    rows = {row["number"]: row for row in data["results"]}
    assert [row["number"] for row in data["results"]] == [7, 6, 5, 4, 3, 2, 1]  # newest first
    assert rows[2]["progress"] == {
        "stage": "scoring",
        "done": 50,
        "total": 200,
        "eta_s": 12.5,
        "updated_at": "2026-01-01T00:00:00",
    }
    assert (rows[2]["state"], rows[2]["budget"], rows[2]["threshold"], rows[2]["selection_size"]) == (
        "scoring",
        40,
        0.25,
        None,
    )
    assert rows[1]["selection_size"] == 7
    assert rows[1]["model_version"]["version"] == 3
    assert rows[2]["model_version"] is None
    assert {"heuristic", "mc_iterations", "strategy", "strategy_params", "seed", "auto_advance"} <= set(rows[1])
    assert running.pk == rows[2]["id"]


def test_progress_always_has_its_keys(as_member: Any, project: Any) -> None:
    cycle = CycleFactory(project=project, state="training", progress={})
    progress = as_member.get(url(project, cycle)).json()["progress"]
    assert progress == {"stage": "training", "done": 0, "total": 0, "eta_s": None, "updated_at": None}


def test_retrieve_and_other_projects_cycles(as_member: Any, project: Any) -> None:
    cycle = CycleFactory(project=project)
    assert as_member.get(url(project, cycle)).json()["id"] == cycle.pk
    other = CycleFactory(project=ProjectFactory())
    assert as_member.get(url(project, other)).status_code == 404
    assert as_member.get(f"/api/projects/{project.pk}/cycles/{10**25}/").status_code == 404


def test_start_creates_the_cycle_and_queues_training(
    post_json: Any, as_member: Any, member: Any, project: Any, enqueued: list[Any]
) -> None:
    ItemFactory(project=project, split="pool")
    body = {
        "budget": 25,
        "threshold": 0.1,
        "heuristic": "entropy",
        "mc_iterations": 8,
        "strategy": "power",
        "strategy_params": {"power": 2},
        "seed": 7,
        "auto_advance": False,
    }
    response = post_json(as_member, url(project), body)
    assert response.status_code == 201, response.content
    data = response.json()
    cycle = Cycle.objects.get(pk=data["id"])
    assert cycle.project_id == project.pk and cycle.created_by == member
    assert (cycle.budget, cycle.threshold, cycle.heuristic, cycle.mc_iterations, cycle.seed) == (
        25,
        0.1,
        "entropy",
        8,
        7,
    )
    assert cycle.strategy == "power" and cycle.strategy_params == {"power": 2, "cold_start": "random"}
    assert cycle.auto_advance is False
    assert (data["state"], data["number"], data["created_by"]) == ("created", 1, "mario")
    assert enqueued == [("cycle_train", {"cycle_id": cycle.pk})]


def test_start_takes_the_projects_defaults(post_json: Any, as_owner: Any, project: Any, enqueued: list[Any]) -> None:
    project.default_budget, project.default_mc_iterations, project.default_heuristic = 33, 4, "margin"
    project.save()
    ItemFactory(project=project, split="pool")
    response = post_json(as_owner, url(project), {})
    assert response.status_code == 201, response.content
    data = response.json()
    assert (data["budget"], data["mc_iterations"], data["heuristic"], data["strategy"], data["seed"]) == (
        33,
        4,
        "margin",
        "topk",
        0,
    )
    assert data["auto_advance"] is True and data["threshold"] is None


def test_start_while_a_cycle_is_open_is_409_and_creates_nothing(
    post_json: Any, as_member: Any, project: Any, enqueued: list[Any]
) -> None:
    CycleFactory(project=project, number=4, state="labeling")
    response = post_json(as_member, url(project), {"budget": 10})
    assert response.status_code == 409
    assert "open cycle" in response.json()["detail"] and "labeling" in response.json()["detail"]
    assert Cycle.objects.filter(project=project).count() == 1
    assert enqueued == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"budget": 0}, "budget"),
        ({"budget": 10**7}, "budget"),
        ({"budget": "5"}, "budget"),
        ({"budget": True}, "budget"),
        ({"budget": 2.5}, "budget"),
        ({"budget": None}, "budget"),
        ({"threshold": -0.1}, "threshold"),
        ({"threshold": float("nan")}, "threshold"),
        ({"threshold": float("inf")}, "threshold"),
        ({"threshold": "0.5"}, "threshold"),
        ({"threshold": False}, "threshold"),
        ({"threshold": [0.5]}, "threshold"),
        ({"mc_iterations": 0}, "mc_iterations"),
        ({"mc_iterations": 10**5}, "mc_iterations"),
        ({"heuristic": "vibes"}, "heuristic"),
        ({"heuristic": 3}, "heuristic"),
        ({"strategy": "best"}, "strategy"),
        ({"strategy_params": [1, 2]}, "strategy_params"),
        ({"strategy_params": {"x": float("nan")}}, "strategy_params"),
        ({"strategy": "power", "strategy_params": {"power": -1}}, "strategy_params"),
        ({"strategy": "quota", "strategy_params": {"quotas": {"unknown": 0.5}}}, "strategy_params"),
        ({"strategy": "quota", "strategy_params": {}}, "strategy_params"),
        ({"strategy_params": {"relabel": "always"}}, "strategy_params"),
        ({"strategy_params": {"relabel": "activelab", "relabel_max_share": 1.5}}, "strategy_params"),
        ({"strategy_params": {"relabel_max_share": 0.2}}, "strategy_params"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**63}, "seed"),
        ({"seed": 1.0}, "seed"),
        ({"auto_advance": "yes"}, "auto_advance"),
        ({"auto_advance": 1}, "auto_advance"),
    ],
)
def test_start_bad_input_is_400_naming_the_field(
    post_json: Any, as_member: Any, project: Any, enqueued: list[Any], body: dict[str, Any], field: str
) -> None:
    response = post_json(as_member, url(project), body)
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    assert not Cycle.objects.filter(project=project).exists()
    assert enqueued == []


@pytest.mark.parametrize("raw", ["{", "[1, 2]", '"budget"', "null"])
def test_start_malformed_body_is_400(as_member: Any, project: Any, raw: str) -> None:
    response = as_member.post(url(project), data=raw, content_type="application/json")
    assert response.status_code == 400
    assert not Cycle.objects.filter(project=project).exists()


def test_permissions(post_json: Any, anon: Any, as_outsider: Any, project: Any) -> None:
    cycle = CycleFactory(project=project, state="scored")
    paths = [url(project), url(project, cycle)] + [
        url(project, cycle, action) for action in ("selection", "histogram", "scores")
    ]
    for path in paths:
        assert anon.get(path).status_code == 401, path
        assert as_outsider.get(path).status_code == 404, path
    actions = ("preview", "select", "sync", "pull", "cancel", "retry")
    for path in [url(project)] + [url(project, cycle, action) for action in actions]:
        assert post_json(anon, path, {}).status_code == 401, path
        assert post_json(as_outsider, path, {}).status_code == 404, path
    cycle.refresh_from_db()
    assert cycle.state == "scored"
    assert Cycle.objects.filter(project=project).count() == 1


def test_cycles_are_not_edited_or_deleted_directly(post_json: Any, as_owner: Any, project: Any) -> None:
    cycle = CycleFactory(project=project, state="scored")
    assert as_owner.delete(url(project, cycle)).status_code == 405
    assert post_json(as_owner, url(project, cycle), {}).status_code == 405
    assert as_owner.patch(url(project, cycle), {"budget": 3}, format="json").status_code == 405


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        ("none", "the project has no pool items: import items first"),
        ("labeled", "every pool item is labeled or set aside: import more items"),
        ("selected", "every unlabeled pool item is already selected by a live cycle"),
    ],
)
def test_a_cycle_with_nothing_to_select_is_refused_with_the_reason(
    as_owner: Any, project: Any, enqueued: list[Any], setup: str, reason: str
) -> None:
    """Issue 16 item 5: a cycle on a project with no pool used to be created, select 0 items and close "done"."""
    if setup == "labeled":
        ItemFactory.create_batch(2, project=project, split="pool", label="positive")
    if setup == "selected":
        row = SelectedItemFactory(
            selection=SelectionFactory(cycle=CycleFactory(project=project, state="closed")),
            item=ItemFactory(project=project, split="pool"),
        )
        assert row.item.label is None
    response = as_owner.post(f"/api/projects/{project.pk}/cycles/", {"budget": 5}, format="json")
    assert response.status_code == 409 and response.json()["detail"] == f"Cannot start a cycle: {reason}."
    assert enqueued == [] and not Cycle.objects.filter(project=project).exclude(state="closed").exists()


def test_progress_names_the_state_the_cycle_is_in(as_member: Any, project: Any) -> None:
    """Issue 16 item 6: a cycle out for labeling showed stage "syncing" 30/30 until the first answer came."""
    stale = CycleFactory(project=project, state="labeling", progress={"stage": "syncing", "done": 30, "total": 30})
    progress = as_member.get(url(project, stale)).json()["progress"]
    assert (progress["stage"], progress["done"], progress["total"]) == ("labeling", 0, 0)
    closed = CycleFactory(project=project, state="closed", progress={"stage": "labeling", "done": 30, "total": 30})
    progress = as_member.get(url(project, closed)).json()["progress"]
    assert (progress["stage"], progress["done"], progress["total"]) == ("closed", 30, 30)
