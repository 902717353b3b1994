"""Snapshots: `as_of_cycle=N` exports exactly the training set cycle N's model recorded, with the labels it was
trained on, and proves it by recomputing the hash the training logged to MLflow and kept in ModelVersion.params."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from django.db.models import Q

from campaigns.demo_data import DIGIT_LABELS, write_digits
from campaigns.models import Item, TrainingSetItem
from campaigns.services.cycles import cycle_create
from campaigns.services.exports import project_export
from campaigns.services.items import items_import
from campaigns.services.pipeline import cycle_run_training
from campaigns.services.training import registry
from campaigns.services.training_sets import HASH_PARAM, training_set_hash, training_set_record
from tests.factories import CycleFactory, ModelVersionFactory

pytestmark = pytest.mark.django_db


def recorded_cycle(project: Any, items: list[Item], number: int = 1, *, link: bool = True) -> Any:
    """A cycle whose model version recorded `items` as its training set, as model_train_for_cycle does."""
    cycle = CycleFactory(project=project, number=number)
    mv = ModelVersionFactory(
        project=project, kind="trained", params={"cycle_id": cycle.pk, HASH_PARAM: training_set_hash(items)}
    )
    training_set_record(model_version=mv, items=items)
    if link:
        cycle.model_version = mv
        cycle.save(update_fields=["model_version"])
    return mv


@pytest.fixture
def project_with_labels(make_project: Any) -> Any:
    project = make_project()
    for i in range(20):
        Item.objects.create(project=project, key=f"k{19 - i:02d}", split="train", text=f"t{i}", label="positive")
    return project


def test_snapshot_is_the_recorded_set_not_the_labels_now(project_with_labels: Any, tmp_path: Path) -> None:
    project = project_with_labels
    trained = list(Item.objects.filter(project=project)[:12])
    recorded_cycle(project, trained)
    # After training: a relabel, a new label, an item marked invalid. None of it may reach the snapshot.
    Item.objects.filter(pk=trained[0].pk).update(label="negative")
    Item.objects.filter(pk=trained[1].pk).update(state="invalid")
    Item.objects.create(project=project, key="late", split="pool", text="late", label="neutral")
    out = tmp_path / "snap.parquet"

    outcome = project_export(project=project, out=out, fmt="parquet", as_of_cycle=1, page_size=5)

    rows = pq.read_table(out).to_pylist()
    assert [r["key"] for r in rows] == sorted(i.key for i in trained)  # by key: the hash's order
    assert {r["label"] for r in rows} == {"positive"}  # the label the model saw
    assert outcome.rows == 12 and outcome.matches is True


def test_a_cycle_not_linked_to_its_version_finds_it_by_its_params(project_with_labels: Any, tmp_path: Path) -> None:
    project = project_with_labels
    recorded_cycle(project, list(Item.objects.filter(project=project)[:4]), link=False)
    outcome = project_export(project=project, out=tmp_path / "s.csv", fmt="csv", as_of_cycle=1)
    assert (outcome.rows, outcome.matches) == (4, True)


def test_a_tampered_record_does_not_match(project_with_labels: Any, tmp_path: Path) -> None:
    project = project_with_labels
    mv = recorded_cycle(project, list(Item.objects.filter(project=project)[:5]))
    TrainingSetItem.objects.filter(model_version=mv, position=2).update(label="negative")
    outcome = project_export(project=project, out=tmp_path / "s.csv", fmt="csv", as_of_cycle=1)
    assert outcome.matches is False


def test_snapshot_round_trips(project_with_labels: Any, tmp_path: Path, make_project: Any) -> None:
    project = project_with_labels
    trained = list(Item.objects.filter(project=project)[:8])
    recorded_cycle(project, trained)
    out = tmp_path / "snap.jsonl"
    project_export(project=project, out=out, fmt="jsonl", as_of_cycle=1)
    target = make_project(split_ratios=project.split_ratios)
    items_import(project=target, path=out)
    got = {(i.key, i.label) for i in Item.objects.filter(project=target)}
    assert got == {(i.key, i.label) for i in trained}


def test_a_cycle_without_a_trained_model_is_refused(project_with_labels: Any, tmp_path: Path) -> None:
    from django.core.exceptions import ValidationError

    CycleFactory(project=project_with_labels, number=1)  # a cold start: no model
    with pytest.raises(ValidationError) as caught:
        project_export(project=project_with_labels, out=tmp_path / "x.csv", fmt="csv", as_of_cycle=1)
    assert "as_of_cycle" in caught.value.message_dict


@pytest.mark.slow
def test_training_records_its_set_and_logs_the_hash_to_mlflow(
    make_project: Any, tmp_path: Path, mlflow_store: str
) -> None:
    project = make_project(
        task_type="image_classification",
        labels=DIGIT_LABELS,
        model_config={"image_size": 8, "channels": 1, "epochs": 2, "min_steps": 4},
        split_ratios={"train": 0.0, "valid": 0.15, "test": 0.15, "pool": 0.7},
    )
    items_import(project=project, path=write_digits(tmp_path / "digits", limit=150, size=8))
    pool = list(Item.objects.filter(project=project, split="pool").order_by("pk").values_list("pk", flat=True)[:40])
    for item in Item.objects.filter(Q(pk__in=pool) | Q(project=project, split__in=["valid", "test"])):
        item.label, item.label_source = item.ground_truth, "annotation"
        item.save(update_fields=["label", "label_source"])
    cycle = cycle_create(project=project, mc_iterations=2, budget=5)
    cycle_run_training(cycle_id=cycle.pk)
    cycle.refresh_from_db()
    mv = cycle.model_version
    run = registry().client.get_run(mv.mlflow_run_id)
    assert run.data.params[HASH_PARAM] == mv.params[HASH_PARAM]
    assert TrainingSetItem.objects.filter(model_version=mv).count() == 40 == mv.label_count
    # A later label does not leak into the snapshot.
    late = Item.objects.filter(project=project, split="pool", label__isnull=True).order_by("pk").first()
    assert late is not None
    Item.objects.filter(pk=late.pk).update(label=DIGIT_LABELS[0])

    outcome = project_export(project=project, out=tmp_path / "snap.zip", fmt="imagefolder", as_of_cycle=1)

    assert outcome.rows == 40 and outcome.matches is True
