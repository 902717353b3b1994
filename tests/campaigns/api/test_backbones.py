"""model_config.backbone through the project update endpoint: a usable network is accepted, every unusable one is a
400 naming the key and why, checked when the config is saved (not after a failed training)."""

from __future__ import annotations

import io
from typing import Any

import pytest
import torch
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from torch import nn

from campaigns.models import Project
from tests.campaigns.api.test_projects import detail, post_json

pytestmark = pytest.mark.django_db


class Trunk(nn.Module):
    """[N, C, H, W] -> [N, 8]: conv, average pool, flatten."""

    def __init__(self, channels: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 2, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.conv(x)), 1)


class NaNs(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(x, 1) * float("nan")


class NotATensor(nn.Module):
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"features": torch.flatten(x, 1)}


class Map(nn.Module):
    """A feature map, not a vector: [N, C, H*W]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(x, 2)


def stored(module: nn.Module, name: str) -> str:
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(module), buf)
    return str(default_storage.save(f"backbones/{name}.pt", ContentFile(buf.getvalue())))


def patch(client: Any, project: Any, config: dict[str, Any]) -> Any:
    return post_json(client, detail(project), {"model_config": config}, "patch")


def refused(client: Any, project: Any, config: dict[str, Any]) -> str:
    response = patch(client, project, config)
    assert response.status_code == 400, response.content
    body = response.json()
    assert list(body) == ["model_config"], body
    (message,) = body["model_config"]
    assert message.startswith(f"backbone {config['backbone']!r} "), message
    assert Project.objects.get(pk=project.pk).model_config == {}  # nothing stored
    return str(message)


def test_a_torchscript_backbone_is_accepted_with_its_preprocessing(as_owner: Any, project: Any) -> None:
    name = stored(Trunk(), "trunk")
    config = {"backbone": name, "image_size": 16, "channels": 1, "mean": [0.5], "std": [0.25]}
    response = patch(as_owner, project, config)
    assert response.status_code == 200, response.content
    assert Project.objects.get(pk=project.pk).model_config == config


def test_an_unusable_backbone_is_a_400_naming_it_and_why(as_owner: Any, project: Any) -> None:
    base = {"image_size": 16, "channels": 1}
    junk = str(default_storage.save("backbones/junk.pt", ContentFile(b"not a model at all")))
    assert "is not a TorchScript file" in refused(as_owner, project, {**base, "backbone": junk})
    # Built for RGB, configured for grey: the dummy batch of the configured shape fails.
    rgb = stored(Trunk(channels=3), "rgb")
    message = refused(as_owner, project, {**base, "backbone": rgb})
    assert "fails on a [2, 1, 16, 16] float batch" in message and "another input shape" in message
    assert "NaN" in refused(as_owner, project, {**base, "backbone": stored(NaNs(), "nans")})
    assert "returns dict, not a tensor" in refused(as_owner, project, {**base, "backbone": stored(NotATensor(), "d")})
    assert "returns shape [2, 1, 256]" in refused(as_owner, project, {**base, "backbone": stored(Map(), "map")})
    good = stored(Trunk(), "good")
    size = default_storage.size(good)
    with override_settings(ALWEB_MAX_MODEL_BYTES=size - 1):
        message = refused(as_owner, project, {**base, "backbone": good})
    assert f"is {size} bytes, over ALWEB_MAX_MODEL_BYTES ({size - 1} bytes)" in message
    # An MLflow URI whose model can change under the cached features.
    assert "fixed model version" in refused(as_owner, project, {**base, "backbone": "models:/trunk@champion"})
    # The same file, within the limit and configured for its input, is fine.
    assert patch(as_owner, project, {**base, "backbone": good}).status_code == 200


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        ({"mean": [0.5, 0.5]}, "mean must be a list of 1 numbers"),
        ({"std": [0]}, "std must be a list of 1 positive numbers"),
        ({"backbone_mode": "thawed"}, "backbone_mode must be one of frozen"),
        ({"backbone_mode": "finetune"}, "backbone_mode finetune needs a backbone"),
        ({"augment": "strong"}, "augment must be a preset (light, off, photos)"),
        ({"augment": {"crop": 0.9}}, "augment.crop must be a number from 0 to 0.3"),
        ({"augment": {"flip": "yes"}}, "augment.flip must be true or false"),
        ({"augment": {"rotate": 10}}, "augment has unknown key 'rotate'"),
    ],
)
def test_preprocessing_is_checked_by_key(as_owner: Any, project: Any, config: dict[str, Any], reason: str) -> None:
    response = patch(as_owner, project, {"channels": 1, **config})
    assert response.status_code == 400 and reason in response.json()["model_config"][0], response.json()


def test_an_uploaded_backbone_is_stored_by_content_and_usable_by_name(
    as_member: Any, as_outsider: Any, project: Any
) -> None:
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(Trunk()), buf)
    url = f"/api/projects/{project.pk}/backbones/"

    def upload(client: Any, data: bytes) -> Any:
        return client.post(url, {"file": SimpleUploadedFile("trunk.pt", data)}, format="multipart")

    response = upload(as_member, buf.getvalue())
    assert response.status_code == 201, response.content
    name = response.json()["backbone"]
    assert name.startswith(f"backbones/project-{project.pk}/") and name.endswith(".pt")
    with default_storage.open(name, "rb") as fh:
        assert fh.read() == buf.getvalue()
    assert upload(as_member, buf.getvalue()).json() == {"backbone": name}  # same content, same file
    assert patch(as_member, project, {"backbone": name, "image_size": 16, "channels": 1}).status_code == 200
    junk = upload(as_member, b"not a network")
    assert junk.status_code == 400 and "is not a TorchScript file" in junk.json()["file"][0], junk.content
    with override_settings(ALWEB_MAX_MODEL_BYTES=100):
        big = upload(as_member, buf.getvalue())
    assert big.status_code == 400 and "over ALWEB_MAX_MODEL_BYTES (100 bytes)" in big.json()["file"][0]
    assert upload(as_outsider, buf.getvalue()).status_code == 404


def test_features_endpoint_reports_and_requests(as_member: Any, project: Project, monkeypatch: Any) -> None:
    from campaigns.services import feature_fanout

    queued: list[dict[str, Any]] = []
    monkeypatch.setattr(feature_fanout.queue, "enqueue_on_commit", lambda name, **kw: queued.append(kw))
    url = f"/api/projects/{project.pk}/features/"
    project.task_type = "text_classification"
    project.save(update_fields=["task_type"])
    Item = project.items.model
    Item.objects.create(project=project, key="a", text="hello", split="pool")
    got = as_member.get(url)
    assert got.status_code == 200 and got.json() == {"key": "minilm-l6-v2", "items": 1, "ready": 0}
    asked = as_member.post(url)
    assert asked.status_code == 202 and asked.json()["queued"] is True
    assert queued == [{"project_id": project.pk}]
    project.task_type = "image_classification"
    project.save(update_fields=["task_type"])
    pixels = as_member.post(url)
    assert pixels.status_code == 200 and pixels.json() == {"key": None, "items": 1, "ready": 0, "queued": False}
