"""A detection cycle end to end on a real Celery worker: the worker trains alweb's own detector on the boxes labeled
so far, scores the pool with MC dropout, selects, and syncs to a real Label Studio, where each task's prediction
carries the detector's boxes as rectanglelabels regions for the annotator to correct (issue 17 items 1 and 4)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from campaigns.demo_shapes import SHAPE_LABELS, write_shapes
from campaigns.models import Cycle, Item, Project, Score, SelectedItem
from campaigns.services.actions import cycle_start
from campaigns.services.items import items_import
from campaigns.states import CycleState
from integrations.labelstudio import convert
from integrations.labelstudio.client import LabelStudio
from integrations.labelstudio.ml_backend import ml_predict
from models_registry.models import ModelVersion
from tests import labelstudio_server as lss
from tests.factories import ProjectFactory
from tests.integrations.labelstudio.builders import ls_tasks
from tests.worker import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration, pytest.mark.slow]


def test_a_detection_cycle_trains_scores_and_sends_boxes_to_label_studio(
    tmp_path: Path, ls_server: lss.LabelStudioServer, ls_pat_client: LabelStudio, celery_worker: Any
) -> None:
    project = ProjectFactory(
        task_type="object_detection",
        labels=SHAPE_LABELS,
        model_config={"image_size": 32, "epochs": 20, "min_steps": 0},
        split_ratios={"train": 0.0, "valid": 0.15, "test": 0.25, "pool": 0.6},
        ls_webhook_secret=secrets.token_urlsafe(32),
    )
    items_import(project=project, path=write_shapes(tmp_path / "shapes", n=160, size=32))
    labeled = list(Item.objects.filter(project=project, split="pool").order_by("pk")[:50])
    labeled += list(Item.objects.filter(project=project, split__in=["valid", "test"]))
    for item in labeled:
        item.label, item.label_source = item.ground_truth, "annotation"
    Item.objects.bulk_update(labeled, ["label", "label_source"])
    Project.objects.filter(pk=project.pk).update(ls_url=ls_server.url, ls_api_key=ls_server.pat)
    celery_worker.stop()
    celery_worker.env.update(ALWEB_BASE_URL="http://127.0.0.1:9", ALWEB_LS_ALLOWED_URLS=ls_server.url)
    celery_worker.start()

    # Images the detector finds nothing in are the most uncertain (1.0) and come first: a budget of most of the pool
    # reaches images with boxes too.
    unlabeled = Item.objects.filter(project=project, split="pool", label__isnull=True).count()
    budget = unlabeled - 5
    cycle = cycle_start(project=Project.objects.get(pk=project.pk), budget=budget, mc_iterations=4)

    def labeling() -> Cycle | None:
        c = Cycle.objects.get(pk=cycle.pk)
        assert c.state not in (CycleState.FAILED, CycleState.CANCELLED), c.failure_reason
        return c if c.state == CycleState.LABELING else None

    wait_for(labeling, timeout=420, what="the worker to train, score, select and sync", worker=celery_worker)
    mv = ModelVersion.objects.get(project=project)
    assert (mv.kind, mv.architecture, mv.is_champion) == ("trained", "CenterDetector", True)
    assert mv.metrics["map_50"] > 0 and mv.metrics["map"] >= 0
    assert Score.objects.filter(cycle=cycle).exclude(boxes=None).exists()

    rows = {si.item_id: si for si in SelectedItem.objects.filter(selection__cycle=cycle, purpose="training")}
    assert len(rows) == budget
    tasks = [t for t in ls_tasks(ls_pat_client, project) if t["data"]["alweb_item"] in rows]
    assert len(tasks) == budget
    regions = 0
    for task in tasks:
        si = rows[task["data"]["alweb_item"]]
        (prediction,) = task["predictions"]
        assert prediction["model_version"] == f"alweb-v{mv.version}"
        assert prediction["score"] == pytest.approx(convert.uncertainty_to_ls_score(si.uncertainty or 0.0))
        boxes = convert.result_to_boxes(prediction["result"], known_labels=SHAPE_LABELS)
        # Exactly the boxes the detector predicted for this image, in the item's own pixels (32 x 32 here).
        assert len(boxes) == len(si.boxes or [])
        for box, want in zip(boxes, si.boxes or [], strict=True):
            assert box.label == want["label"] and box.score == pytest.approx(want["score"])
            assert (box.x, box.y) == pytest.approx((want["x"] * 32, want["y"] * 32), abs=1e-3)
        regions += len(boxes)
    assert regions > 0

    # Label Studio's "Retrieve predictions" asks alweb's ML backend: the champion detector answers every task with
    # its boxes as regions (its own MC samples, so not necessarily the cycle's boxes).
    answer = ml_predict(project=Project.objects.get(pk=project.pk), tasks=tasks)
    assert len(answer["results"]) == len(tasks)
    assert {r["model_version"] for r in answer["results"]} == {f"alweb-v{mv.version}"}
    answered = [region for r in answer["results"] for region in r["result"]]
    assert answered and {region["type"] for region in answered} == {"rectanglelabels"}
    assert all(0 < region["score"] <= 1 for region in answered)
