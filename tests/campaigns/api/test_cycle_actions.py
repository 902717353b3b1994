"""Cycle actions: preview, select, sync, pull, cancel, retry; the stored selection and the histogram."""

from __future__ import annotations

from typing import Any

import pytest

from campaigns.models import Cycle, Selection
from tests.factories import (
    CycleFactory,
    ItemFactory,
    ModelVersionFactory,
    ProjectFactory,
    SelectedItemFactory,
    SelectionFactory,
    scored_cycle,
)

pytestmark = pytest.mark.django_db


def url(cycle: Any, action: str = "") -> str:
    return f"/api/projects/{cycle.project_id}/cycles/{cycle.pk}/" + (f"{action}/" if action else "")


# --- preview -----------------------------------------------------------------------------------------------------


def test_preview_counts_picks_and_histogram(
    as_member: Any, project: Any, post_json: Any, django_assert_max_num_queries: Any
) -> None:
    cycle = scored_cycle(project, n=40, budget=5)
    with django_assert_max_num_queries(8):
        response = post_json(as_member, url(cycle, "preview"), {"threshold": 0.5, "budget": 8, "show": 3})
    assert response.status_code == 200, response.content
    data = response.json()
    assert (data["qualifying"], data["would_select"], data["budget"], data["threshold"]) == (20, 8, 8, 0.5)
    assert data["strategy"] == "topk"
    assert data["histogram"]["count"] == 40 and sum(data["histogram"]["counts"]) == 40
    assert [row["uncertainty"] for row in data["items"]] == [39 / 40, 38 / 40, 37 / 40]
    assert all(row["key"].startswith("item-") and row["predicted_label"] for row in data["items"])
    assert not Selection.objects.filter(cycle=cycle).exists()


def test_preview_defaults_to_the_cycles_parameters(as_member: Any, project: Any, post_json: Any) -> None:
    cycle = scored_cycle(project, n=10, budget=4, threshold=0.3)
    data = post_json(as_member, url(cycle, "preview"), {}).json()
    assert (data["budget"], data["threshold"], data["qualifying"], data["would_select"]) == (4, 0.3, 7, 4)
    assert len(data["items"]) == 4
    data = post_json(as_member, url(cycle, "preview"), {"threshold": None}).json()
    assert (data["threshold"], data["qualifying"]) == (None, 10)


def test_threshold_as_a_share_of_the_pool_and_a_warning_when_it_starves_the_budget(
    as_member: Any, project: Any, post_json: Any
) -> None:
    """Issue 16 item 4: the README's threshold 0.2 selected nothing on a project whose BALD ranged 0.0025-0.046."""
    cycle = scored_cycle(project, n=40, budget=5)  # scores 0, 1/40, ... 39/40
    data = post_json(as_member, url(cycle, "preview"), {"threshold_quantile": 0.25, "budget": 8}).json()
    # The 25% most uncertain of 40 scores: the top 10, i.e. at least 30/40.
    assert (data["threshold"], data["threshold_quantile"], data["qualifying"]) == (30 / 40, 0.25, 10)
    assert data["would_select"] == 8 and data["warnings"] == []
    starved = post_json(as_member, url(cycle, "preview"), {"threshold": 0.9, "budget": 8}).json()
    assert starved["qualifying"] == 4 and len(starved["warnings"]) == 1
    assert "fewer than the budget of 8" in starved["warnings"][0] and "range from 0 to 0.975" in starved["warnings"][0]
    both = post_json(as_member, url(cycle, "preview"), {"threshold": 0.1, "threshold_quantile": 0.2})
    assert both.status_code == 400 and "threshold_quantile" in both.json()
    out_of_range = post_json(as_member, url(cycle, "preview"), {"threshold_quantile": 1.5})
    assert out_of_range.status_code == 400 and "threshold_quantile" in out_of_range.json()
    # Selecting with a quantile keeps it as the cycle's setting and records the value it resolved to.
    selected = post_json(as_member, url(cycle, "select"), {"threshold_quantile": 0.1, "budget": 8})
    assert selected.status_code == 200, selected.content
    cycle.refresh_from_db()
    assert (cycle.threshold, cycle.threshold_quantile) == (None, 0.1)
    selection = Selection.objects.get(cycle=cycle)
    assert (selection.size, selection.params["threshold"], selection.params["threshold_quantile"]) == (4, 36 / 40, 0.1)


def test_preview_query_count_does_not_grow_with_the_pool(
    as_member: Any, project: Any, post_json: Any, django_assert_max_num_queries: Any
) -> None:
    cycle = scored_cycle(project, n=300, budget=100)
    with django_assert_max_num_queries(8):
        response = post_json(
            as_member,
            url(cycle, "preview"),
            {"show": 100, "strategy": "quota", "strategy_params": {"quotas": {"negative": 0.5}}},
        )
    assert response.status_code == 200, response.content
    assert len(response.json()["items"]) == 100


def test_preview_without_scores_is_409(as_member: Any, project: Any, post_json: Any) -> None:
    cycle = CycleFactory(project=project, state="training")
    response = post_json(as_member, url(cycle, "preview"), {})
    assert response.status_code == 409
    assert "no scores" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"budget": 0}, "budget"),
        ({"budget": "3"}, "budget"),
        ({"threshold": float("nan")}, "threshold"),
        ({"threshold": -1}, "threshold"),
        ({"threshold": True}, "threshold"),
        ({"strategy": "best"}, "strategy"),
        ({"strategy": "quota", "strategy_params": {"quotas": {"cats": 1}}}, "strategy_params"),
        ({"strategy": "diverse"}, "strategy"),  # no embeddings stored for this cycle
        ({"strategy_params": "power"}, "strategy_params"),
        ({"seed": -3}, "seed"),
        ({"show": 1000}, "show"),
    ],
)
def test_preview_bad_input_is_400_naming_the_field(
    as_member: Any, project: Any, post_json: Any, body: dict[str, Any], field: str
) -> None:
    cycle = scored_cycle(project, n=10)
    response = post_json(as_member, url(cycle, "preview"), body)
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()


# --- select ------------------------------------------------------------------------------------------------------


def test_select_stores_the_selection_once(as_member: Any, project: Any, post_json: Any, enqueued: list[Any]) -> None:
    cycle = scored_cycle(project, n=20, budget=5)
    response = post_json(as_member, url(cycle, "select"), {"budget": 6, "threshold": 0.5})
    assert response.status_code == 200, response.content
    data = response.json()
    assert (data["size"], data["strategy"]) == (6, "topk")
    assert data["params"]["budget"] == 6 and data["params"]["threshold"] == 0.5
    assert data["model_version"]["id"] == cycle.model_version_id
    cycle.refresh_from_db()
    assert (cycle.state, cycle.budget, cycle.threshold) == ("selected", 6, 0.5)
    again = post_json(as_member, url(cycle, "select"), {"budget": 3})
    assert again.status_code == 409
    assert "selected" in again.json()["detail"]
    assert Selection.objects.get(cycle=cycle).size == 6
    assert enqueued == []  # selecting does not send anything to Label Studio by itself


def test_select_with_a_null_threshold_clears_the_cycles_as_the_preview_does(
    as_member: Any, project: Any, post_json: Any
) -> None:
    cycle = scored_cycle(project, n=20, budget=20)
    Cycle.objects.filter(pk=cycle.pk).update(threshold=0.9)  # started with a threshold few items pass
    body = {"budget": 20, "threshold": None}
    preview = post_json(as_member, url(cycle, "preview"), body).json()
    response = post_json(as_member, url(cycle, "select"), body)
    assert response.status_code == 200, response.content
    assert response.json()["params"]["threshold"] is None
    assert response.json()["size"] == preview["would_select"] == 20
    cycle.refresh_from_db()
    assert cycle.threshold is None


@pytest.mark.parametrize("state", ["created", "training", "scoring", "syncing", "closed", "cancelled"])
def test_select_outside_scored_is_409_and_selects_nothing(
    as_member: Any, project: Any, post_json: Any, state: str
) -> None:
    cycle = scored_cycle(project, n=5, state=state)
    response = post_json(as_member, url(cycle, "select"), {})
    assert response.status_code == 409
    assert state in response.json()["detail"]
    assert not Selection.objects.filter(cycle=cycle).exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [({"budget": -1}, "budget"), ({"threshold": "high"}, "threshold"), ({"strategy": 1}, "strategy")],
)
def test_select_bad_input_is_400(
    as_member: Any, project: Any, post_json: Any, body: dict[str, Any], field: str
) -> None:
    cycle = scored_cycle(project, n=5)
    response = post_json(as_member, url(cycle, "select"), body)
    assert response.status_code == 400
    assert field in response.json()
    assert Cycle.objects.get(pk=cycle.pk).state == "scored"


# --- sync, pull --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ls_url", ["http://ls.example:8080", ""])
def test_sync_queues_the_sync_of_a_selected_cycle(
    as_member: Any, project: Any, post_json: Any, enqueued: list[Any], ls_url: str
) -> None:
    # Without a URL of its own a project syncs to the server in the settings (a sync that cannot connect fails the
    # cycle with the reason, and can be retried): the request is accepted either way.
    project.ls_url = ls_url
    project.save()
    cycle = CycleFactory(project=project, state="selected")
    response = post_json(as_member, url(cycle, "sync"))
    assert response.status_code == 202, response.content
    assert response.json()["state"] == "selected"
    assert enqueued == [("cycle_sync", {"cycle_id": cycle.pk})]


@pytest.mark.parametrize("state", ["scored", "syncing", "labeling", "closed", "failed"])
def test_sync_refused_unless_selected(
    as_member: Any, project: Any, post_json: Any, enqueued: list[Any], state: str
) -> None:
    cycle = CycleFactory(project=project, state=state)
    response = post_json(as_member, url(cycle, "sync"))
    assert response.status_code == 409
    assert f"this one is {state}" in response.json()["detail"]
    assert enqueued == []


def test_pull_queues_a_pull_of_the_project(as_member: Any, project: Any, post_json: Any, enqueued: list[Any]) -> None:
    cycle = CycleFactory(project=project, state="labeling")
    response = post_json(as_member, url(cycle, "pull"))
    assert response.status_code == 409 and "not linked" in response.json()["detail"]
    project.ls_url, project.ls_project_id = "http://ls.example:8080", 12
    project.save()
    response = post_json(as_member, url(cycle, "pull"))
    assert response.status_code == 202
    assert enqueued == [("project_pull", {"project_id": project.pk})]


# --- cancel, retry -----------------------------------------------------------------------------------------------


def test_cancel_an_open_cycle(as_member: Any, project: Any, post_json: Any) -> None:
    cycle = CycleFactory(project=project, state="scored")
    response = post_json(as_member, url(cycle, "cancel"))
    assert response.status_code == 200, response.content
    assert response.json()["state"] == "cancelled" and response.json()["finished_at"]
    again = post_json(as_member, url(cycle, "cancel"))
    assert again.status_code == 409 and "cancelled" in again.json()["detail"]


@pytest.mark.parametrize(
    ("stage", "auto_advance", "task"),
    [
        ("training", True, "cycle_train"),
        ("scoring", True, "cycle_score"),
        ("scored", True, "cycle_select"),
        ("scored", False, None),
        ("syncing", True, "cycle_sync"),
    ],
)
def test_retry_resumes_the_failed_stage(
    as_member: Any,
    project: Any,
    post_json: Any,
    enqueued: list[Any],
    stage: str,
    auto_advance: bool,
    task: str | None,
) -> None:
    cycle = CycleFactory(
        project=project,
        state="failed",
        auto_advance=auto_advance,
        failure_reason="MLflow unreachable",
        progress={"stage": stage, "done": 1, "total": 9},
    )
    response = post_json(as_member, url(cycle, "retry"))
    assert response.status_code == 200, response.content
    assert (response.json()["state"], response.json()["failure_reason"]) == (stage, "")
    assert enqueued == ([(task, {"cycle_id": cycle.pk})] if task else [])


def test_retry_refused_unless_failed_and_alone(
    as_member: Any, project: Any, post_json: Any, enqueued: list[Any]
) -> None:
    closed = CycleFactory(project=project, state="closed")
    response = post_json(as_member, url(closed, "retry"))
    assert response.status_code == 409 and "closed" in response.json()["detail"]
    failed = CycleFactory(project=project, state="failed", progress={"stage": "training"})
    CycleFactory(project=project, state="labeling")
    response = post_json(as_member, url(failed, "retry"))
    assert response.status_code == 409 and "open cycle" in response.json()["detail"]
    assert Cycle.objects.get(pk=failed.pk).state == "failed"
    assert enqueued == []


# --- selection, histogram ----------------------------------------------------------------------------------------


def test_selection_lists_items_by_rank_with_sync_state(
    as_member: Any, project: Any, django_assert_max_num_queries: Any
) -> None:
    version = ModelVersionFactory(project=project, version=2)
    cycle = CycleFactory(project=project, state="labeling", model_version=version)
    selection = SelectionFactory(cycle=cycle, model_version=version, params={"budget": 30, "threshold": 0.2}, size=30)
    synced = ItemFactory(project=project, key="synced", ls_task_id=901, label="positive")
    SelectedItemFactory(
        selection=selection,
        item=synced,
        rank=0,
        sync_state="synced",
        ls_task_id=901,
        predicted_label="negative",
        uncertainty=0.95,
    )
    for rank in range(1, 30):
        SelectedItemFactory(selection=selection, rank=rank, uncertainty=0.9 - rank / 100)
    with django_assert_max_num_queries(5):  # token, project, cycle (+selection, models), count, page
        response = as_member.get(url(cycle, "selection"), {"limit": 10})
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["selection"]["params"] == {"budget": 30, "threshold": 0.2}
    assert data["selection"]["model_version"]["version"] == 2
    assert (data["count"], len(data["results"])) == (30, 10)
    assert data["next"] and data["previous"] is None
    first = data["results"][0]
    assert first == {
        "rank": 0,
        "item": synced.pk,
        "key": "synced",
        "uncertainty": 0.95,
        "predicted_label": "negative",
        "confidence": None,
        "label": "positive",
        "ls_task_id": 901,
        "sync_state": "synced",
        "synced_at": None,
        "sync_error": "",
    }
    assert [row["rank"] for row in data["results"]] == list(range(10))
    page3 = as_member.get(url(cycle, "selection"), {"limit": 10, "offset": 20}).json()
    assert [row["rank"] for row in page3["results"]] == list(range(20, 30))


def test_selection_before_selecting_is_404(as_member: Any, project: Any) -> None:
    cycle = CycleFactory(project=project, state="scored")
    response = as_member.get(url(cycle, "selection"))
    assert response.status_code == 404
    assert "not selected" in response.json()["detail"]


def test_histogram(as_member: Any, project: Any) -> None:
    cycle = scored_cycle(project, n=50, state="closed")
    data = as_member.get(url(cycle, "histogram")).json()
    assert (data["count"], data["min"], data["max"]) == (50, 0.0, 49 / 50)
    assert len(data["edges"]) == len(data["counts"]) + 1 and sum(data["counts"]) == 50
    assert len(as_member.get(url(cycle, "histogram"), {"bins": 10}).json()["counts"]) == 10
    for bins in ("0", "201", "x"):
        response = as_member.get(url(cycle, "histogram"), {"bins": bins})
        assert response.status_code == 400 and "bins" in response.json()
    empty = CycleFactory(project=project, state="training")
    assert as_member.get(url(empty, "histogram")).json() == {
        "edges": [],
        "counts": [],
        "count": 0,
        "min": None,
        "max": None,
        "mean": None,
    }


def test_owners_may_do_what_members_do(as_owner: Any, project: Any, post_json: Any) -> None:
    cycle = scored_cycle(project, n=10)
    assert post_json(as_owner, url(cycle, "preview"), {}).status_code == 200
    assert post_json(as_owner, url(cycle, "select"), {}).status_code == 200
    assert post_json(as_owner, url(cycle, "cancel")).status_code == 200


def test_another_projects_cycle_is_404_for_every_action(as_member: Any, project: Any, post_json: Any) -> None:
    other = scored_cycle(ProjectFactory(), n=5)
    wrong = f"/api/projects/{project.pk}/cycles/{other.pk}/"
    for action in ("preview", "select", "sync", "pull", "cancel", "retry"):
        assert post_json(as_member, f"{wrong}{action}/", {}).status_code == 404, action
    for action in ("selection", "histogram", "scores"):
        assert as_member.get(f"{wrong}{action}/").status_code == 404, action
    assert Cycle.objects.get(pk=other.pk).state == "scored"
