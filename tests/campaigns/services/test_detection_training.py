"""A detection project trains its own detector each cycle (issue 17 item 4): registered in MLflow like the classifiers,
measured by mAP on the human test labels, scored with MC dropout into boxes and image uncertainties."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from campaigns.demo_shapes import SHAPE_LABELS, write_shapes
from campaigns.models import Cycle, Item, Project, Score
from campaigns.selectors import project_learning_curve
from campaigns.services.cycles import cycle_create
from campaigns.services.inference import model_load
from campaigns.services.items import items_import
from campaigns.services.pipeline import cycle_run_scoring, cycle_run_training
from campaigns.services.training import model_train_for_cycle, registry
from campaigns.states import CycleState
from engine.detector import CenterDetector
from models_registry.models import ModelVersion

pytestmark = [pytest.mark.django_db, pytest.mark.integration]


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Torch on one thread: on machines whose cores other jobs share, more threads made training slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def detection_project(make_project: Any, tmp_path: Path, *, labeled: int) -> Project:
    """Generated shapes: `labeled` pool items and every validation and test item labeled by people."""
    project = make_project(
        task_type="object_detection",
        labels=SHAPE_LABELS,
        model_config={"image_size": 32, "epochs": 12, "min_steps": 0},
        split_ratios={"train": 0.0, "valid": 0.15, "test": 0.25, "pool": 0.6},
    )
    items_import(project=project, path=write_shapes(tmp_path / "shapes", n=200, size=32))
    pool = list(Item.objects.filter(project=project, split="pool").order_by("pk")[:labeled])
    evaluation = list(Item.objects.filter(project=project, split__in=["valid", "test"]))
    for item in pool + evaluation:
        item.label, item.label_source = item.ground_truth, "annotation"
    Item.objects.bulk_update(pool + evaluation, ["label", "label_source"])
    return project


def test_a_detection_cycle_trains_registers_measures_and_scores_with_boxes(
    make_project: Any, tmp_path: Path, mlflow_store: str, one_thread: None
) -> None:
    project = detection_project(make_project, tmp_path, labeled=80)
    cycle = cycle_create(project=project, mc_iterations=4, auto_advance=False)
    cycle_run_training(cycle_id=cycle.pk, chain=False)
    cycle = Cycle.objects.get(pk=cycle.pk)
    assert cycle.state == CycleState.SCORING, cycle.failure_reason  # trained: scoring is next
    mv = ModelVersion.objects.get(pk=cycle.model_version_id)
    assert (mv.kind, mv.architecture, mv.label_count, mv.is_champion) == ("trained", "CenterDetector", 80, True)
    tests = Item.objects.filter(project=project, split="test").count()
    assert mv.metrics["evaluated_on"] == "test" and mv.metrics["labels"]["test"] == tests > 30
    # A real mAP, measured by pycocotools on the test images: far above what no learning gives (0.0004 at 32 px,
    # tests/engine/test_detector.py), below perfect.
    assert 0.1 < mv.metrics["map_50"] < 1.0 and 0 < mv.metrics["map"] < mv.metrics["map_50"]
    assert set(mv.metrics["per_class_ap50"]) == set(SHAPE_LABELS)
    assert mv.params["epochs_run"] == 12 and 1 <= mv.params["best_epoch"] <= 12
    run = registry().client.get_run(mv.mlflow_run_id)
    assert run.data.metrics["test_map_50"] == pytest.approx(mv.metrics["map_50"])
    assert "best_val_map_50" in run.data.metrics
    assert isinstance(model_load(model_version=mv), CenterDetector)  # any worker loads it back from MLflow

    # A second delivery of the same training finds the version instead of training again.
    assert model_train_for_cycle(cycle=cycle).pk == mv.pk

    cycle_run_scoring(cycle_id=cycle.pk)
    assert Cycle.objects.get(pk=cycle.pk).state == CycleState.SCORED
    scores = list(Score.objects.filter(cycle_id=cycle.pk))
    assert len(scores) == Item.objects.filter(project=project, split="pool", label__isnull=True).count()
    # The project's default heuristic (margin) reads as the detection pipelines' own: the lowest box confidence.
    assert {s.heuristic for s in scores} == {"detection:min_confidence"}
    with_boxes = [s for s in scores if s.boxes]
    assert len(with_boxes) > len(scores) / 2
    for s in with_boxes:
        assert {b["label"] for b in s.boxes} <= set(SHAPE_LABELS)
        assert s.uncertainty == pytest.approx(1 - min(b["score"] for b in s.boxes), abs=1e-5)
        assert s.predicted_label == max(s.boxes, key=lambda b: b["score"])["label"]
    assert all(s.uncertainty == 1.0 for s in scores if not s.boxes)

    (point,) = project_learning_curve(project=project)
    assert (point["map_50"], point["map"], point["macro_f1"]) == (mv.metrics["map_50"], mv.metrics["map"], None)
