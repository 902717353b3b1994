"""model_config.encoder / finetune / mc_layers through the project update endpoint: a usable folder is accepted,
an unusable one is a 400 naming the key and why, and nothing is stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from campaigns.models import Project
from tests.campaigns.api.test_backbones import patch
from tests.campaigns.services.test_text_encoders import store_folder
from tests.engine.test_text_finetune import tiny_bert_folder

pytestmark = pytest.mark.django_db


def test_an_encoder_folder_without_tokenizer_or_weights_is_a_400(as_owner: Any, project: Any, tmp_path: Path) -> None:
    folder = tiny_bert_folder(tmp_path / "tiny")
    good = store_folder(folder, "encoders/tiny")
    for name, reason in [
        (store_folder(folder, "encoders/no-tokenizer", skip=("vocab.txt", "tokenizer.json")), "has no tokenizer"),
        (store_folder(folder, "encoders/no-weights", skip=("model.safetensors",)), "has no weights"),
    ]:
        response = patch(as_owner, project, {"encoder": name, "finetune": True})
        assert response.status_code == 400, response.content
        (message,) = response.json()["model_config"]
        assert message.startswith(f"encoder {name!r} ") and reason in message, message
        assert Project.objects.get(pk=project.pk).model_config == {}
    response = patch(as_owner, project, {"encoder": good, "finetune": True, "mc_layers": 3})
    assert response.status_code == 400 and "has 2 layers" in response.json()["model_config"][0]
    config = {"encoder": good, "finetune": True, "mc_layers": 1}
    response = patch(as_owner, project, config)
    assert response.status_code == 200, response.content
    assert Project.objects.get(pk=project.pk).model_config == config
