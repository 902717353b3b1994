"""Suspected label errors computed by a real Celery worker process (Redis, Postgres, the real MLflow store): the
training's commit sends the task, the worker runs it on the training queue and stores the suspects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.db import transaction

from campaigns.demo_data import DIGIT_LABELS, write_digits
from campaigns.models import Item, LabelQualityRun, LabelSuspect, RunState
from campaigns.services.cycles import cycle_create
from campaigns.services.items import items_import
from campaigns.services.label_quality import label_quality_queue
from campaigns.services.training import model_train_for_cycle
from tests.factories import ProjectFactory
from tests.worker import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration, pytest.mark.slow]


def test_the_worker_ranks_suspects_after_a_training(tmp_path: Path, celery_worker: Any) -> None:
    celery_worker.stop()
    celery_worker.queues += ",quality"  # the label-quality queue (ALWEB_QUEUE_LABEL_QUALITY)
    celery_worker.start()
    project = ProjectFactory(
        task_type="image_classification",
        labels=DIGIT_LABELS,
        model_config={"image_size": 8, "channels": 1, "epochs": 5, "min_steps": 60},
        split_ratios={"train": 0.0, "valid": 0.15, "test": 0.15, "pool": 0.7},
    )
    items_import(project=project, path=write_digits(tmp_path / "digits", limit=200, size=8))
    pool = list(Item.objects.filter(project=project, split="pool").order_by("pk")[:80])
    for n, item in enumerate(pool):
        wrong = n % 20 == 3  # 4 planted errors: the next digit's label
        label = DIGIT_LABELS[(DIGIT_LABELS.index(item.ground_truth) + 1) % 10] if wrong else item.ground_truth
        Item.objects.filter(pk=item.pk).update(label=label, label_source="import")
    cycle = cycle_create(project=project, budget=10, auto_advance=False)
    mv = model_train_for_cycle(cycle=cycle)
    with transaction.atomic():  # the task is sent once this commits, as after a cycle's training
        label_quality_queue(model_version=mv, cycle=cycle)

    def done() -> LabelQualityRun | None:
        run = LabelQualityRun.objects.get(model_version=mv)
        assert run.state != RunState.FAILED, run.failure_reason
        return run if run.state == RunState.DONE else None

    run = wait_for(done, timeout=300, what="the worker's label-quality run", worker=celery_worker)
    assert run.summary["labeled"] == 80 and run.summary["folds"] == 5
    assert run.progress["done"] == run.progress["total"] == 5  # the fold-by-fold progress ended full
    suspects = LabelSuspect.objects.filter(run=run)
    assert suspects.exists()
    planted = {item.pk for n, item in enumerate(pool) if n % 20 == 3}
    assert planted & set(suspects.values_list("item_id", flat=True))
