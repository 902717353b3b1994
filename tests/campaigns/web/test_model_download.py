"""The champion's "Download" link on the project page: members get the MLflow model folder zipped, others a 404."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest

from campaigns.services.training import model_register_external
from tests.models_registry.test_external import BrightnessClassifier, log_pyfunc

pytestmark = [pytest.mark.django_db, pytest.mark.integration]


def test_members_download_the_champion_from_the_project_page(
    project: Any, member: Any, client_for: Any, as_outsider: Any, anon: Any, mlflow_store: str, tmp_path: Path
) -> None:
    project.task_type, project.labels = "image_classification", ["light", "dark"]
    project.model_config = {"image_size": 8, "channels": 1}
    project.save()
    as_member = client_for(member)
    url = f"/projects/{project.pk}/model/download/"

    # No champion yet: no link, and the URL says why on the project page.
    page = as_member.get(f"/projects/{project.pk}/")
    assert page.status_code == 200 and 'id="model-download"' not in page.content.decode()
    refused = as_member.get(url, follow=True)
    assert "no champion model yet" in refused.content.decode()

    mv = model_register_external(
        project=project, model_uri=log_pyfunc(BrightnessClassifier(), tmp_path, mlflow_store), kind="pyfunc-classifier"
    )
    page = as_member.get(f"/projects/{project.pk}/").content.decode()
    assert f'href="{url}" id="model-download"' in page
    assert as_outsider.get(url).status_code == 404
    assert anon.get(url).status_code == 302  # to the login page

    response = as_member.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    root = f"{mv.registered_name}-v{mv.registered_version}"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert f"{root}/MLmodel" in archive.namelist()
    archive.extractall(tmp_path / "unzipped")
    model = mlflow.pyfunc.load_model(str(tmp_path / "unzipped" / root))
    assert np.allclose(model.predict(np.full((1, 1, 8, 8), 0.75, dtype=np.float32)), [[0.75, 0.25]])
