"""alweb as Label Studio's ML backend: registered in the real LS, "Retrieve predictions" and "train" from LS."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from campaigns.demo_data import TOPIC_LABELS, write_topics
from campaigns.models import Cycle, Item, Project
from campaigns.services.cycles import cycle_cancel, cycle_create
from campaigns.services.items import items_import
from campaigns.services.training import model_train_for_cycle
from campaigns.states import CycleState
from integrations.labelstudio import client as lsc
from integrations.labelstudio import convert
from integrations.labelstudio.client import LabelStudio
from integrations.labelstudio.connect import labelstudio_connect_project, labelstudio_register_ml_backend
from integrations.labelstudio.ml_backend import ml_predict
from integrations.labelstudio.sync import cycle_sync_to_labelstudio
from tests.factories import ProjectFactory
from tests.integrations.labelstudio.builders import ls_tasks, make_project, scored_cycle


def basic(user: str, password: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def trained_text_project(tmp_path: Path) -> Project:
    """A text project (MiniLM embeddings) with a champion model trained on 60 labels."""
    project = ProjectFactory(
        task_type="text_classification",
        labels=TOPIC_LABELS,
        model_config={"epochs": 5, "min_steps": 20},
        split_ratios={"train": 0.0, "valid": 0.2, "test": 0.2, "pool": 0.6},
        ls_webhook_secret="s" * 40,
    )
    items_import(project=project, path=write_topics(tmp_path / "topics", n=160))
    for item in Item.objects.filter(project=project, split="pool").order_by("pk")[:60]:
        item.label, item.label_source = item.ground_truth, "annotation"
        item.save(update_fields=["label", "label_source"])
    cycle = cycle_create(project=project, mc_iterations=5, auto_advance=False)
    mv = model_train_for_cycle(cycle=cycle)
    mv.refresh_from_db()
    assert mv.is_champion
    cycle_cancel(cycle=Cycle.objects.get(pk=cycle.pk))
    return Project.objects.get(pk=project.pk)


@pytest.mark.django_db
def test_ml_endpoints_need_a_connected_project_and_basic_auth(client: Client) -> None:
    project = make_project(n=0)
    url = lambda name: reverse(f"labelstudio-ml-{name}", args=[project.pk])  # noqa: E731
    assert client.get(url("health")).status_code == 404  # not connected to LS: nothing answers
    Project.objects.filter(pk=project.pk).update(ls_project_id=777, ls_url="http://ls.example")
    assert client.get(url("health")).json()["status"] == "UP"
    body = json.dumps({"project": "777.1700000000", "schema": "<View/>"})
    assert client.post(url("setup"), body, content_type="application/json").status_code == 401
    wrong = basic("alweb", "nope")
    assert client.post(url("setup"), body, content_type="application/json", **wrong).status_code == 401
    good = basic("alweb", project.ls_webhook_secret)
    assert client.post(url("setup"), body, content_type="application/json", **good).json() == {
        "model_version": "alweb-none"
    }
    tasks = json.dumps({"tasks": [{"id": 1, "data": {"text": "x"}}], "project": "777.1"})
    assert client.post(url("predict"), tasks, content_type="application/json").status_code == 401
    assert client.post(url("predict"), tasks, content_type="application/json", **good).json() == {"results": []}
    other = json.dumps({"tasks": [], "project": "778.1"})
    assert client.post(url("predict"), other, content_type="application/json", **good).status_code == 400
    # LS's own per-backend webhook posts every event without credentials: acknowledged, nothing done.
    event = json.dumps({"action": "ANNOTATION_CREATED", "annotation": {"id": 1}})
    assert client.post(url("webhook"), event, content_type="application/json").json() == {"status": "ignored"}
    train = json.dumps({"action": "START_TRAINING", "project": {"id": 777}})
    assert client.post(url("webhook"), train, content_type="application/json").status_code == 401
    assert not Cycle.objects.filter(project=project).exists()
    # Nothing to select (no pool): Label Studio is told, with a status it shows, not a 200 that looks like success.
    refused = client.post(url("webhook"), train, content_type="application/json", **good)
    assert refused.status_code == 409 and "no pool items" in refused.json()["error"]
    assert not Cycle.objects.filter(project=project).exists()


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_label_studio_retrieves_predictions_and_starts_training(
    ls_live: Any, ls_pat_client: LabelStudio, tmp_path: Path, mlflow_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = labelstudio_connect_project(project=trained_text_project(tmp_path))
    # The evaluation sample is not this test's subject: only the selection's seven tasks go to Label Studio.
    Project.objects.filter(pk=project.pk).update(eval_valid_target=0, eval_test_target=0)
    project.refresh_from_db()
    pool = Item.objects.filter(project=project, split="pool", label__isnull=True).order_by("pk")
    keys = list(pool.values_list("key", flat=True)[:6])
    # Synced with another model version's predictions (v2, not the champion): LS asks the backend for all of them.
    cycle_sync_to_labelstudio(cycle=scored_cycle(project, {k: 0.5 for k in keys}))
    assert project.ls_project_id is not None
    (by_hand,) = lsc.import_tasks(
        ls_pat_client, project_id=project.ls_project_id, tasks=[{"data": {"text": "the striker scored twice"}}]
    )
    backend = labelstudio_register_ml_backend(project=project)  # LS calls /health and /setup with basic auth
    assert labelstudio_register_ml_backend(project=project) == backend

    lsc.retrieve_predictions(ls_pat_client, project_id=project.ls_project_id)
    tasks = ls_tasks(ls_pat_client, project)
    assert len(tasks) == 7
    expected = ml_predict(project=project, tasks=[{"id": t["id"], "data": t["data"]} for t in tasks])["results"]
    for task, want in zip(tasks, expected, strict=True):
        (pred,) = [p for p in task["predictions"] if p["model_version"] == "alweb-v1"]
        labels = convert.result_to_labels(pred["result"], known_labels=TOPIC_LABELS)
        assert len(labels) == 1 and pred["result"] == want["result"]
        assert pred["score"] == pytest.approx(want["score"])  # MC dropout with a fixed seed: the same answer
    assert any(t["id"] == by_hand for t in tasks)  # a task alweb never created, predicted from its raw text
    # A config switched to fine-tuning after training: the champion (a frozen head) still gets its embeddings.
    project.model_config = {**project.model_config, "finetune": True}
    project.save(update_fields=["model_config"])
    again = ml_predict(project=project, tasks=[{"id": t["id"], "data": t["data"]} for t in tasks])["results"]
    assert again == expected

    started: list[int] = []
    from campaigns import tasks as celery_tasks

    monkeypatch.setattr(celery_tasks.cycle_train, "delay", lambda **kw: started.append(kw["cycle_id"]))
    Cycle.objects.filter(project=project).exclude(state__in=["closed", "cancelled"]).update(state="cancelled")
    lsc._request(ls_pat_client, "POST", f"api/ml/{backend}/train", json={})
    cycle = Cycle.objects.filter(project=project).order_by("-number").first()
    assert cycle is not None and cycle.state == CycleState.CREATED and started == [cycle.pk]
