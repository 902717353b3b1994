"""A cycle run by a real Celery worker process over Redis and Postgres, with the real MLflow store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from campaigns.demo_data import DIGIT_LABELS, write_digits
from campaigns.models import Cycle, Item, Score
from campaigns.services.actions import cycle_start
from campaigns.services.items import items_import
from campaigns.services.selection import selection_make
from campaigns.states import CycleState
from models_registry.models import ModelVersion
from tests.factories import ProjectFactory
from tests.worker import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration, pytest.mark.slow]


def digits_project(tmp_path: Path, n: int = 300, labeled: int = 80) -> Any:
    project = ProjectFactory(
        task_type="image_classification",
        labels=DIGIT_LABELS,
        # No minimum number of optimizer steps: these tests watch the workers, not the model's quality, and a
        # 300-step training alone outlasts their waits on a loaded 2-core host.
        model_config={"image_size": 16, "channels": 1, "epochs": 8, "min_steps": 0},
        split_ratios={"train": 0.0, "valid": 0.15, "test": 0.15, "pool": 0.7},
    )
    items_import(project=project, path=write_digits(tmp_path / "digits", limit=n, size=16))
    for item in Item.objects.filter(project=project, split="pool").order_by("pk")[:labeled]:
        item.label = item.ground_truth
        item.save(update_fields=["label"])
    return project


def test_worker_trains_and_scores_then_a_person_selects(tmp_path: Path, celery_worker: Any) -> None:
    project = digits_project(tmp_path)
    cycle = cycle_start(project=project, budget=15, threshold=0.0, mc_iterations=6, auto_advance=False)

    def scored() -> Cycle | None:
        c = Cycle.objects.get(pk=cycle.pk)
        assert c.state != CycleState.FAILED, c.failure_reason
        return c if c.state == CycleState.SCORED else None

    done = wait_for(scored, timeout=240, what="the worker to train and score", worker=celery_worker)
    pool = Item.objects.filter(project=project, split="pool", label__isnull=True).count()
    assert Score.objects.filter(cycle=cycle).count() == pool
    assert done.progress["stage"] == "scoring" and done.progress["done"] == pool
    assert ModelVersion.objects.get(project=project).is_champion
    selection = selection_make(cycle=done)
    # The budget's 15 training picks, plus the evaluation sample sent with the first selection.
    assert selection.items.filter(purpose="training").count() == 15
