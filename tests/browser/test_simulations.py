"""The "Compare strategies" page in headless Chromium: from the project page to the form, a run requested and shown
with its progress bar, then (once the run is done) its page reloads by itself and draws the arms' mean curves with
the dashboard's chart code, beside the table of estimates and the recommendation."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from campaigns import tasks
from campaigns.models import Item, SimulationRun
from tests.browser.conftest import log_in, shoot
from tests.campaigns.web.builders import user_with_password
from tests.campaigns.web.test_simulations import REPORT
from tests.factories import ProjectFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHART_JS = """() => {
    const chart = Chart.getChart(document.querySelector('canvas[data-chart="comparison"]'));
    return chart ? chart.data.datasets.map((d) => [d.label, d.data.length]) : null;
}"""


def test_request_a_comparison_and_read_its_report(live_server: Any, page: Any, monkeypatch: Any) -> None:
    sent: list[int] = []
    monkeypatch.setattr(tasks.simulation_run, "delay", lambda run_id: sent.append(run_id))  # no worker here
    owner = user_with_password("ines")
    project = ProjectFactory(owner=owner, name="Tickets", labels=["billing", "shipping"])
    Item.objects.bulk_create(
        Item(project=project, key=f"k{i}", split="pool", text=f"t{i}", label=project.labels[i % 2]) for i in range(60)
    )
    log_in(page, live_server.url, "ines")
    page.goto(f"{live_server.url}/projects/{project.pk}/")
    page.get_by_role("link", name="Compare strategies").click()
    expect(page.get_by_role("heading", name="Compare strategies")).to_be_visible()
    page.get_by_label("BADGE: k-means++ on gradient embeddings (Ash et al.)").check()
    page.get_by_label("Seeds").fill("2")
    page.get_by_label("Cycles").fill("2")
    page.get_by_label("Budget").fill("10")
    page.get_by_role("button", name="Compare").click()
    expect(page.get_by_role("status")).to_contain_text("queued")
    run = SimulationRun.objects.get(project=project)
    assert sent == [run.pk] and run.strategies == ["topk", "badge"]
    expect(page.locator(f"#simulation-{run.pk} progress")).to_have_attribute("max", "6")

    page.get_by_role("link", name=f"Simulation {run.pk}").click()
    expect(page.locator(f"#simulation-{run.pk}")).to_have_attribute("hx-trigger", re.compile("every"))
    SimulationRun.objects.filter(pk=run.pk).update(state="done", report={**REPORT, "project": project.pk})
    # The polled status sees the run finished and reloads the page, which now draws the report.
    expect(page.locator("#recommendation")).to_contain_text("Use topk", timeout=20_000)
    expect(page.locator('tr[data-strategy="topk"]')).to_contain_text("0.551")
    page.wait_for_function("() => typeof Chart !== 'undefined'")
    assert page.evaluate(CHART_JS) == [["random", 2], ["topk", 2]]
    shoot(page, "simulation-report")
