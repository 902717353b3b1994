"""The project's consensus rule decides when several annotators' answers become the training label."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from campaigns.models import Item
from campaigns.services.annotations import annotations_apply
from tests.campaigns.services.test_annotations import rec
from tests.factories import ItemFactory, ProjectFactory

pytestmark = pytest.mark.django_db


def item_for(**project_fields: object) -> Item:
    return ItemFactory(project=ProjectFactory(labels=["positive", "negative"], **project_fields), ls_task_id=501)


def test_quorum_waits_for_more_than_half_of_the_overlap() -> None:
    item = item_for(annotators_per_task=3, consensus_rule="quorum")
    annotations_apply(project=item.project, records=[rec(1, 501, "positive", who="a@x", minutes=1)])
    item.refresh_from_db()
    assert item.label is None and item.metadata["agreement"] == 1.0  # one of three: not yet a label
    annotations_apply(project=item.project, records=[rec(2, 501, "negative", who="b@x", minutes=2)])
    item.refresh_from_db()
    assert item.label is None and item.metadata["agreement"] == 0.5  # a tie: still no quorum
    annotations_apply(project=item.project, records=[rec(3, 501, "negative", who="c@x", minutes=3)])
    item.refresh_from_db()
    assert (item.label, item.label_source) == ("negative", "consensus")  # 2 of 3 agree
    assert item.metadata["agreement"] == pytest.approx(2 / 3)


def test_majority_labels_from_the_first_answer_and_ground_truth_wins_under_either_rule() -> None:
    item = item_for(annotators_per_task=3)
    annotations_apply(project=item.project, records=[rec(1, 501, "positive", who="a@x", minutes=1)])
    item.refresh_from_db()
    assert item.label == "positive"
    quorum = item_for(annotators_per_task=5, consensus_rule="quorum")
    quorum.ls_task_id = 502
    quorum.save()
    annotations_apply(
        project=quorum.project,
        records=[
            rec(11, 502, "positive", who="a@x", minutes=1),
            rec(12, 502, "negative", who="b@x", minutes=2, ground_truth=True),
        ],
    )
    quorum.refresh_from_db()
    assert quorum.label == "negative"


def test_the_database_refuses_an_overlap_or_rule_out_of_range() -> None:
    for fields in ({"annotators_per_task": 0}, {"annotators_per_task": 21}, {"consensus_rule": "vote"}):
        with pytest.raises(IntegrityError), transaction.atomic():
            ProjectFactory(**fields)


def test_applying_a_changed_rule_is_idempotent_and_skips_label_studio_until_linked() -> None:
    from campaigns.services.overlap import project_run_overlap

    item = item_for(annotators_per_task=3)
    annotations_apply(project=item.project, records=[rec(1, 501, "positive", who="a@x", minutes=1)])
    item.project.consensus_rule = "quorum"
    item.project.save(update_fields=["consensus_rule"])
    assert project_run_overlap(project_id=item.project.pk) == 1  # the lone answer is no quorum of 3: label cleared
    item.refresh_from_db()
    assert item.label is None
    assert project_run_overlap(project_id=item.project.pk) == 0  # a redelivered task changes nothing
    assert project_run_overlap(project_id=10**9) == 0  # a project deleted meanwhile
