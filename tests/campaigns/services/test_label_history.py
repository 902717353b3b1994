"""Label history (issue 15): every path that writes Item.label leaves a LabelChange row, in bulk."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from campaigns.models import Cycle, Item, LabelChange
from campaigns.services.annotations import AnnotationRecord, annotations_apply
from campaigns.services.comparison import oracle_answer_in_process, sandbox_create
from campaigns.services.cycles import cycle_create
from campaigns.services.items import items_import
from campaigns.services.label_history import LabelSet, item_labels_set, label_changes_record
from campaigns.services.selection import selection_make
from engine.label_quality import noisy_answer, simulated_answers
from tests.factories import ItemFactory

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def history(item: Item) -> list[tuple[Any, Any, str, str]]:
    return [
        (c.old_value, c.new_value, c.source, c.annotator)
        for c in LabelChange.objects.filter(item=item).order_by("created_at", "id")
    ]


def rec(ann_id: int, value: Any, *, who: str, minutes: int) -> AnnotationRecord:
    return AnnotationRecord(
        ls_annotation_id=ann_id,
        ls_task_id=501,
        annotator=who,
        result=[{"value": {"choices": [value]}}],
        value=value,
        created_at=T0 + timedelta(minutes=minutes),
        updated_at=T0 + timedelta(minutes=minutes),
    )


def test_import_records_new_labels_and_labels_given_to_existing_items(make_project: Any, tmp_path: Path) -> None:
    project = make_project()
    first = tmp_path / "a.csv"
    first.write_text("key,text,label\na,one,positive\nb,two,\nc,three,negative\n")
    items_import(project=project, path=first)
    a, b, c = (Item.objects.get(project=project, key=k) for k in "abc")
    assert history(a) == [(None, "positive", "import", "")]
    assert history(b) == []  # unlabeled: nothing changed
    assert history(c) == [(None, "negative", "import", "")]
    # A re-import labels b (its first label) and tries to relabel a: a conflict, not applied, not recorded.
    second = tmp_path / "b.csv"
    second.write_text("key,text,label\na,one,neutral\nb,two,neutral\n")
    result = items_import(project=project, path=second)
    assert result.conflicts == 1
    assert history(b) == [(None, "neutral", "import", "")]
    assert history(a) == [(None, "positive", "import", "")]


def test_annotations_record_each_change_with_who_and_a_removal(make_project: Any) -> None:
    item = ItemFactory(project=make_project(), ls_task_id=501)
    annotations_apply(project=item.project, records=[rec(1, "negative", who="a@x", minutes=1)])
    annotations_apply(
        project=item.project,
        records=[rec(2, "positive", who="b@x", minutes=2), rec(3, "positive", who="c@x", minutes=3)],
    )
    # The same delivery again changes nothing and records nothing.
    annotations_apply(project=item.project, records=[rec(3, "positive", who="c@x", minutes=3)])
    annotations_apply(project=item.project, records=[], deleted_ids=[1, 2, 3])
    assert history(item) == [
        (None, "negative", "annotation", "a@x"),
        ("negative", "positive", "consensus", "b@x, c@x"),  # three answers: the majority
        ("positive", None, "annotation", ""),
    ]


def test_history_of_thousands_of_items_takes_a_bounded_number_of_queries(make_project: Any) -> None:
    project = make_project()
    Item.objects.bulk_create([Item(project=project, key=f"k{i}", split="pool", text="t") for i in range(3000)])
    ids = list(Item.objects.filter(project=project).values_list("pk", flat=True))
    with CaptureQueriesContext(connection) as queries:
        changed = item_labels_set(labels=dict.fromkeys(ids, "positive"), source="simulation", annotator="oracle")
    assert changed == 3000
    assert LabelChange.objects.filter(item__project=project, source="simulation").count() == 3000
    # select + bulk update (3 batches) + bulk insert of history (1 batch): not one query per row.
    assert len(queries) <= 10
    # Setting the same labels again changes nothing and writes no history.
    assert item_labels_set(labels=dict.fromkeys(ids, "positive"), source="simulation") == 0
    assert LabelChange.objects.filter(item__project=project).count() == 3000


def test_only_real_changes_and_known_sources_are_recorded(make_project: Any) -> None:
    item = ItemFactory(project=make_project())
    assert label_changes_record(changes=[LabelSet(item.pk, "a", "a")], source="import") == 0
    with pytest.raises(ValueError, match="unknown label source"):
        label_changes_record(changes=[LabelSet(item.pk, None, "a")], source="guess")


def create_and_select(sandbox: Any) -> Cycle:
    cycle = cycle_create(project=sandbox, budget=60, auto_advance=False)
    selection_make(cycle=cycle)
    return cycle


def test_simulation_oracle_records_its_answers_with_seeded_noise(make_project: Any) -> None:
    project = make_project(split_ratios={"train": 0.0, "valid": 0.0, "test": 0.0, "pool": 1.0})
    labels = list(project.labels)
    Item.objects.bulk_create(
        [Item(project=project, key=f"k{i}", split="pool", text=f"t{i}", label=labels[i % 3]) for i in range(60)]
    )
    sandbox = sandbox_create(source=project, name="sandbox")
    cycle = create_and_select(sandbox)
    answered = oracle_answer_in_process(cycle=Cycle.objects.get(pk=cycle.pk), noise_rate=0.3, noise_seed=7)
    assert answered == 60
    items = list(Item.objects.filter(project=sandbox))
    wrong = [i for i in items if i.label != i.ground_truth]
    # The noise is the seeded per-item draw: exactly the items whose draw flips them, each to another class.
    expected = [i for i in items if noisy_answer(i.ground_truth, labels, rate=0.3, seed=7, key=i.key) != i.ground_truth]
    assert {i.pk for i in wrong} == {i.pk for i in expected}
    assert 5 <= len(wrong) <= 35
    changes = LabelChange.objects.filter(item__project=sandbox)
    assert changes.count() == 60
    assert set(changes.values_list("source", "annotator")) == {("simulation", "oracle")}


def test_several_simulated_annotators_answer_as_the_overlap_asks_and_the_majority_labels(make_project: Any) -> None:
    project = make_project(split_ratios={"train": 0.0, "valid": 0.0, "test": 0.0, "pool": 1.0}, annotators_per_task=3)
    labels = list(project.labels)
    Item.objects.bulk_create(
        [Item(project=project, key=f"k{i}", split="pool", text=f"t{i}", label=labels[i % 3]) for i in range(60)]
    )
    sandbox = sandbox_create(source=project, name="sandbox")
    assert sandbox.annotators_per_task == 3
    cycle = create_and_select(sandbox)
    rates = [0.0, 0.6, 0.6]
    oracle_answer_in_process(cycle=Cycle.objects.get(pk=cycle.pk), annotators=rates, noise_seed=3)
    items = list(Item.objects.filter(project=sandbox))
    said = {i.pk: simulated_answers(i.ground_truth, labels, rates=rates, overlap=3, seed=3, key=i.key) for i in items}
    assert all(len(s) == 3 and {who for who, _ in s} == {"sim-1", "sim-2", "sim-3"} for s in said.values())
    # The label is the majority of the three answers (the earliest on a tie), as the product resolves them.
    for i in items:
        values = [v for _, v in said[i.pk]]
        best = max(values.count(v) for v in values)
        assert i.label == next(v for v in values if values.count(v) == best)
    # Two careless annotators outvote the careful one now and then, never more often than each errs alone.
    wrong = sum(i.label != i.ground_truth for i in items)
    assert 0 < wrong < sum(v != i.ground_truth for i in items for who, v in said[i.pk] if who == "sim-2")
