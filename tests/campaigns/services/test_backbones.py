"""A user's own TorchScript backbone on an image project: frozen features cached per item, a head trained, scored and
registered per cycle."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from torch import nn

from campaigns.demo_data import DIGIT_LABELS, write_digits
from campaigns.models import Cycle, Item, ItemEmbedding, Score
from campaigns.services import backbones
from campaigns.services.cycles import cycle_cancel, cycle_create
from campaigns.services.items import items_import
from campaigns.services.pipeline import cycle_run_scoring, cycle_run_training
from campaigns.services.training import registry
from campaigns.states import CycleState
from tests.campaigns.services.test_training import label_some

pytestmark = [pytest.mark.django_db, pytest.mark.integration, pytest.mark.slow]


class TinyTrunk(nn.Module):
    """Conv features for 1x16x16 images: [N, 1, 16, 16] -> [N, 32]."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(torch.relu(self.conv(x))), 1)


def save_scripted(module: nn.Module, name: str = "backbones/trunk.pt") -> str:
    torch.manual_seed(0)
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(module), buf)
    return str(default_storage.save(name, ContentFile(buf.getvalue())))


def test_frozen_torchscript_backbone_cycle_caches_features_and_registers(
    make_project: Any, tmp_path: Path, mlflow_store: str, monkeypatch: Any
) -> None:
    name = save_scripted(TinyTrunk())
    config = {"image_size": 16, "channels": 1, "backbone": name, "epochs": 5, "min_steps": 20}
    project = make_project(
        task_type="image_classification",
        labels=DIGIT_LABELS,
        model_config=config,
        split_ratios={"train": 0.0, "valid": 0.2, "test": 0.2, "pool": 0.6},
    )
    items_import(project=project, path=write_digits(tmp_path / "digits", limit=150, size=16))
    label_some(project, 40)
    # A spy on the network's passes: the real features pass through, the images counted.
    seen: list[int] = []
    real = backbones.network_features

    def spy(module: Any, images: Any, **kw: Any) -> Any:
        seen.append(len(images))
        return real(module, images, **kw)

    monkeypatch.setattr(backbones, "network_features", spy)

    cycle = cycle_create(project=project, mc_iterations=6, budget=5)
    cycle_run_training(cycle_id=cycle.pk)
    cycle_run_scoring(cycle_id=cycle.pk)
    cycle = Cycle.objects.get(pk=cycle.pk)
    mv = cycle.model_version
    assert cycle.state == CycleState.SCORED and mv is not None
    assert mv.architecture == "TextHead"  # only the head is trained: the trunk is the user's
    params = mv.params
    digest = params["backbone_sha256"]
    with default_storage.open(name, "rb") as fh:
        import hashlib

        assert digest == hashlib.sha256(fh.read()).hexdigest()
    assert params["backbone_mode"] == "frozen" and params["input_size"] == 16
    assert params["normalise_mean"] == [0.449] and params["normalise_std"] == [0.226]  # grey ImageNet statistics
    run = registry().client.get_run(mv.mlflow_run_id)
    assert run.data.params["backbone_sha256"] == digest and run.data.params["normalise_std"] == "[0.226]"
    head = registry().load_torch(mv.model_uri)
    assert head.features[0].in_features == 32  # the trunk's feature width
    pool = Item.objects.filter(project=project, split="pool", label__isnull=True).count()
    assert Score.objects.filter(cycle=cycle).count() == pool
    # Each item went through the network once and is cached under one key.
    items = Item.objects.filter(project=project).count()
    assert sum(seen) == items
    rows = ItemEmbedding.objects.filter(item__project=project)
    assert rows.count() == items and len(set(rows.values_list("encoder", flat=True))) == 1
    vec = np.frombuffer(bytes(rows.first().vector), dtype=np.float32)  # type: ignore[union-attr]
    assert vec.shape == (32,) and np.isfinite(vec).all()

    # A second cycle trains and scores from the cache: the network never runs again.
    cycle_cancel(cycle=cycle)  # one open cycle per project
    label_some(project, 60)
    second = cycle_create(project=project, mc_iterations=6, budget=5)
    cycle_run_training(cycle_id=second.pk)
    cycle_run_scoring(cycle_id=second.pk)
    second = Cycle.objects.get(pk=second.pk)
    assert second.state == CycleState.SCORED and second.model_version not in (None, mv)
    assert sum(seen) == items and rows.count() == items

    # Other preprocessing means other features: a new cache key, not stale rows.
    project.model_config = {**config, "mean": [0.5], "std": [0.25]}
    project.save(update_fields=["model_config"])
    from campaigns.services.features import item_inputs

    item_inputs(project, list(Item.objects.filter(project=project)[:3]))
    assert sum(seen) == items + 3 and len(set(rows.values_list("encoder", flat=True))) == 2


def test_an_mlflow_pytorch_model_serves_as_a_backbone_by_a_fixed_uri(mlflow_store: str) -> None:
    import mlflow.pytorch

    from campaigns.services.model_config import model_config_problem

    torch.manual_seed(0)
    trunk = TinyTrunk().eval()
    with registry().active(), mlflow.start_run():
        info = mlflow.pytorch.log_model(
            trunk, name="trunk", registered_model_name="user-trunk", serialization_format="pickle"
        )
    config = {"image_size": 16, "channels": 1, "backbone": "models:/user-trunk/1"}
    assert model_config_problem(config) is None
    assert model_config_problem({**config, "backbone": info.model_uri}) is None  # MLflow 3's logged model id
    alias = model_config_problem({**config, "backbone": "models:/user-trunk@champion"})
    assert alias is not None and "fixed model version" in alias
    missing = model_config_problem({**config, "backbone": "models:/nobody/1"})
    assert missing is not None and "does not load as an MLflow pytorch model" in missing
    backbone = backbones.backbone_for(config, default_size=32)
    assert backbone is not None
    images = np.random.default_rng(0).random((3, 1, 16, 16), dtype=np.float32)
    with torch.inference_mode():
        expected = trunk(torch.as_tensor((images - 0.449) / 0.226)).numpy()
    np.testing.assert_allclose(backbones.backbone_compute(backbone, images), expected, rtol=1e-5, atol=1e-6)


class DropoutTrunk(TinyTrunk):
    """TinyTrunk with a dropout layer inside: fine-tuned, it is patched for MC sampling like the head."""

    def __init__(self) -> None:
        super().__init__()
        self.drop = nn.Dropout(0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(torch.flatten(self.pool(torch.relu(self.conv(x))), 1))  # TorchScript has no super()


def test_finetuned_torchscript_backbone_cycle_trains_registers_and_reloads(
    make_project: Any, tmp_path: Path, mlflow_store: str
) -> None:
    from campaigns.services.inference import model_score
    from campaigns.services.model_cache import model_cache_clear, model_cached
    from campaigns.services.model_config import model_config_problem
    from engine.finetune import FineTuneModel, ScriptTrunk

    name = save_scripted(DropoutTrunk(), "backbones/dropout-trunk.pt")
    config = {
        "image_size": 16,
        "channels": 1,
        "backbone": name,
        "backbone_mode": "finetune",
        "augment": {"crop": 0.1, "jitter": 0.2},
        "epochs": 2,
        "min_steps": 0,
    }
    assert model_config_problem(config) is None
    project = make_project(
        task_type="image_classification",
        labels=DIGIT_LABELS,
        model_config=config,
        split_ratios={"train": 0.0, "valid": 0.2, "test": 0.2, "pool": 0.6},
    )
    items_import(project=project, path=write_digits(tmp_path / "digits", limit=80, size=16))
    label_some(project, 20)
    cycle = cycle_create(project=project, mc_iterations=5, budget=5)
    cycle_run_training(cycle_id=cycle.pk)
    cycle_run_scoring(cycle_id=cycle.pk)
    cycle = Cycle.objects.get(pk=cycle.pk)
    mv = cycle.model_version
    assert cycle.state == CycleState.SCORED and mv is not None and mv.architecture == "FineTuneModel"
    pool = Item.objects.filter(project=project, split="pool", label__isnull=True)
    assert Score.objects.filter(cycle=cycle).count() == pool.count()
    assert not ItemEmbedding.objects.filter(item__project=project).exists()  # pixels, not cached features
    params = registry().client.get_run(mv.mlflow_run_id).data.params
    assert params["backbone_mode"] == "finetune" and params["backbone_sha256"] == mv.params["backbone_sha256"]
    assert params["normalise_mean"] == "[0.449]" and params["input_size"] == "16"
    assert params["augment_crop"] == "0.1" and params["augment_flip"] == "false"  # MLflow params are JSON text

    # A fresh worker: the version loads from MLflow without the user's class and scores with MC dropout, the
    # backbone's own dropout sampling too.
    model_cache_clear()
    model = model_cached(model_version=mv)
    assert isinstance(model, FineTuneModel) and isinstance(model.features[1], ScriptTrunk)
    from campaigns.services.features import item_inputs

    x = item_inputs(project, list(pool[:4]))
    assert x.shape == (4, 1, 16, 16)
    chunk = model_score(model=model, inputs=x, ids=[1, 2, 3, 4], iterations=6, heuristic="bald", seed=0)
    assert chunk.probs.shape == (4, 10) and np.isfinite(chunk.uncertainty).all() and chunk.uncertainty.max() > 0
    again = registry().load_torch(mv.model_uri)
    with torch.inference_mode():
        assert torch.equal(again(torch.as_tensor(x)), model(torch.as_tensor(x)))

    # A state_dict or a torch.export program cannot be fine-tuned: refused when saved, naming the key.
    exported = io.BytesIO()
    torch.export.save(torch.export.export(TinyTrunk().eval(), (torch.rand(2, 1, 16, 16),)), exported)
    pt2 = str(default_storage.save("backbones/trunk.pt2", ContentFile(exported.getvalue())))
    problem = model_config_problem({**config, "backbone": pt2})
    assert problem is not None and problem.startswith("backbone") and "cannot be fine-tuned" in problem
    state = io.BytesIO()
    torch.save({"features.0.weight": torch.zeros(1)}, state)
    sd = str(default_storage.save("backbones/weights.pt", ContentFile(state.getvalue())))
    problem = model_config_problem({**config, "backbone": sd})
    assert problem is not None and "backbone_mode finetune needs a TorchScript file" in problem
