"""External MLflow pyfunc models registered by URI and used like any other version: a classifier and a detector."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
from django.core.exceptions import ValidationError

from campaigns.models import Cycle, Item, Score
from campaigns.services.actions import cycle_retry_and_resume
from campaigns.services.cycles import cycle_create, cycle_fail, cycle_progress, cycle_transition
from campaigns.services.items import items_import
from campaigns.services.pipeline import cycle_run_scoring, cycle_run_training
from campaigns.services.training import model_register_external
from campaigns.states import CycleState
from models_registry.models import ModelVersion
from tests.campaigns.test_ingest import png, write_csv

pytestmark = [pytest.mark.django_db, pytest.mark.integration]


class BrightnessClassifier(mlflow.pyfunc.PythonModel):
    """Class probabilities from mean brightness: bright → "light", dark → "dark", grey → unsure."""

    def predict(self, context, model_input, params=None):
        x = np.asarray(model_input, dtype=np.float32).reshape(len(model_input), -1).mean(axis=1)
        return np.stack([x, 1 - x], axis=1)


class BrightnessDetector(mlflow.pyfunc.PythonModel):
    """One "car" box per image, as confident as the image is bright; none for black images."""

    def predict(self, context, model_input, params=None):
        out = []
        for img in np.asarray(model_input, dtype=np.float32):
            m = float(img.mean())
            out.append([] if m < 0.05 else [{"label": "car", "confidence": m, "bbox": [0, 0, 4, 4]}])
        return out


def log_pyfunc(model: Any, tmp_path: Path, uri: str) -> str:
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(name="model", python_model=model, pip_requirements=["numpy"])
    return str(info.model_uri)


def image_project(make_project: Any, tmp_path: Path, task_type: str, labels: list[str]) -> Any:
    project = make_project(
        task_type=task_type,
        labels=labels,
        model_config={"image_size": 8, "channels": 1},
        split_ratios={"train": 0.0, "valid": 0.0, "test": 0.0, "pool": 1.0},
    )
    shades = [0, 40, 128, 200, 250]
    for s in shades:
        (tmp_path / f"{s}.png").write_bytes(png((s, s, s), size=(8, 8)))
    items_import(project=project, path=write_csv(tmp_path / "i.csv", "image\n" + "".join(f"{s}.png\n" for s in shades)))
    return project


def test_external_classifier_scores_a_cycle_without_training(
    make_project: Any, tmp_path: Path, mlflow_store: str
) -> None:
    project = image_project(make_project, tmp_path, "image_classification", ["light", "dark"])
    mv = model_register_external(
        project=project, model_uri=log_pyfunc(BrightnessClassifier(), tmp_path, mlflow_store), kind="pyfunc-classifier"
    )
    assert (mv.kind, mv.is_champion, mv.version) == ("external", True, 1)
    cycle = cycle_create(project=project, heuristic="bald")
    cycle_run_training(cycle_id=cycle.pk, chain=False)
    cycle_run_scoring(cycle_id=cycle.pk)
    cycle = Cycle.objects.get(pk=cycle.pk)
    assert cycle.state == CycleState.SCORED and cycle.model_version_id == mv.pk
    scores = {s.item.key: s for s in Score.objects.filter(cycle=cycle).select_related("item")}
    assert len(scores) == 5
    # Grey is the most uncertain (entropy stands in for BALD: one probability vector per item).
    assert max(scores.values(), key=lambda s: s.uncertainty).item.key == "128.png"
    assert scores["250.png"].predicted_label == "light" and scores["0.png"].predicted_label == "dark"
    assert {s.heuristic for s in scores.values()} == {"entropy"}
    assert ModelVersion.objects.filter(project=project).count() == 1  # nothing trained


def test_external_detector_scores_images_and_kinds_must_match(
    make_project: Any, tmp_path: Path, mlflow_store: str
) -> None:
    project = image_project(make_project, tmp_path, "object_detection", ["car", "person"])
    uri = log_pyfunc(BrightnessDetector(), tmp_path, mlflow_store)
    with pytest.raises(ValidationError, match="cannot use a pyfunc-classifier"):
        model_register_external(project=project, model_uri=uri, kind="pyfunc-classifier")
    model_register_external(project=project, model_uri=uri, kind="pyfunc-detector")
    cycle = cycle_create(project=project)
    cycle_run_training(cycle_id=cycle.pk, chain=False)
    cycle_run_scoring(cycle_id=cycle.pk)
    scores = {s.item.key: s for s in Score.objects.filter(cycle__pk=cycle.pk).select_related("item")}
    # Lowest box confidence → highest uncertainty; an image without boxes gets the defined maximum, 1.0.
    assert scores["0.png"].uncertainty == 1.0 and scores["0.png"].predicted_label == ""
    assert scores["40.png"].uncertainty > scores["250.png"].uncertainty
    assert scores["250.png"].predicted_label == "car"
    assert {s.heuristic for s in scores.values()} == {"detection:min_confidence"}
    assert Item.objects.filter(project=project).count() == 5


def test_requeue_of_a_cycle_that_failed_training_uses_a_detector_registered_since(
    make_project: Any, tmp_path: Path, mlflow_store: str
) -> None:
    """Issue 17 item 3: after registering a detector, Requeue put the failed cycle back in training and it failed
    again with "alweb trains classifiers only"; the stage must re-read what the project can score with."""
    project = image_project(make_project, tmp_path, "object_detection", ["car", "person"])
    cycle = cycle_create(project=project)
    cycle_transition(cycle_id=cycle.pk, to=CycleState.TRAINING)
    cycle_fail(cycle_id=cycle.pk, reason="TrainingError: alweb trains classifiers only")
    cycle_progress(cycle_id=cycle.pk, stage=CycleState.TRAINING, done=0, total=0)
    mv = model_register_external(
        project=project, model_uri=log_pyfunc(BrightnessDetector(), tmp_path, mlflow_store), kind="pyfunc-detector"
    )
    assert cycle_retry_and_resume(cycle=Cycle.objects.get(pk=cycle.pk)) == CycleState.TRAINING
    cycle_run_training(cycle_id=cycle.pk, chain=False)
    cycle_run_scoring(cycle_id=cycle.pk)
    cycle = Cycle.objects.get(pk=cycle.pk)
    assert cycle.state == CycleState.SCORED and cycle.model_version_id == mv.pk and cycle.started_at is not None


def test_owners_register_a_detector_through_the_api_and_bad_uris_are_400s(
    make_project: Any, tmp_path: Path, mlflow_store: str
) -> None:
    """Issue 17 item 2: a detector could only be registered from `manage.py shell` (POST model-versions was 405)."""
    from rest_framework.test import APIClient

    from campaigns.services.projects import project_add_member
    from tests.factories import UserFactory

    project = image_project(make_project, tmp_path, "object_detection", ["car", "person"])
    owner, member = APIClient(), APIClient()
    owner.force_authenticate(project.owner)
    someone = UserFactory()
    project_add_member(project=project, user=someone)
    member.force_authenticate(someone)
    url = f"/api/projects/{project.pk}/model-versions/"
    good = {"model_uri": log_pyfunc(BrightnessDetector(), tmp_path, mlflow_store), "kind": "pyfunc-detector"}
    assert member.post(url, good, format="json").status_code == 403
    for uri, reason in (
        ("/etc/passwd", "must be an MLflow model URI"),
        ("runs:/0123456789abcdef/model", "could not be loaded"),
    ):
        bad = owner.post(url, {**good, "model_uri": uri}, format="json")
        assert bad.status_code == 400 and reason in str(bad.json()["model_uri"]), bad.json()
    wrong_kind = owner.post(url, {**good, "kind": "pyfunc-classifier"}, format="json")
    assert wrong_kind.status_code == 400 and "kind" in wrong_kind.json()
    created = owner.post(url, good, format="json")
    assert created.status_code == 201, created.content
    assert (created.json()["kind"], created.json()["is_champion"]) == ("external", True)
    assert ModelVersion.objects.filter(project=project).count() == 1
