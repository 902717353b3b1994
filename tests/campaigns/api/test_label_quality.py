"""GET /api/projects/{id}/suspects/, POST suspects/review/, /reviews/ and reviews/{id}/decide/, and the item
detail's label history: members only (404 for others, 401 anonymous), 400 naming the field, 409 when the item is
no longer in review."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from campaigns.models import Item, LabelChange, LabelQualityRun, LabelReview, LabelSuspect, RunState
from tests.factories import CycleFactory, ItemFactory, ModelVersionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def suspects(project: Any) -> list[LabelSuspect]:
    """A finished run over three labeled items (the ranking itself is tested in tests/campaigns/services/)."""
    cycle = CycleFactory(project=project, number=1)
    run = LabelQualityRun.objects.create(
        project=project,
        cycle=cycle,
        model_version=ModelVersionFactory(project=project),
        state=RunState.DONE,
        summary={"labeled": 3},
    )
    items = [ItemFactory(project=project, label=label) for label in ("positive", "negative", "neutral")]
    return [
        LabelSuspect.objects.create(
            run=run,
            item=item,
            rank=rank,
            quality=0.01 * rank,
            label=item.label,
            suggested_label="neutral" if rank < 3 else "positive",
            suggested_probability=0.9,
            annotations=3 if rank == 1 else 1,
            consensus_label="neutral" if rank == 1 else "",
            consensus_quality=0.01 if rank == 1 else None,
        )
        for rank, item in enumerate(items, start=1)
    ]


def url(project: Any, tail: str = "suspects/") -> str:
    return f"/api/projects/{project.pk}/{tail}"


def test_members_see_the_suspects_with_the_models_suggestion(
    as_member: Any, project: Any, suspects: list[LabelSuspect], django_assert_max_num_queries: Any
) -> None:
    with django_assert_max_num_queries(12):
        response = as_member.get(url(project))
    assert response.status_code == 200
    rows = response.json()["results"]
    assert [r["rank"] for r in rows] == [1, 2, 3]
    first = rows[0]
    assert first["item"] == suspects[0].item_id and first["item_key"] == suspects[0].item.key
    assert (first["label"], first["current_label"], first["suggested_label"]) == ("positive", "positive", "neutral")
    assert first["cycle"] == 1 and first["review"] is None
    assert (first["annotations"], first["consensus_label"], first["consensus_quality"]) == (3, "neutral", 0.01)
    assert (rows[1]["consensus_label"], rows[1]["consensus_quality"]) == ("", None)


def test_outsiders_get_404_and_anonymous_401(
    as_outsider: Any, anon: Any, project: Any, suspects: list[LabelSuspect], post_json: Callable[..., Any]
) -> None:
    assert as_outsider.get(url(project)).status_code == 404
    assert anon.get(url(project)).status_code == 401
    body = {"item_ids": [suspects[0].item_id]}
    assert post_json(as_outsider, url(project, "suspects/review/"), body).status_code == 404
    assert post_json(anon, url(project, "suspects/review/"), body).status_code == 401
    assert as_outsider.get(url(project, "reviews/")).status_code == 404
    assert not LabelReview.objects.exists()


def test_send_back_for_review_then_decide_with_history_and_409(
    as_member: Any, member: Any, project: Any, suspects: list[LabelSuspect], post_json: Callable[..., Any]
) -> None:
    item = suspects[0].item
    sent = post_json(as_member, url(project, "suspects/review/"), {"item_ids": [item.pk, suspects[1].item_id]})
    assert sent.status_code == 201, sent.json()
    reviews = {r["item"]: r for r in sent.json()}
    review = reviews[item.pk]
    assert (review["state"], review["label_before"], review["suggested_label"]) == ("open", "positive", "neutral")
    # Sending the same item again keeps its one open review.
    again = post_json(as_member, url(project, "suspects/review/"), {"item_ids": [item.pk]})
    assert again.status_code == 201 and again.json()[0]["id"] == review["id"]
    assert as_member.get(url(project)).json()["results"][0]["review"] == review["id"]

    decided = post_json(as_member, url(project, f"reviews/{review['id']}/decide/"), {"label": "neutral"})
    assert decided.status_code == 200, decided.json()
    assert (decided.json()["state"], decided.json()["decision"]) == ("decided", "neutral")
    item.refresh_from_db()
    assert (item.label, item.label_source) == ("neutral", "review")
    change = LabelChange.objects.get(item=item)
    assert (change.old_value, change.new_value, change.source, change.user) == ("positive", "neutral", "review", member)
    assert "suggested 'neutral'" in change.reason

    # The item is no longer in review: a second decision is a 409, and changes nothing.
    late = post_json(as_member, url(project, f"reviews/{review['id']}/decide/"), {"label": "negative"})
    assert late.status_code == 409 and "no longer in review" in late.json()["detail"]
    assert Item.objects.get(pk=item.pk).label == "neutral"
    assert as_member.get(url(project, "reviews/?state=open")).json()["count"] == 1

    detail = as_member.get(url(project, f"items/{item.pk}/")).json()
    assert [(h["old_value"], h["new_value"], h["source"], h["user"]) for h in detail["label_history"]] == [
        ("positive", "neutral", "review", member.username)
    ]


def test_bad_input_is_400_naming_the_field(
    as_member: Any, project: Any, suspects: list[LabelSuspect], post_json: Callable[..., Any], make_project: Any
) -> None:
    review_url = url(project, "suspects/review/")
    assert "item_ids" in post_json(as_member, review_url, {}).json()
    assert "item_ids" in post_json(as_member, review_url, {"item_ids": []}).json()
    assert "item_ids" in post_json(as_member, review_url, {"item_ids": ["x"]}).json()
    elsewhere = ItemFactory(project=make_project(), label="positive")
    unlabeled = ItemFactory(project=project)
    for ids in ([elsewhere.pk], [unlabeled.pk]):
        response = post_json(as_member, review_url, {"item_ids": ids})
        assert response.status_code == 400 and "item_ids" in response.json(), response.json()
    assert not LabelReview.objects.exists()
    sent = post_json(as_member, review_url, {"item_ids": [suspects[0].item_id]}).json()[0]
    decide = url(project, f"reviews/{sent['id']}/decide/")
    for body in ({}, {"label": "unknown"}):
        response = post_json(as_member, decide, body)
        assert response.status_code == 400 and "label" in response.json(), response.json()
    assert LabelReview.objects.get(pk=sent["id"]).state == "open"
