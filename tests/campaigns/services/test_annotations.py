"""Applying annotations: several annotators, majority and ground-truth precedence, updates, deletes, errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from campaigns.models import Annotation, Item
from campaigns.services.annotations import AnnotationRecord, annotations_apply
from tests.factories import ItemFactory

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def rec(ann_id: int, task: int, value: Any, *, who: str = "a@x", minutes: int = 0, **kw: Any) -> AnnotationRecord:
    return AnnotationRecord(
        ls_annotation_id=ann_id,
        ls_task_id=task,
        annotator=who,
        result=[{"value": {"choices": [value]}}] if value else [],
        value=value,
        created_at=T0 + timedelta(minutes=minutes),
        updated_at=T0 + timedelta(minutes=minutes),
        **kw,
    )


@pytest.fixture
def item(make_project: Any) -> Item:
    return ItemFactory(project=make_project(), ls_task_id=501)


def test_majority_of_several_annotators_with_agreement(item: Item) -> None:
    result = annotations_apply(
        project=item.project,
        records=[
            rec(1, 501, "negative", who="a@x", minutes=1, lead_time=3.5),
            rec(2, 501, "positive", who="b@x", minutes=2),
            rec(3, 501, "positive", who="c@x", minutes=3),
        ],
    )
    assert (result.created, result.items_changed) == (3, 1)
    item.refresh_from_db()
    assert (item.label, item.label_source) == ("positive", "consensus")  # resolved from several answers
    assert item.metadata["agreement"] == pytest.approx(2 / 3)
    assert Annotation.objects.get(ls_annotation_id=1).lead_time == 3.5
    # The same delivery again changes nothing.
    again = annotations_apply(project=item.project, records=[rec(2, 501, "positive", who="b@x", minutes=2)])
    assert (again.created, again.updated, again.items_changed) == (0, 0, 0)
    assert Annotation.objects.count() == 3


def test_ground_truth_flag_wins_and_updates_and_deletes_reresolve(item: Item) -> None:
    annotations_apply(
        project=item.project,
        records=[rec(1, 501, "positive", minutes=1), rec(2, 501, "positive", minutes=2)],
    )
    annotations_apply(project=item.project, records=[rec(3, 501, "neutral", minutes=3, ground_truth=True)])
    item.refresh_from_db()
    assert item.label == "neutral"
    # The ground-truth annotation is deleted in LS: back to the majority.
    annotations_apply(project=item.project, records=[], deleted_ids=[3])
    item.refresh_from_db()
    assert item.label == "positive"
    # Both remaining answers change to negative (an update).
    res = annotations_apply(
        project=item.project,
        records=[rec(1, 501, "negative", minutes=1), rec(2, 501, "negative", minutes=2)],
    )
    assert res.updated == 2
    item.refresh_from_db()
    assert item.label == "negative"


def test_cancelled_and_erroneous_answers_do_not_label_but_errors_are_recorded(item: Item) -> None:
    other = ItemFactory(project=item.project, ls_task_id=502)
    res = annotations_apply(
        project=item.project,
        records=[
            rec(1, 501, None, was_cancelled=True),
            AnnotationRecord(10, 502, "a@x", [{"bad": 1}], None, error="unknown label 'spam'"),
            rec(11, 999, "positive"),  # a task alweb never created: ignored
        ],
    )
    assert res.errors == 1
    item.refresh_from_db()
    other.refresh_from_db()
    assert item.label is None
    assert other.label is None and other.label_error == "unknown label 'spam'"
    assert Annotation.objects.count() == 2
