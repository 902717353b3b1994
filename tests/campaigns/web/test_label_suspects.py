"""The dashboard's label-errors page (issue 15): the latest suspects with the model's suggestion, a form that sends
chosen ones back for review (bad input said, nothing sent), members only."""

from __future__ import annotations

from typing import Any

import pytest

from campaigns.models import LabelQualityRun, LabelReview, LabelSuspect, RunState
from tests.factories import CycleFactory, ItemFactory, ModelVersionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def suspect(project: Any) -> LabelSuspect:
    item = ItemFactory(project=project, key="doubtful-1", label="positive")
    run = LabelQualityRun.objects.create(
        project=project,
        cycle=CycleFactory(project=project, number=2),
        model_version=ModelVersionFactory(project=project),
        state=RunState.DONE,
        summary={"labeled": 40},
    )
    return LabelSuspect.objects.create(
        run=run,
        item=item,
        rank=1,
        quality=0.004,
        label="positive",
        suggested_label="negative",
        suggested_probability=0.93,
        annotations=3,
        consensus_label="neutral",
        consensus_quality=0.004,
    )


def test_members_see_suspects_and_send_them_back(as_owner: Any, project: Any, suspect: LabelSuspect) -> None:
    assert b"Label errors" in as_owner.get(f"/projects/{project.pk}/").content
    page = as_owner.get(f"/projects/{project.pk}/label-errors/").content.decode()
    assert "cycle 2" in page and "40 labeled items checked" in page
    assert "doubtful-1" in page and "negative" in page and "0.004" in page
    assert 'neutral <span class="muted">(3 answers, 0.00)</span>' in page  # CROWDLAB's consensus
    response = as_owner.post(f"/projects/{project.pk}/label-errors/review/", {"item": [suspect.item_id]}, follow=True)
    assert response.status_code == 200
    review = LabelReview.objects.get(item=suspect.item)
    assert (review.state, review.label_before, review.suggested_label, review.suspect) == (
        "open",
        "positive",
        "negative",
        suspect,
    )
    page = response.content.decode()
    assert "1 item(s) sent back" in page and "in review" in page


def test_a_running_check_shows_its_progress(as_owner: Any, project: Any, suspect: LabelSuspect) -> None:
    LabelQualityRun.objects.create(
        project=project,
        cycle=CycleFactory(project=project, number=3),
        model_version=ModelVersionFactory(project=project),
        state=RunState.RUNNING,
        progress={"stage": "folds", "done": 2, "total": 5},
    )
    page = as_owner.get(f"/projects/{project.pk}/label-errors/").content.decode()
    assert "after cycle 3" in page and "model 2 of 5 trained" in page
    assert "doubtful-1" in page  # the last finished run's suspects stay shown meanwhile


def test_bad_input_is_said_and_nothing_is_sent(as_owner: Any, project: Any, suspect: LabelSuspect) -> None:
    for data in ({}, {"item": ["x"]}, {"item": [ItemFactory(label="positive").pk]}):
        response = as_owner.post(f"/projects/{project.pk}/label-errors/review/", data, follow=True)
        assert "Not sent: item" in response.content.decode()
    assert not LabelReview.objects.exists()


def test_outsiders_get_404(as_outsider: Any, project: Any, suspect: LabelSuspect) -> None:
    assert as_outsider.get(f"/projects/{project.pk}/label-errors/").status_code == 404
    assert (
        as_outsider.post(f"/projects/{project.pk}/label-errors/review/", {"item": [suspect.item_id]}).status_code == 404
    )
    assert not LabelReview.objects.exists()
