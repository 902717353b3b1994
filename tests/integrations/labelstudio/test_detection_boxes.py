"""Detection boxes as pre-annotations (issue 17 item 1): a detector's boxes flow score → selection → the task's
prediction in a real Label Studio → an annotator accepts them → the pull brings them back as the item's label;
the ML backend's /predict answers the same regions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest

from campaigns.models import Cycle, Item, Score, SelectedItem
from campaigns.services.cycles import cycle_create
from campaigns.services.pipeline import cycle_run_scoring, cycle_run_training
from campaigns.services.selection import selection_make
from campaigns.services.training import model_register_external
from integrations.labelstudio import convert
from integrations.labelstudio.client import LabelStudio
from integrations.labelstudio.ml_backend import ml_predict
from integrations.labelstudio.pull import project_pull_annotations
from integrations.labelstudio.sync import cycle_sync_to_labelstudio
from tests.integrations.labelstudio.builders import annotate, ls_tasks, make_project

pytestmark = [pytest.mark.django_db, pytest.mark.integration]

# What the detector below draws, as fractions of the image whatever the input size.
DOG = {"label": "dog", "x": 0.25, "y": 0.125, "w": 0.5, "h": 0.375}


class DogDetector(mlflow.pyfunc.PythonModel):
    """A "dog" box at the same place in every image (in pixels of the input it gets), as confident as the image is
    bright, plus a "zebra" box, a label the project does not have."""

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        x = np.asarray(model_input, dtype=np.float32)
        side = x.shape[-1]
        return [
            [
                {
                    "label": "dog",
                    "confidence": 0.2 + 0.6 * float(img.mean()),
                    "bbox": [side / 4, side / 8, side / 2, side * 3 / 8],
                },
                {"label": "zebra", "confidence": 0.99, "bbox": [0, 0, side / 2, side / 2]},
            ]
            for img in x
        ]


def _register(project: Any, tmp_path: Path, store: str) -> None:
    mlflow.set_tracking_uri(store)
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(name="model", python_model=DogDetector(), pip_requirements=["numpy"])
    model_register_external(project=project, model_uri=str(info.model_uri), kind="pyfunc-detector")


def test_predicted_boxes_reach_label_studio_and_come_back_when_accepted(
    ls_settings: Any, ls_pat_client: LabelStudio, mlflow_store: str, tmp_path: Path
) -> None:
    project = make_project("object_detection", n=6, model_config={"image_size": 16, "channels": 3})
    _register(project, tmp_path, mlflow_store)
    cycle = cycle_create(project=project, budget=4, auto_advance=False)
    cycle_run_training(cycle_id=cycle.pk, chain=False)
    cycle_run_scoring(cycle_id=cycle.pk)

    # Stored per scored item, as fractions of the image, with the detector's confidence; the zebra kept too (the
    # score is the model's), and left out only where Label Studio's config has no such label.
    scores = list(Score.objects.filter(cycle_id=cycle.pk))
    assert len(scores) == 6
    for score in scores:
        dog, zebra = score.boxes
        assert {k: dog[k] for k in DOG} == pytest.approx(DOG) and zebra["label"] == "zebra"
        assert 0.2 <= dog["score"] <= 0.8 and score.uncertainty == pytest.approx(1 - dog["score"], abs=1e-5)
    selection_make(cycle=Cycle.objects.get(pk=cycle.pk))
    rows = list(SelectedItem.objects.filter(selection__cycle_id=cycle.pk).select_related("item"))
    assert len(rows) == 4 and all(si.boxes and si.boxes[0]["label"] == "dog" for si in rows)

    cycle_sync_to_labelstudio(cycle=Cycle.objects.select_related("project").get(pk=cycle.pk))
    tasks = ls_tasks(ls_pat_client, project)
    assert len(tasks) == 4
    for task in tasks:
        (pred,) = task["predictions"]
        (region,) = pred["result"]  # the zebra: not a label of the project's config
        assert region["type"] == "rectanglelabels" and region["value"]["rectanglelabels"] == ["dog"]
        assert (region["original_width"], region["original_height"]) == (40, 30)  # the item's own image size
        value = region["value"]
        assert (value["x"], value["y"], value["width"], value["height"]) == pytest.approx((25.0, 12.5, 50.0, 37.5))
        score = Score.objects.get(cycle_id=cycle.pk, item_id=task["data"]["alweb_item"])
        assert region["score"] == pytest.approx(score.boxes[0]["score"])
        assert pred["score"] == pytest.approx(convert.uncertainty_to_ls_score(score.uncertainty))

    # An annotator accepts the pre-annotation as it is: the pull reads it back as the item's boxes.
    for task in tasks[:2]:
        annotate(ls_pat_client, task["id"], task["predictions"][0]["result"])
    project_pull_annotations(project=project)
    accepted = Item.objects.filter(pk__in=[t["data"]["alweb_item"] for t in tasks[:2]])
    assert [item.label for item in accepted] == [[DOG], [DOG]]

    # Label Studio's "Retrieve predictions" asks the ML backend: the same regions, task by task.
    answer = ml_predict(project=project, tasks=tasks)
    assert len(answer["results"]) == len(tasks)
    for task, result in zip(tasks, answer["results"], strict=True):
        assert result["result"] == task["predictions"][0]["result"]
        assert result["model_version"] == task["predictions"][0]["model_version"] == "alweb-v1"
