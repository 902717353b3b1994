"""Issue 18, finding 6 (bounded values), replayed as Bob against his own project and Alice's files: the requests
of the probe, asserting the fix. The other findings: test_findings.py and test_findings_auth.py."""

from __future__ import annotations

import io
from typing import Any

import pytest
import torch
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from campaigns.models import Item, Project
from campaigns.services.training import TrainingError, build_model
from tests.campaigns.web.test_projects import VALID
from tests.security.conftest import api_client, send

pytestmark = pytest.mark.django_db

URL = "/api/projects/"
IMAGES = {"name": "pets", "task_type": "image_classification", "labels": ["cat", "dog"]}


@pytest.fixture
def bobs_project(bob: Any) -> str:
    created = send(api_client(bob), "post", URL, IMAGES)
    assert created.status_code == 201
    return f"{URL}{created.json()['id']}/"


def test_f6_unbounded_model_config_values_are_a_400_naming_the_key(bob: Any, bobs_project: str) -> None:
    bobs = api_client(bob)
    # The probe's body, as sent: every value refused, nothing stored.
    response = send(bobs, "patch", bobs_project, {"model_config": {"image_size": 100000, "epochs": 1e9}})
    assert response.status_code == 400 and "image_size" in response.json()["model_config"][0]
    for key, value in [
        ("image_size", 100000),
        ("image_size", 4),
        ("epochs", 1e9),
        ("epochs", 10**9),
        ("min_steps", 10**12),
        ("dropout", 7),
        ("dropout", -0.1),
        ("channels", 2),
        ("channels", True),
        ("embedding_dim", 10**6),
        ("monitor", "val_recall"),
        ("freeze_backbone", "yes"),
        ("champion_policy", "best"),
        ("epoch", 5),  # a typo: not stored silently as if it were a setting
        ("__class__", {}),
    ]:
        response = send(bobs, "patch", bobs_project, {"model_config": {key: value}})
        assert response.status_code == 400, (key, value)
        assert key in response.json()["model_config"][0], (key, value, response.json())
    assert Project.objects.get(owner=bob).model_config == {}
    # The bounds leave every real setting possible.
    good = {"image_size": 512, "channels": 1, "epochs": 1000, "min_steps": 0, "dropout": 0.9, "monitor": "val_loss"}
    response = send(bobs, "patch", bobs_project, {"model_config": good})
    assert response.status_code == 200 and response.json()["model_config"] == good


def test_f6_a_backbone_resolves_only_inside_media_storage(bob: Any, alice: Any, bobs_project: str) -> None:
    bobs = api_client(bob)
    alices_image = default_storage.save("items/alice/secret.png", ContentFile(b"\x89PNG alice's"))
    for name in (
        "../../alweb.sqlite3",
        "/etc/passwd",
        "backbones/../../alweb.sqlite3",
        "backbones\\..\\..\\alweb.sqlite3",
        "C:/backbones/x.pt",
        "backbones//x.pt",
        alices_image,  # another project's media, which exists: not a backbone
        "backbones/missing.pt",
        7,
    ):
        response = send(bobs, "patch", bobs_project, {"model_config": {"backbone": name}})
        assert response.status_code == 400, name
        assert "backbone" in response.json()["model_config"][0], name
    # A real file (a state_dict for alweb's CNN): since issue 19 the content is checked too, not only the path.
    weights = io.BytesIO()
    torch.save({"features.0.weight": torch.zeros(1)}, weights)
    mine = default_storage.save("backbones/bobs.pt", ContentFile(weights.getvalue()))
    response = send(bobs, "patch", bobs_project, {"model_config": {"backbone": mine}})
    assert response.status_code == 200 and response.json()["model_config"] == {"backbone": mine}


def test_f6_the_dashboard_form_refuses_the_same_values(bob: Any) -> None:
    browser = Client()
    browser.force_login(bob)
    form = {**VALID, "ls_url": "", "ls_api_key": "", "model_config": '{"image_size": 100000}'}
    response = browser.post(reverse("dashboard:project-create"), form)
    assert response.status_code == 422
    assert "image_size must be an integer from 8 to 512" in response.content.decode()
    assert not Project.objects.filter(owner=bob).exists()


def test_f6_a_config_stored_before_the_bounds_fails_training_with_a_reason(bob: Any, bobs_project: str) -> None:
    project = Project.objects.get(owner=bob)
    Project.objects.filter(pk=project.pk).update(model_config={"image_size": 100000, "backbone": "../../x"})
    with pytest.raises(TrainingError, match="model_config: image_size must be an integer from 8 to 512"):
        build_model(Project.objects.get(pk=project.pk))


def test_f6_an_upload_over_the_limit_is_a_413_naming_it_on_the_api_and_the_dashboard(
    bob: Any, bobs_project: str, settings: Any
) -> None:
    from django.conf import settings as defaults

    assert defaults.ALWEB_MAX_UPLOAD_BYTES == 1024**3  # the default limit: 1 GiB
    settings.ALWEB_MAX_UPLOAD_BYTES = 1024**2
    rows = "key,text\n" + "".join(f"k{i},{'x' * 100}\n" for i in range(12_000))  # 1.2 MB of CSV
    project = Project.objects.get(owner=bob)
    Project.objects.filter(pk=project.pk).update(task_type="text_classification")
    upload = SimpleUploadedFile("items.csv", rows.encode(), content_type="text/csv")
    response = api_client(bob).post(f"{bobs_project}items/import/", {"file": upload}, format="multipart")
    assert response.status_code == 413
    assert "1.0 MiB" in response.json()["detail"] and "ALWEB_MAX_UPLOAD_BYTES" in response.json()["detail"]
    assert response.json()["limit_bytes"] == 1024**2
    browser = Client()
    browser.force_login(bob)
    upload = SimpleUploadedFile("items.csv", rows.encode(), content_type="text/csv")
    response = browser.post(reverse("dashboard:project-import", args=[project.pk]), {"file": upload})
    assert response.status_code == 413
    assert "over the limit of 1.0 MiB" in response.content.decode()
    assert not Item.objects.filter(project=project).exists()
    # Under the limit, the same import goes through.
    small = SimpleUploadedFile("items.csv", rows[:50_000].rsplit("\n", 1)[0].encode() + b"\n", "text/csv")
    response = api_client(bob).post(f"{bobs_project}items/import/", {"file": small}, format="multipart")
    assert response.status_code == 200, response.content
