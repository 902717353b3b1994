"""The "Compare strategies" page: the form starts a run (a task), the run's status partial shows a polled progress
bar, a finished run's page shows the report (per arm AUC and labels fraction with intervals, the recommendation, the
chart's data); refused parameters are said next to their field; outsiders get 404; sandboxes are never listed."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.test import Client

from campaigns import tasks
from campaigns.models import Item, SimulationRun
from campaigns.services.comparison import sandbox_create
from tests.campaigns.web.conftest import HTMX

pytestmark = pytest.mark.django_db

REPORT = {
    "project": 0,
    "seeds": 2,
    "cycles": 2,
    "budget": 10,
    "heuristic": "margin",
    "recommendation": "Use topk: mean macro-F1 over the budget +0.051 against random.",
    "arms": [
        {
            "strategy": "random",
            "auc": [0.5, 0.45, 0.55],
            "auc_gain_vs_random": [0.0, 0.0, 0.0],
            "labels_fraction_vs_random": [1.0, 1.0, 1.0],
            "curve": [[10.0, 0.3], [20.0, 0.5]],
        },
        {
            "strategy": "topk",
            "auc": [0.551, 0.5, 0.6],
            "auc_gain_vs_random": [0.051, 0.01, 0.09],
            "labels_fraction_vs_random": [0.62, 0.4, None],
            "curve": [[10.0, 0.35], [20.0, 0.6]],
        },
    ],
}


@pytest.fixture
def labeled(project: Any) -> Any:
    Item.objects.bulk_create(
        Item(project=project, key=f"k{i}", split="pool", text=f"t{i}", label=project.labels[i % 2]) for i in range(60)
    )
    return project


@pytest.fixture
def sent(monkeypatch: Any) -> list[int]:
    ids: list[int] = []
    monkeypatch.setattr(tasks.simulation_run, "delay", lambda run_id: ids.append(run_id))
    return ids


def page(project: Any) -> str:
    return f"/projects/{project.pk}/simulations/"


def test_the_form_starts_a_run_listed_with_a_polled_progress_bar(
    as_owner: Any, labeled: Any, sent: list[int], django_capture_on_commit_callbacks: Any
) -> None:
    detail = as_owner.get(f"/projects/{labeled.pk}/")
    assert page(labeled).encode() in detail.content  # the project page links to it
    form = as_owner.get(page(labeled))
    assert (
        form.status_code == 200
        and b'name="strategies"' in form.content
        and b'name="strategies" value="random"' not in form.content
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = as_owner.post(
            page(labeled),
            {
                "strategies": ["topk", "coreset"],
                "seeds": 2,
                "cycles": 2,
                "budget": 10,
                "heuristic": "margin",
                "noise_rate": "0.1",
            },
        )
    assert response.status_code == 302
    run = SimulationRun.objects.get(project=labeled)
    assert sent == [run.pk] and run.strategies == ["topk", "coreset"] and run.noise_rate == 0.1
    SimulationRun.objects.filter(pk=run.pk).update(state="running", progress={"done": 3, "total": 6})
    listing = as_owner.get(page(labeled)).content.decode()
    assert f'id="simulation-{run.pk}"' in listing and "hx-trigger" in listing
    assert re.search(r'<progress value="3" max="6"', listing) and "3 of 6 runs" in listing
    partial = as_owner.get(f"{page(labeled)}{run.pk}/status/", **HTMX).content.decode()
    assert "hx-trigger" in partial and "<progress" in partial


def test_refused_parameters_are_said_next_to_their_field(as_owner: Any, labeled: Any, sent: list[int]) -> None:
    too_many = as_owner.post(
        page(labeled), {"strategies": ["topk"], "seeds": 2, "cycles": 4, "budget": 10, "heuristic": "margin"}
    )
    assert too_many.status_code == 422
    budget_field = re.search(
        r'<div class="field has-error">\s*<label for="id_budget">.*?</div>', too_many.content.decode(), re.S
    )
    assert budget_field is not None and "only 60 items have a label" in budget_field.group(0)
    one_seed = as_owner.post(page(labeled), {"strategies": ["topk"], "seeds": 1, "cycles": 2, "budget": 10})
    assert one_seed.status_code == 422 and b"has-error" in one_seed.content
    ok = {"strategies": ["topk"], "seeds": 2, "cycles": 2, "budget": 10, "heuristic": "margin"}
    for bad, field, words in (
        ({"annotators": "0.1, lots"}, "annotators", "separated by commas"),
        ({"annotators": "0.1, 1.5"}, "annotators", "error rate must be"),
        ({"noise_rate": "2"}, "noise_rate", "[0, 1)"),
    ):
        refused = as_owner.post(page(labeled), {**ok, **bad})
        html = refused.content.decode()
        assert refused.status_code == 422 and f'id="id_{field}_error"' in html and words in html, (bad, html[-3000:])
    SimulationRun.objects.create(project=labeled, strategies=["topk"], seeds=2, state="running")
    busy = as_owner.post(
        page(labeled), {"strategies": ["topk"], "seeds": 2, "cycles": 2, "budget": 10, "heuristic": "margin"}
    )
    assert busy.status_code == 422 and b"one at a time" in busy.content
    assert SimulationRun.objects.count() == 1 and sent == []


def test_a_finished_run_shows_its_report_and_chart(as_owner: Any, labeled: Any) -> None:
    run = SimulationRun.objects.create(
        project=labeled, strategies=["topk"], seeds=2, state="done", report={**REPORT, "project": labeled.pk}
    )
    html = as_owner.get(f"{page(labeled)}{run.pk}/").content.decode()
    assert REPORT["recommendation"] in html and "hx-trigger" not in html
    row = re.search(r'<tr data-strategy="topk">(.*?)</tr>', html, re.S)
    assert row is not None
    cells = re.findall(r'<td class="num">(.*?)</td>', row.group(1), re.S)
    assert cells[:2] == ["0.551", "0.500\u20130.600"] and cells[4] == "0.62" and cells[5] == "0.40\u2013never"
    data = re.search(r'<script id="comparison-data" type="application/json">(.*?)</script>', html, re.S)
    assert data is not None and 'data-chart="comparison"' in html
    curves = json.loads(data.group(1))
    assert curves[1] == {"label": "topk", "points": [{"x": 10.0, "y": 0.35}, {"x": 20.0, "y": 0.6}]}


def test_the_report_page_reloads_once_its_run_finishes(as_owner: Any, labeled: Any) -> None:
    run = SimulationRun.objects.create(project=labeled, strategies=["topk"], seeds=2, state="running")
    html = as_owner.get(f"{page(labeled)}{run.pk}/").content.decode()
    assert "status/?refresh=1" in html
    assert as_owner.get(f"{page(labeled)}{run.pk}/status/?refresh=1", **HTMX).status_code == 200
    SimulationRun.objects.filter(pk=run.pk).update(state="done", report={**REPORT, "project": labeled.pk})
    finished = as_owner.get(f"{page(labeled)}{run.pk}/status/?refresh=1", **HTMX)
    assert finished.status_code == 204 and finished["HX-Refresh"] == "true"


def test_a_failed_run_says_why_and_can_be_retried(
    as_owner: Any, labeled: Any, sent: list[int], django_capture_on_commit_callbacks: Any
) -> None:
    run = SimulationRun.objects.create(
        project=labeled, strategies=["topk"], seeds=2, state="failed", failure_reason="RuntimeError: out of memory"
    )
    assert b"RuntimeError: out of memory" in as_owner.get(page(labeled)).content
    with django_capture_on_commit_callbacks(execute=True):
        response = as_owner.post(f"{page(labeled)}{run.pk}/retry/")
    assert response.status_code == 302 and sent == [run.pk]
    assert SimulationRun.objects.get(pk=run.pk).state == "queued"


def test_outsiders_get_404(as_outsider: Any, labeled: Any) -> None:
    run = SimulationRun.objects.create(project=labeled, strategies=["topk"], seeds=2)
    assert as_outsider.get(page(labeled)).status_code == 404
    assert as_outsider.post(page(labeled), {"strategies": ["topk"]}).status_code == 404
    assert as_outsider.get(f"{page(labeled)}{run.pk}/").status_code == 404
    assert as_outsider.get(f"{page(labeled)}{run.pk}/status/", **HTMX).status_code == 404
    assert as_outsider.post(f"{page(labeled)}{run.pk}/retry/").status_code == 404


def test_sandboxes_are_never_listed_on_the_dashboard_or_in_the_admin(
    as_owner: Any, labeled: Any, sent: list[int]
) -> None:
    sandbox = sandbox_create(source=labeled, name="reviews [simulation topk seed 1 abc123]")
    sandbox.memberships.create(user=labeled.owner, role="owner")
    listing = as_owner.get("/").content.decode()
    assert "reviews" in listing and "simulation topk" not in listing
    assert as_owner.get(f"/projects/{sandbox.pk}/").status_code == 404
    labeled.owner.is_staff = labeled.owner.is_superuser = True
    labeled.owner.save()
    admin = Client()
    admin.force_login(labeled.owner)
    changelist = admin.get("/admin/campaigns/project/").content.decode()
    assert "reviews" in changelist and "simulation topk" not in changelist
    # The runs are in the admin, where a failed one can be retried.
    failed = SimulationRun.objects.create(project=labeled, strategies=["topk"], seeds=2, state="failed")
    runs = admin.get("/admin/campaigns/simulationrun/").content.decode()
    assert f">{failed.pk}<" in runs and "reviews" in runs
    retried = admin.post(
        "/admin/campaigns/simulationrun/", {"action": "retry", "_selected_action": [failed.pk]}, follow=True
    )
    assert retried.status_code == 200 and SimulationRun.objects.get(pk=failed.pk).state == "queued"
