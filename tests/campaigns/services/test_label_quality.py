"""Suspected label errors after a training (issue 15): K-fold out-of-fold probabilities of the project's own network,
then cleanlab; stored suspects with the model's suggestion; idempotent runs."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from campaigns.demo_data import DIGIT_LABELS, write_digits
from campaigns.models import Item, LabelQualityRun, LabelSuspect, RunState
from campaigns.services.cycles import cycle_create
from campaigns.services.items import items_import
from campaigns.services.label_quality import label_quality_queue, label_quality_run, probabilities_unpack
from campaigns.services.training import model_train_for_cycle
from tests.factories import AnnotationFactory

pytestmark = pytest.mark.django_db
PLANTED = 6


def digits_with_planted_errors(make_project: Any, tmp_path: Path, *, labeled: int = 150) -> tuple[Any, set[int]]:
    project = make_project(
        task_type="image_classification",
        labels=DIGIT_LABELS,
        model_config={"image_size": 8, "channels": 1, "epochs": 8, "min_steps": 100},
        split_ratios={"train": 0.0, "valid": 0.15, "test": 0.15, "pool": 0.7},
    )
    items_import(project=project, path=write_digits(tmp_path / "digits", limit=420, size=8))
    pool = list(Item.objects.filter(project=project, split="pool").order_by("pk")[:labeled])
    for n, item in enumerate(pool):
        # Every 25th labeled item gets the next digit's label: planted errors, spread over the classes.
        wrong = n % 25 == 7
        label = DIGIT_LABELS[(DIGIT_LABELS.index(item.ground_truth) + 1) % 10] if wrong else item.ground_truth
        Item.objects.filter(pk=item.pk).update(label=label, label_source="import")
    Item.objects.filter(project=project, split__in=["valid", "test"]).update(label=None)
    return project, {item.pk for n, item in enumerate(pool) if n % 25 == 7}


def test_a_training_ranks_planted_label_errors_first(
    make_project: Any, tmp_path: Path, mlflow_store: str, django_capture_on_commit_callbacks: Any
) -> None:
    project, planted = digits_with_planted_errors(make_project, tmp_path)
    assert len(planted) == PLANTED
    # Overlap on the first 30 labeled items: a and b give the item's label, c another digit on two items of three.
    for n, item in enumerate(Item.objects.filter(project=project, label__isnull=False).order_by("pk")[:30]):
        other = DIGIT_LABELS[(DIGIT_LABELS.index(item.label) + 3) % 10]
        for who, value in (("a", item.label), ("b", item.label), ("c", item.label if n % 3 == 0 else other)):
            AnnotationFactory(item=item, annotator=who, value=value)
    cycle = cycle_create(project=project, budget=10, auto_advance=False)
    mv = model_train_for_cycle(cycle=cycle)
    with django_capture_on_commit_callbacks(execute=False) as sent:
        run = label_quality_queue(model_version=mv, cycle=cycle)
        assert label_quality_queue(model_version=mv, cycle=cycle) == run  # one run per model version
    assert run is not None and run.state == RunState.QUEUED and len(sent) == 1

    done = label_quality_run(model_version_id=mv.pk)
    assert done is not None and done.state == RunState.DONE
    assert done.summary["labeled"] == 150 and done.summary["folds"] == 5
    suspects = list(LabelSuspect.objects.filter(run=done).select_related("item").order_by("rank"))
    assert [s.rank for s in suspects] == list(range(1, len(suspects) + 1))
    assert all(a.quality <= b.quality for a, b in pairwise(suspects))
    top = suspects[: 2 * PLANTED]
    found = [s for s in top if s.item_id in planted]
    shown = [(s.item.key, s.label, s.suggested_label, round(s.quality, 4)) for s in top]
    # Most planted errors are among the first 12 suspects of 150 labeled items (by chance: about 0.5 of them), and
    # most suspects are planted errors (by chance: 4%).
    assert len(found) >= PLANTED // 2 + 1, shown
    assert len(found) / len(top) >= 0.5, shown
    # The model's suggestion for a planted error is its true digit.
    assert sum(s.suggested_label == s.item.ground_truth for s in found) >= len(found) - 1
    assert all(s.label == s.item.label for s in suspects)
    # CROWDLAB on the items with three answers: c, wrong on two thirds, is the least trusted annotator; a suspect
    # with several answers carries the consensus and its quality (also its ranking quality).
    quality = {a["annotator"]: a["quality"] for a in done.summary["annotators"]}
    assert set(quality) == {"a", "b", "c"} and quality["c"] < min(quality["a"], quality["b"]), quality
    assert done.summary["multi_annotator_items"] == 30
    multi = [s for s in suspects if s.annotations == 3]
    assert all(s.consensus_label in DIGIT_LABELS and s.consensus_quality == s.quality for s in multi)
    assert all(s.consensus_label == "" and s.consensus_quality is None for s in suspects if s.annotations == 1)
    # The out-of-fold probabilities stay with the run, for a later ActiveLab split.
    ids, probs = probabilities_unpack(done.probabilities)
    assert len(ids) == 150 and probs.shape == (150, 10)

    # A redelivered task finds the run done and changes nothing.
    assert label_quality_run(model_version_id=mv.pk) is None
    assert LabelSuspect.objects.filter(run=done).count() == len(suspects)


def test_too_few_labels_end_the_run_with_the_reason(
    make_project: Any, tmp_path: Path, mlflow_store: str, django_capture_on_commit_callbacks: Any
) -> None:
    project, _ = digits_with_planted_errors(make_project, tmp_path, labeled=8)
    cycle = cycle_create(project=project, budget=10, auto_advance=False)
    mv = model_train_for_cycle(cycle=cycle)
    with django_capture_on_commit_callbacks(execute=False):
        label_quality_queue(model_version=mv, cycle=cycle)
    run = label_quality_run(model_version_id=mv.pk)
    assert run is not None and run.state == RunState.DONE
    assert run.summary == {"labeled": 8, "skipped": "too few labels or a single class"}
    assert not LabelSuspect.objects.exists()
    assert LabelQualityRun.objects.count() == 1
