"""A simulation run requested through the API and run by a real Celery worker process (Redis, Postgres, the real
MLflow store): its progress moves as arms finish, the report arrives, the sandboxes it works on never show among the
projects while it runs, and they are gone at the end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from campaigns.models import Item, Project
from tests.campaigns.services.test_comparison import topics_project
from tests.factories import ProjectFactory
from tests.worker import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration, pytest.mark.slow]


def test_a_worker_runs_a_tiny_simulation_end_to_end(tmp_path: Path, celery_worker: Any) -> None:
    project = topics_project(lambda **kw: ProjectFactory(**kw), tmp_path, n=80)
    labels_before = dict(Item.objects.filter(project=project).values_list("key", "label"))
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=project.owner).key}")
    base = f"/api/projects/{project.pk}/simulations/"
    response = api.post(base, {"strategies": ["topk"], "seeds": 2, "cycles": 2, "budget": 8}, format="json")
    assert response.status_code == 202, response.json()
    run_url = f"{base}{response.json()['id']}/"
    seen_progress: set[int] = set()
    sandboxes_seen = 0

    def finished() -> dict[str, Any] | None:
        nonlocal sandboxes_seen
        listed = [p["id"] for p in api.get("/api/projects/").json()["results"]]
        assert listed == [project.pk]  # whatever sandbox the worker holds right now is not listed
        sandboxes_seen = max(sandboxes_seen, Project.objects.filter(sandbox_of=project).count())
        run = api.get(run_url).json()
        assert run["state"] != "failed", run["failure_reason"]
        if run["state"] == "running":
            seen_progress.add(run["progress"]["done"])
        return run if run["state"] == "done" else None

    run = wait_for(finished, timeout=600, what="the worker to run the simulation", worker=celery_worker)
    assert run["progress"]["done"] == run["progress"]["total"] == 4  # random and topk, 2 seeds each
    # Followed while it ran (an arm trains for seconds, the poll runs every half second), with a sandbox in the
    # database at some poll: the listing check above had something to leave out.
    assert seen_progress <= {0, 1, 2, 3, 4} and min(seen_progress) < 4 and sandboxes_seen >= 1
    report = run["report"]
    assert [a["strategy"] for a in report["arms"]] == ["random", "topk"] and report["recommendation"]
    for arm in report["arms"]:
        value, low, high = arm["auc"]
        assert 0 <= low <= value <= high <= 1 and len(arm["curve"]) == 20
    assert run["started_at"] and run["finished_at"]
    # The project is untouched and no sandbox is left.
    assert not Project.objects.filter(sandbox_of=project).exists()
    assert dict(Item.objects.filter(project=project).values_list("key", "label")) == labels_before
