"""A text project that fine-tunes its own encoder, end to end on a real Celery worker (issue 19): the worker
fine-tunes a tiny BERT folder from media storage with MC dropout confined to its top layer, registers the model
in MLflow, scores the pool, selects and syncs to a real Label Studio, whose tasks carry that model's predictions;
Label Studio's ML backend call answers with the same model, tokenized by its own tokenizer."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from campaigns.demo_data import TOPIC_LABELS
from campaigns.models import Cycle, Project, Score, SelectedItem
from campaigns.services.actions import cycle_start
from campaigns.services.items import items_import
from campaigns.states import CycleState
from integrations.labelstudio import convert
from integrations.labelstudio.client import LabelStudio
from integrations.labelstudio.ml_backend import ml_predict
from models_registry.models import ModelVersion
from tests import labelstudio_server as lss
from tests.campaigns.services.test_text_encoders import store_folder, topics
from tests.campaigns.services.test_training import label_some
from tests.engine.test_text_finetune import tiny_bert_folder
from tests.factories import ProjectFactory
from tests.integrations.labelstudio.builders import ls_tasks
from tests.worker import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration, pytest.mark.slow]


def test_a_fine_tuned_text_cycle_runs_through_a_worker_and_label_studio(
    tmp_path: Path, ls_server: lss.LabelStudioServer, ls_pat_client: LabelStudio, celery_worker: Any
) -> None:
    path, words = topics(tmp_path, 90)
    encoder = store_folder(tiny_bert_folder(tmp_path / "tiny", words=words), "encoders/tiny")
    project = ProjectFactory(
        task_type="text_classification",
        labels=TOPIC_LABELS,
        model_config={"encoder": encoder, "finetune": True, "mc_layers": 1, "epochs": 2, "min_steps": 0},
        split_ratios={"train": 0.0, "valid": 0.2, "test": 0.2, "pool": 0.6},
        ls_webhook_secret=secrets.token_urlsafe(32),
    )
    items_import(project=project, path=path)
    label_some(project, 20)
    Project.objects.filter(pk=project.pk).update(ls_url=ls_server.url, ls_api_key=ls_server.pat)
    celery_worker.stop()
    celery_worker.env.update(ALWEB_BASE_URL="http://127.0.0.1:9", ALWEB_LS_ALLOWED_URLS=ls_server.url)
    celery_worker.start()

    budget = 6
    cycle = cycle_start(project=Project.objects.get(pk=project.pk), budget=budget, mc_iterations=4)

    def labeling() -> Cycle | None:
        c = Cycle.objects.get(pk=cycle.pk)
        assert c.state not in (CycleState.FAILED, CycleState.CANCELLED), c.failure_reason
        return c if c.state == CycleState.LABELING else None

    wait_for(labeling, timeout=420, what="the worker to fine-tune, score, select and sync", worker=celery_worker)
    mv = ModelVersion.objects.get(project=project)
    assert (mv.architecture, mv.is_champion) == ("TextFinetuneModel", True)
    pool_scores = Score.objects.filter(cycle=cycle)
    assert pool_scores.exists() and set(pool_scores.values_list("predicted_label", flat=True)) <= set(TOPIC_LABELS)

    rows = {si.item_id: si for si in SelectedItem.objects.filter(selection__cycle=cycle, purpose="training")}
    assert len(rows) == budget
    tasks = [t for t in ls_tasks(ls_pat_client, project) if t["data"]["alweb_item"] in rows]
    assert len(tasks) == budget
    for task in tasks:
        si = rows[task["data"]["alweb_item"]]
        (prediction,) = task["predictions"]
        assert prediction["model_version"] == f"alweb-v{mv.version}"
        assert prediction["score"] == pytest.approx(convert.uncertainty_to_ls_score(si.uncertainty or 0.0))

    answer = ml_predict(project=Project.objects.get(pk=project.pk), tasks=tasks)
    assert {r["model_version"] for r in answer["results"]} == {f"alweb-v{mv.version}"}
    assert len(answer["results"]) == budget and all(r["result"] for r in answer["results"])
