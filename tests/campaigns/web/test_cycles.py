"""The cycle page: histogram and slider, the live preview partial's counts, select / sync / pull / cancel / retry,
the selected items with their Label Studio links, and the polled status partial."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.urls import reverse

from campaigns.models import Cycle, Item, Project, SelectedItem, Selection
from campaigns.services.cycles import cycle_create, cycle_fail, cycle_progress, cycle_transition
from campaigns.states import CycleState
from tests.campaigns.web.builders import scored_cycle, uncertainties
from tests.campaigns.web.conftest import HTMX

pytestmark = pytest.mark.django_db


def preview_url(cycle: Cycle) -> str:
    return reverse("dashboard:cycle-preview", args=[cycle.project_id, cycle.number])


def counts(html: str) -> tuple[int, int]:
    qualifying = re.search(r'id="qualifying-count" data-value="(\d+)"', html)
    selected = re.search(r'id="would-select-count" data-value="(\d+)"', html)
    assert qualifying and selected, html[:500]
    return int(qualifying.group(1)), int(selected.group(1))


def test_scored_cycle_page_has_histogram_slider_and_a_first_preview(as_owner: Any, project: Any) -> None:
    cycle = scored_cycle(project, n=60, budget=10)
    response = as_owner.get(reverse("dashboard:cycle-detail", args=[project.pk, cycle.number]))
    page = response.content.decode()
    assert response.status_code == 200
    assert '<script id="histogram-data" type="application/json">' in page
    assert 'type="range" id="id_threshold" name="threshold"' in page
    assert 'hx-trigger="input changed delay:150ms"' in page
    assert '<label for="id_budget">' in page and '<label for="id_strategy">' in page
    # No threshold yet: the slider starts at the lowest score, so every item qualifies and the budget decides.
    assert counts(page) == (60, 10)


@pytest.mark.parametrize("quantile", [0.0, 0.5, 0.9, 1.0])
def test_preview_counts_items_at_or_above_the_threshold(as_owner: Any, project: Any, quantile: float) -> None:
    cycle = scored_cycle(project, n=80, budget=25)
    scores = sorted(uncertainties(cycle))
    threshold = scores[min(int(quantile * len(scores)), len(scores) - 1)]
    expected = sum(1 for u in scores if u >= threshold)
    response = as_owner.get(preview_url(cycle), {"threshold": threshold, "budget": 25, "strategy": "topk"}, **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert counts(html) == (expected, min(25, expected))
    # The top rows are the most uncertain items, each with its key and predicted label.
    top = max(Item.objects.filter(project=project, scores__cycle=cycle), key=lambda i: i.scores.get().uncertainty)
    assert f'<th scope="row">{top.key}</th>' in html
    # Error slots next to the inputs are refreshed (emptied) out of band on every preview.
    assert 'id="err-budget" class="field-errors" hx-swap-oob="true"></div>' in html


def test_preview_with_bad_values_puts_the_error_next_to_the_input(as_owner: Any, project: Any) -> None:
    cycle = scored_cycle(project, n=20)
    html = as_owner.get(preview_url(cycle), {"threshold": "0.1", "budget": "0", "strategy": "topk"}, **HTMX)
    text = html.content.decode()
    assert html.status_code == 200  # htmx swaps only 2xx: the errors are the content
    slot = re.search(r'<div id="err-budget"[^>]*>(.*?)</div>', text, re.S)
    assert slot and "greater than or equal to 1" in slot.group(1)
    assert 'id="qualifying-count"' not in text


def test_preview_names_the_strategy_when_it_cannot_run(as_owner: Any, project: Any) -> None:
    cycle = scored_cycle(project, n=20)
    text = as_owner.get(preview_url(cycle), {"threshold": "0", "budget": "5", "strategy": "diverse"}).content.decode()
    slot = re.search(r'<div id="err-strategy"[^>]*>(.*?)</div>', text, re.S)
    assert slot and "diverse needs the model&#x27;s embeddings" in slot.group(1)


def test_preview_of_an_unscored_cycle_says_so(as_owner: Any, project: Any) -> None:
    cycle = cycle_create(project=project, budget=5)
    text = as_owner.get(preview_url(cycle), {"threshold": "0", "budget": "5", "strategy": "topk"}).content.decode()
    assert "no scores yet" in text


def test_select_stores_the_selection_with_the_chosen_threshold_and_budget(as_owner: Any, project: Any) -> None:
    cycle = scored_cycle(project, n=50, budget=10)
    threshold = sorted(uncertainties(cycle))[30]
    url = reverse("dashboard:cycle-select", args=[project.pk, cycle.number])
    response = as_owner.post(url, {"threshold": threshold, "budget": 7, "strategy": "topk"}, follow=True)
    selection = Selection.objects.get(cycle=cycle)
    assert selection.size == 7 and selection.params["threshold"] == threshold and selection.params["budget"] == 7
    page = response.content.decode()
    assert "Selected 7 items." in page
    assert page.count('<td class="num">', page.index('id="selected-items"')) >= 7 * 3
    cycle.refresh_from_db()
    assert cycle.state == CycleState.SELECTED
    # A selection with the ActiveLab option says how many labeled items it sent back (or why none).
    detail = reverse("dashboard:cycle-detail", args=[project.pk, cycle.number])
    Selection.objects.filter(pk=selection.pk).update(params={**selection.params, "relabel": "activelab", "relabels": 3})
    assert "ActiveLab sent 3 labeled items back for review" in as_owner.get(detail).content.decode()
    skipped = {**selection.params, "relabel": "activelab", "relabels": 0, "relabel_skipped": "no run yet"}
    Selection.objects.filter(pk=selection.pk).update(params=skipped)
    assert "No re-labels: no run yet." in as_owner.get(detail).content.decode()


def test_select_with_bad_budget_keeps_the_values_and_selects_nothing(as_owner: Any, project: Any) -> None:
    cycle = scored_cycle(project, n=20)
    url = reverse("dashboard:cycle-select", args=[project.pk, cycle.number])
    response = as_owner.post(url, {"threshold": "0.2", "budget": "-3", "strategy": "topk"})
    assert response.status_code == 422
    page = response.content.decode()
    slot = re.search(r'<div id="err-budget"[^>]*>(.*?)</div>', page, re.S)
    assert slot and "greater than or equal to 1" in slot.group(1)
    assert 'value="-3"' in page
    assert not Selection.objects.filter(cycle=cycle).exists()


def test_selected_items_link_to_their_label_studio_tasks(as_owner: Any, project: Any) -> None:
    Project.objects.filter(pk=project.pk).update(ls_url="http://ls.example:8080", ls_project_id=12)
    cycle = scored_cycle(project, n=10, budget=3)
    as_owner.post(reverse("dashboard:cycle-select", args=[project.pk, cycle.number]), {"budget": 3, "strategy": "topk"})
    first = SelectedItem.objects.filter(selection__cycle=cycle).order_by("rank").first()
    assert first is not None
    SelectedItem.objects.filter(pk=first.pk).update(ls_task_id=4242, sync_state="synced")
    page = as_owner.get(reverse("dashboard:cycle-detail", args=[project.pk, cycle.number])).content.decode()
    assert 'href="http://ls.example:8080/projects/12/data?task=4242"' in page
    assert f"for {first.item.key} (new tab)" in page


def test_sync_is_refused_in_plain_words_unless_a_selection_waits(as_owner: Any, project: Any) -> None:
    cycle = scored_cycle(project, n=10)
    url = reverse("dashboard:cycle-sync", args=[project.pk, cycle.number])
    page = as_owner.post(url, follow=True).content.decode()
    assert "Not sent: only a cycle with a selection waiting to be sent can be synced (this one is scored)." in page


def test_sync_of_a_selected_cycle_is_queued(
    as_owner: Any, project: Any, django_capture_on_commit_callbacks: Any
) -> None:
    # No Label Studio URL of its own: the sync uses the server in the settings.
    cycle = scored_cycle(project, n=10, budget=2)
    as_owner.post(reverse("dashboard:cycle-select", args=[project.pk, cycle.number]), {"budget": 2, "strategy": "topk"})
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = as_owner.post(reverse("dashboard:cycle-sync", args=[project.pk, cycle.number]))
    assert response.status_code == 302
    assert len(callbacks) == 1


def test_pull_without_a_label_studio_project_is_explained(as_owner: Any, project: Any) -> None:
    page = as_owner.post(reverse("dashboard:project-pull", args=[project.pk]), follow=True).content.decode()
    assert "Not pulled: this project is not linked to a Label Studio project yet" in page


def test_pull_is_queued_and_returns_to_the_cycle_page(
    as_owner: Any, project: Any, django_capture_on_commit_callbacks: Any
) -> None:
    Project.objects.filter(pk=project.pk).update(ls_url="http://ls.example:8080", ls_project_id=3)
    back = reverse("dashboard:cycle-detail", args=[project.pk, 1])
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = as_owner.post(reverse("dashboard:project-pull", args=[project.pk]), {"next": back})
    assert response["Location"] == back and len(callbacks) == 1
    elsewhere = as_owner.post(reverse("dashboard:project-pull", args=[project.pk]), {"next": "https://evil.example/"})
    assert elsewhere["Location"] == reverse("dashboard:project-detail", args=[project.pk])


def test_cancel_and_cancel_again(as_owner: Any, project: Any) -> None:
    cycle = scored_cycle(project, n=5)
    url = reverse("dashboard:cycle-cancel", args=[project.pk, cycle.number])
    assert "Cycle 1 cancelled." in as_owner.post(url, follow=True).content.decode()
    cycle.refresh_from_db()
    assert cycle.state == CycleState.CANCELLED
    assert "it cannot be cancelled" in as_owner.post(url, follow=True).content.decode()


def test_retry_puts_a_failed_cycle_back_and_wakes_its_stage(
    as_owner: Any, project: Any, django_capture_on_commit_callbacks: Any
) -> None:
    cycle = cycle_create(project=project, budget=5)
    cycle_transition(cycle_id=cycle.pk, to=CycleState.SCORING)
    cycle_progress(cycle_id=cycle.pk, stage="scoring", done=5, total=50)
    cycle_fail(cycle_id=cycle.pk, reason="OSError: disk full")
    page = as_owner.get(reverse("dashboard:cycle-detail", args=[project.pk, cycle.number])).content.decode()
    assert "OSError: disk full" in page and "Retry from where it failed" in page
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = as_owner.post(reverse("dashboard:cycle-retry", args=[project.pk, cycle.number]), follow=True)
    assert "Retrying cycle 1 from scoring." in response.content.decode()
    cycle.refresh_from_db()
    assert cycle.state == CycleState.SCORING and cycle.failure_reason == ""
    assert len(callbacks) == 1


def test_retry_of_a_cycle_that_did_not_fail_is_refused(as_owner: Any, project: Any) -> None:
    cycle = scored_cycle(project, n=5)
    url = reverse("dashboard:cycle-retry", args=[project.pk, cycle.number])
    assert "Only a failed cycle can be retried" in as_owner.post(url, follow=True).content.decode()


def test_status_partial_shows_progress_and_asks_for_a_reload_on_a_new_state(as_owner: Any, project: Any) -> None:
    cycle = cycle_create(project=project, budget=5)
    cycle_transition(cycle_id=cycle.pk, to=CycleState.TRAINING)
    cycle_progress(cycle_id=cycle.pk, stage="training", done=3, total=8)
    url = reverse("dashboard:cycle-status", args=[project.pk, cycle.number])
    html = as_owner.get(url, {"seen": "training"}, **HTMX).content.decode()
    assert '<progress value="3" max="8"' in html and "3 of 8 epochs" in html
    assert 'hx-trigger="every 2s"' in html
    cycle_transition(cycle_id=cycle.pk, to=CycleState.SCORING)
    stale = as_owner.get(url, {"seen": "training"}, **HTMX)
    assert stale.status_code == 204 and stale["HX-Refresh"] == "true"
