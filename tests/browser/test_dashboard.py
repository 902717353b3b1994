"""The dashboard in headless Chromium: log in, create a project (after a refused attempt), import items, move the
threshold slider by keyboard and see the qualifying count follow, start a cycle and watch its progress bar advance
while a real Celery worker trains and scores."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from django.db.models import Q
from playwright.sync_api import expect

from campaigns.demo_data import DIGIT_LABELS, TOPIC_LABELS, write_digits, write_topics
from campaigns.models import Cycle, Item, Project, Score
from campaigns.services.items import items_import
from campaigns.states import CycleState
from campaigns.web import presenters
from tests.browser.conftest import log_in, read_cycle_status, shoot
from tests.campaigns.web.builders import scored_cycle, user_with_password
from tests.factories import ProjectFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_log_in_create_a_project_and_import_items(live_server: Any, page: Any, tmp_path: Path) -> None:
    user_with_password("lea")
    page.goto(f"{live_server.url}/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))
    page.get_by_label("Username").fill("lea")
    page.get_by_label("Password").fill("pw-for-tests")
    page.get_by_label("Password").press("Enter")
    expect(page.get_by_role("heading", name="Your projects")).to_be_visible()

    page.get_by_role("main").get_by_role("link", name="Create your first project").click()
    page.get_by_label("Name").fill("Support tickets")
    page.get_by_label("Task type").select_option(label="Text classification")
    page.get_by_label("Labels").fill("\n".join(TOPIC_LABELS))
    page.get_by_label("Pool").fill("0.5")  # shares now add up to 0.7: refused, next to the field
    page.get_by_role("button", name="Create project").click()
    expect(page.locator("#id_split_pool_error")).to_contain_text("sum")
    expect(page.get_by_label("Pool")).to_have_attribute("aria-invalid", "true")
    assert not Project.objects.filter(name="Support tickets").exists()

    page.get_by_label("Pool").fill("0.8")
    page.get_by_role("button", name="Create project").click()
    expect(page.get_by_role("heading", name="Import items into Support tickets")).to_be_visible()

    csv = write_topics(tmp_path / "topics", n=40)
    page.get_by_label("File", exact=True).set_input_files(str(csv))
    page.get_by_label("Labels in the file are hidden answers").check()
    page.get_by_role("button", name="Import").click()
    expect(page.get_by_role("status")).to_contain_text("Imported 40 rows: 40 new items")
    expect(page.locator("#items-total")).to_have_text("40")
    project = Project.objects.get(name="Support tickets")
    assert Item.objects.filter(project=project, ground_truth__isnull=False).count() == 40


def test_threshold_slider_and_budget_update_the_preview_live(live_server: Any, page: Any) -> None:
    owner = user_with_password("ravi")
    project = ProjectFactory(owner=owner, name="Product reviews", labels=TOPIC_LABELS)
    cycle = scored_cycle(project, n=400, budget=25)
    log_in(page, live_server.url, "ravi")
    page.goto(f"{live_server.url}/projects/{project.pk}/cycles/{cycle.number}/")
    qualifying = page.locator("#qualifying-count")
    expect(qualifying).to_have_text("400")
    expect(page.locator("#would-select-count")).to_have_text("25")
    expect(page.locator("canvas#histogram")).to_be_visible()

    # By keyboard, as a person would: Page Up moves the slider by a tenth of the range.
    slider = page.get_by_label("Minimum uncertainty (threshold)")
    slider.focus()
    for _ in range(3):
        page.keyboard.press("PageUp")
    threshold = float(slider.input_value())
    expected = Score.objects.filter(cycle=cycle, uncertainty__gte=threshold).count()
    assert 0 < expected < 400
    expect(qualifying).to_have_attribute("data-value", str(expected))
    expect(page.locator("#threshold-value")).to_have_text(f"{threshold:.4f}")
    expect(page.locator("#would-select-count")).to_have_text(str(min(25, expected)))

    page.get_by_label("Items to send (budget)").fill("5")
    expect(page.locator("#would-select-count")).to_have_text(str(min(5, expected)))
    expect(page.locator("#preview-rows tbody tr")).to_have_count(min(5, expected))

    page.get_by_label("Items to send (budget)").fill("0")
    expect(page.locator("#err-budget")).to_contain_text("greater than or equal to 1")
    page.get_by_label("Items to send (budget)").fill("12")
    expect(page.locator("#err-budget")).to_be_empty()
    expect(page.locator("#would-select-count")).to_have_text(str(min(12, expected)))
    shoot(page, "cycle-page")

    page.get_by_role("button", name="Select these items").click()
    expect(page.get_by_role("status")).to_contain_text(f"Selected {min(12, expected)} items")
    expect(page.locator("#cycle-state")).to_have_attribute("data-state", "selected")
    expect(page.locator("#selected-items tbody tr")).to_have_count(min(12, expected))


@pytest.mark.integration
@pytest.mark.slow
def test_start_a_cycle_and_watch_its_progress_bar_advance(
    live_server: Any, page: Any, tmp_path: Path, celery_worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Many small scoring chunks, so that scoring reports progress many times; and the page polls every 0.5 s
    # instead of 2 s, so that a fast machine scoring the pool in a few seconds cannot slip between two polls.
    monkeypatch.setattr(presenters, "FAST_POLL_S", 0.5)
    celery_worker.env["ALWEB_SCORING_CHUNK_IDS"] = "12"
    celery_worker.stop()
    celery_worker.start()
    owner = user_with_password("ines")
    project = ProjectFactory(
        owner=owner,
        name="Handwritten digits",
        task_type="image_classification",
        labels=DIGIT_LABELS,
        # A short training (no minimum number of steps): the part to watch here is scoring.
        model_config={"image_size": 16, "channels": 1, "epochs": 8, "min_steps": 0},
        split_ratios={"train": 0.0, "valid": 0.15, "test": 0.15, "pool": 0.7},
    )
    items_import(project=project, path=write_digits(tmp_path / "digits", limit=900, size=16))
    # 80 pool labels, and the evaluation sample labeled by people (the curve is measured on human test labels).
    pool = Item.objects.filter(project=project, split="pool").order_by("pk").values_list("pk", flat=True)[:80]
    for item in Item.objects.filter(Q(pk__in=list(pool)) | Q(project=project, split__in=["valid", "test"])):
        item.label = item.ground_truth
        item.save(update_fields=["label"])

    log_in(page, live_server.url, "ines")
    page.goto(f"{live_server.url}/projects/{project.pk}/")
    page.get_by_label("Items to send (budget)").fill("20")
    page.get_by_label("MC dropout passes").fill("20")
    page.get_by_label("Select and send to Label Studio on its own once scored").uncheck()
    page.get_by_role("button", name="Start cycle").click()
    expect(page.get_by_role("heading", name="Cycle 1")).to_be_visible()

    # Watch the bar as a person would: note every value it shows until the cycle is scored.
    seen: list[tuple[float, str, str | None, str | None]] = []
    shot: Path | None = None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert celery_worker.proc.poll() is None, f"the worker exited:\n{celery_worker.tail()}"
        reading = read_cycle_status(page)
        if reading is None:  # the page is between two renders (an htmx swap or its own reload): look again
            page.wait_for_timeout(100)
            continue
        state, value, maximum = reading
        if not seen or seen[-1][1:] != (state, value, maximum):
            seen.append((round(time.monotonic(), 1), state or "", value, maximum))
            if (
                state == CycleState.SCORING
                and value
                and maximum
                and 0.2 <= int(value) / int(maximum) < 0.9
                and not shot
            ):
                shot = shoot(page, "cycle-progress")  # for the README: a bar well under way
        if state in (CycleState.SCORED, CycleState.FAILED):
            break
        page.wait_for_timeout(250)
    cycle = Cycle.objects.get(project=project, number=1)
    assert cycle.state == CycleState.SCORED, (cycle.failure_reason, seen, celery_worker.tail())
    scoring = [(int(v), int(m)) for _, s, v, m in seen if s == CycleState.SCORING and v is not None and m]
    assert len(scoring) >= 2, f"the scoring bar never moved on the page: {seen}"
    done = [v for v, _ in scoring]
    assert done == sorted(done) and done[-1] > done[0], seen

    # Scored: the page reloaded itself, with the histogram and the slider.
    expect(page.locator("canvas#histogram")).to_be_visible()
    expect(page.locator("#qualifying-count")).to_have_attribute("data-value", str(cycle.score_stats["count"]))
    page.goto(f"{live_server.url}/projects/{project.pk}/")
    expect(page.locator("#model-versions")).to_contain_text("v1")
    expect(page.locator("canvas[data-chart=learning-curve]")).to_be_visible()
    shoot(page, "project-page")
