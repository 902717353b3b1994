"""MLflow adapter round trip on a temp sqlite store: log -> register -> alias -> load -> same predictions."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.architectures import TextHead
from engine.training import TrainConfig, train_classifier
from models_registry.registry import CHAMPION, ModelRegistry

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(f"sqlite:///{tmp_path}/mlflow.db", artifact_root=tmp_path / "artifacts")


def trained_head(seed: int) -> tuple[torch.nn.Module, list[dict[str, float]], dict[str, float]]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(120, 16, generator=gen)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 1).long()
    torch.manual_seed(seed)
    result = train_classifier(
        TextHead(3, in_dim=16, hidden=8),
        (x[:80], y[:80]),
        (x[80:100], y[80:100]),
        test=(x[100:], y[100:]),
        num_classes=3,
        config=TrainConfig(epochs=3, seed=seed),
    )
    history = [{"epoch": h.epoch, **h.metrics()} for h in result.history]
    return result.model, history, result.final_metrics(["neg", "pos", "far"])


def test_round_trip_and_champion_policy(registry: ModelRegistry, tmp_path: Path) -> None:
    model, history, metrics = trained_head(0)
    example = np.random.default_rng(0).normal(size=(4, 16)).astype(np.float32)
    params = {"labels": ["neg", "pos", "far"], "heuristic": "bald", "T": 20, "epochs": 3, "seed": 0}
    v1 = registry.log_training_run(
        experiment="project-1",
        registered_name="project-1",
        model=model,
        input_example=example,
        params=params,
        history=history,
        metrics={**metrics, "best_val_macro_f1": 0.70},
    )
    assert v1.version == 1 and v1.champion and v1.run_id  # the first version of a project is its champion
    assert v1.model_uri == "models:/project-1/1" and v1.champion_uri == "models:/project-1@champion"

    run = registry.client.get_run(v1.run_id)
    assert run.data.params["heuristic"] == "bald" and run.data.params["labels"] == '["neg", "pos", "far"]'
    assert run.data.params["T"] == "20"
    steps = registry.client.get_metric_history(v1.run_id, "train_loss")
    assert [m.step for m in steps] == [1, 2, 3]
    assert "test_f1_far" in run.data.metrics
    experiment = registry.client.get_experiment_by_name("project-1")
    assert experiment is not None and experiment.artifact_location.startswith((tmp_path / "artifacts").as_uri())

    loaded = registry.load_champion("project-1")
    x = torch.from_numpy(example)
    with torch.no_grad():
        np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), rtol=1e-6, atol=1e-6)
    # The loaded model keeps its dropout modules: MC dropout works on it.
    assert any(isinstance(m, torch.nn.Dropout) for m in loaded.modules())

    worse, _, worse_metrics = trained_head(1)
    v2 = registry.log_training_run(
        experiment="project-1",
        registered_name="project-1",
        model=worse,
        input_example=example,
        params=params,
        metrics={**worse_metrics, "best_val_macro_f1": 0.60},
    )
    assert v2.version == 2 and not v2.champion
    assert registry.champion("project-1").version == 1  # type: ignore[union-attr]

    better, _, better_metrics = trained_head(2)
    v3 = registry.log_training_run(
        experiment="project-1",
        registered_name="project-1",
        model=better,
        input_example=example,
        params=params,
        metrics={**better_metrics, "best_val_macro_f1": 0.80},
    )
    assert v3.champion and int(registry.client.get_model_version_by_alias("project-1", CHAMPION).version) == 3
    with torch.no_grad():
        np.testing.assert_allclose(registry.load_champion("project-1")(x).numpy(), better(x).numpy(), atol=1e-6)

    # "always" moves the alias even to a worse version; "never" leaves it alone.
    assert registry.promote("project-1", 2, metric="best_val_macro_f1", value=0.6, policy="always")
    assert not registry.promote("project-1", 1, metric="best_val_macro_f1", value=0.7, policy="never")
    assert registry.champion("project-1").version == 2  # type: ignore[union-attr]
    # Tie keeps the incumbent.
    assert not registry.promote("project-1", 3, metric="best_val_macro_f1", value=0.6, policy="if_better")
    with pytest.raises(ValueError):
        registry.promote("project-1", 3, metric="m", value=1.0, policy="sometimes")  # type: ignore[arg-type]
    assert registry.ensure_experiment("project-1") == run.info.experiment_id  # idempotent

    # A throwaway project's models and runs are discarded, once; another project's stay.
    other = registry.log_training_run(
        experiment="project-2", registered_name="project-2", model=model, input_example=example, params=params
    )
    assert registry.discard(registered_name="project-1", experiment="project-1")
    assert not registry.discard(registered_name="project-1", experiment="project-1")
    assert [m.name for m in registry.client.search_registered_models()] == ["project-2"]
    assert registry.client.get_experiment_by_name("project-1").lifecycle_stage == "deleted"  # type: ignore[union-attr]
    assert registry.champion("project-2").version == other.version  # type: ignore[union-attr]


def test_a_tracking_uri_is_required() -> None:
    with pytest.raises(ValueError):
        ModelRegistry("")
