"""POST /api/projects/{id}/simulations/ → 202 with the run's id and progress; GET lists and follows it to its report;
a bad parameter is a 400 naming the field, a second run while one is queued or running a 409; members only (404 for
others, 401 anonymous); a simulation's sandboxes never show among the projects; documented in the OpenAPI schema."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from campaigns import tasks
from campaigns.models import Item, SimulationRun
from campaigns.services.comparison import sandbox_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch: Any) -> list[int]:
    ids: list[int] = []
    monkeypatch.setattr(tasks.simulation_run, "delay", lambda run_id: ids.append(run_id))
    return ids


@pytest.fixture
def labeled(project: Any) -> Any:
    Item.objects.bulk_create(
        Item(project=project, key=f"k{i}", split="pool", text=f"t{i}", label=project.labels[i % 2]) for i in range(60)
    )
    return project


def url(project: Any, run_id: int | None = None) -> str:
    base = f"/api/projects/{project.pk}/simulations/"
    return base if run_id is None else f"{base}{run_id}/"


BODY = {"strategies": ["topk", "badge"], "seeds": 2, "cycles": 2, "budget": 10}


def test_a_member_requests_a_run_and_follows_it(
    as_member: Any, labeled: Any, post_json: Callable[..., Any], sent: list[int]
) -> None:
    response = post_json(as_member, url(labeled), BODY)
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["state"] == "queued" and body["strategies"] == ["topk", "badge"] and body["created_by"] == "mario"
    assert body["heuristic"] == labeled.default_heuristic  # left out: the project's default
    assert body["progress"]["done"] == 0 and body["progress"]["total"] == 6 and body["report"] == {}
    assert (body["noise_rate"], body["annotators"]) == (0.0, [])
    assert sent == [body["id"]]
    report = {"project": labeled.pk, "recommendation": "Use topk", "arms": []}
    SimulationRun.objects.filter(pk=body["id"]).update(state="done", report=report)
    got = as_member.get(url(labeled, body["id"])).json()
    assert got["state"] == "done" and got["report"]["recommendation"] == "Use topk"
    listed = as_member.get(url(labeled)).json()
    assert [r["id"] for r in listed["results"]] == [body["id"]]
    # A run whose requester's account is gone still reads.
    orphan = SimulationRun.objects.create(project=labeled, strategies=["topk"], seeds=2, state="failed")
    assert as_member.get(url(labeled, orphan.pk)).json()["created_by"] is None


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"strategies": ["topk", "nonsense"]}, "strategies", "unknown nonsense"),
        ({"strategies": []}, "strategies", "at least one strategy"),
        ({"strategies": "topk"}, "strategies", "list"),
        ({"seeds": 1}, "seeds", "from 2"),
        ({"seeds": "many"}, "seeds", "integer"),
        ({"cycles": 0}, "cycles", "from 1"),
        ({"heuristic": "magic"}, "heuristic", "unknown"),
        ({"budget": 20}, "budget", "only 60 items have a label"),  # 2 cycles of 20 need 80
        ({"noise_rate": 1.0}, "noise_rate", "[0, 1)"),
        ({"noise_rate": 0.1, "annotators": [0.1, 0.2]}, "noise_rate", "not both"),
        ({"annotators": [0.1, -0.2]}, "annotators", "error rate"),
        ({"annotators": "0.1"}, "annotators", "list"),
    ],
)
def test_a_bad_parameter_is_a_400_naming_the_field(
    as_member: Any, labeled: Any, post_json: Callable[..., Any], sent: list[int], change: Any, field: str, words: str
) -> None:
    response = post_json(as_member, url(labeled), {**BODY, **change})
    assert response.status_code == 400
    errors = response.json()
    assert list(errors) == [field] and words in " ".join(errors[field]), errors
    assert not SimulationRun.objects.exists() and sent == []


def test_simulated_annotators_are_stored_with_the_run(
    as_member: Any, labeled: Any, post_json: Callable[..., Any], sent: list[int]
) -> None:
    body = post_json(as_member, url(labeled), {**BODY, "annotators": [0.05, 0.2, 0.3]}).json()
    run = SimulationRun.objects.get(pk=body["id"])
    assert (run.noise_rate, run.annotators) == (0.0, [0.05, 0.2, 0.3]) and body["annotators"] == [0.05, 0.2, 0.3]


def test_a_second_run_while_one_is_queued_is_a_409(
    as_member: Any, labeled: Any, post_json: Callable[..., Any], sent: list[int]
) -> None:
    first = post_json(as_member, url(labeled), BODY).json()
    second = post_json(as_member, url(labeled), BODY)
    assert second.status_code == 409 and f"simulation {first['id']} is queued" in second.json()["detail"]
    SimulationRun.objects.filter(pk=first["id"]).update(state="failed", failure_reason="boom")
    retried = post_json(as_member, f"{url(labeled, first['id'])}retry/")
    assert retried.status_code == 202 and retried.json()["state"] == "queued" and sent == [first["id"], first["id"]]
    assert post_json(as_member, f"{url(labeled, first['id'])}retry/").status_code == 409


def test_non_members_get_404_and_anonymous_401(
    as_outsider: Any, anon: Any, labeled: Any, post_json: Callable[..., Any], sent: list[int]
) -> None:
    run = SimulationRun.objects.create(project=labeled, strategies=["topk"], seeds=2)
    assert post_json(as_outsider, url(labeled), BODY).status_code == 404
    assert as_outsider.get(url(labeled)).status_code == 404
    assert as_outsider.get(url(labeled, run.pk)).status_code == 404
    assert anon.get(url(labeled)).status_code == 401
    assert not SimulationRun.objects.exclude(pk=run.pk).exists() and sent == []


def test_sandboxes_never_show_among_the_projects(as_owner: Any, labeled: Any) -> None:
    sandbox = sandbox_create(source=labeled, name="reviews [simulation random seed 0]")
    sandbox.memberships.create(user=labeled.owner, role="owner")
    listed = as_owner.get("/api/projects/").json()
    assert [p["id"] for p in listed["results"]] == [labeled.pk]
    assert as_owner.get(f"/api/projects/{sandbox.pk}/").status_code == 404
    assert as_owner.get(f"/api/projects/{sandbox.pk}/items/").status_code == 404


def test_the_schema_documents_the_endpoints(as_member: Any) -> None:
    schema = as_member.get("/api/schema/?format=json").json()
    paths = schema["paths"]
    runs, one = "/api/projects/{project_pk}/simulations/", "/api/projects/{project_pk}/simulations/{id}/"
    assert {"get", "post"} <= set(paths[runs]) and "get" in paths[one]
    assert {"202", "400", "404", "409"} <= set(paths[runs]["post"]["responses"])
    report = schema["components"]["schemas"]["Report"]["properties"]
    assert {"recommendation", "arms"} <= set(report)
