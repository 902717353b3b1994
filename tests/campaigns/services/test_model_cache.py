"""The per-process model cache: one load per model version, bounded, evicting the least recently used."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from campaigns.services import model_cache
from campaigns.services.model_cache import (
    model_cache_clear,
    model_cache_drop,
    model_cache_keys,
    model_cached,
)
from models_registry.models import ModelVersion


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch, settings: Any) -> list[int]:
    """MLflow faked at its boundary (the real load is tested below): each load returns a new object, recorded."""
    settings.ALWEB_MODEL_CACHE_SIZE = 2
    model_cache_clear()
    seen: list[int] = []

    def load(*, model_version: ModelVersion) -> object:
        seen.append(model_version.pk)
        return object()

    monkeypatch.setattr(model_cache, "model_load", load)
    yield seen
    model_cache_clear()


def version(pk: int, uri: str | None = None) -> ModelVersion:
    return ModelVersion(pk=pk, model_uri=uri or f"models:/p/{pk}")


def test_a_version_is_loaded_once_and_reused(loads: list[int]) -> None:
    first = model_cached(model_version=version(1))
    assert model_cached(model_version=version(1)) is first
    assert loads == [1]


def test_the_least_recently_used_version_is_evicted_past_the_bound(loads: list[int]) -> None:
    a = model_cached(model_version=version(1))
    model_cached(model_version=version(2))
    assert model_cached(model_version=version(1)) is a  # 1 used again: 2 is now the least recent
    model_cached(model_version=version(3))  # over the bound of 2: evicts 2
    assert sorted(k[1] for k in model_cache_keys()) == [1, 3]
    assert model_cached(model_version=version(1)) is a
    model_cached(model_version=version(2))  # loaded again
    assert loads == [1, 2, 3, 2]


def test_new_weights_or_another_store_miss_and_a_dropped_version_reloads(loads: list[int], settings: Any) -> None:
    old = model_cached(model_version=version(1, "runs:/a/model"))
    assert model_cached(model_version=version(1, "runs:/b/model")) is not old  # re-pointed at other weights
    settings.MLFLOW_TRACKING_URI = "sqlite:////tmp/another-store.db"
    model_cached(model_version=version(1, "runs:/b/model"))
    assert loads == [1, 1, 1]
    assert model_cache_drop(model_version_id=1) == 2  # the bound of 2 kept the two latest
    model_cached(model_version=version(1, "runs:/b/model"))
    assert loads == [1, 1, 1, 1]


def test_a_changed_bound_starts_afresh(loads: list[int], settings: Any) -> None:
    model_cached(model_version=version(1))
    settings.ALWEB_MODEL_CACHE_SIZE = 1
    model_cached(model_version=version(1))
    model_cached(model_version=version(2))
    assert len(model_cache_keys()) == 1 and loads == [1, 1, 2]


@pytest.mark.django_db
@pytest.mark.integration
def test_a_real_mlflow_model_is_loaded_once(make_project: Any, tmp_path: Path, mlflow_store: str) -> None:
    from campaigns.services.training import model_register_external
    from tests.models_registry.test_external import BrightnessClassifier, log_pyfunc

    model_cache_clear()
    project = make_project(task_type="image_classification", labels=["light", "dark"])
    mv = model_register_external(
        project=project, model_uri=log_pyfunc(BrightnessClassifier(), tmp_path, mlflow_store), kind="pyfunc-classifier"
    )
    model = model_cached(model_version=mv)
    assert model_cached(model_version=ModelVersion.objects.get(pk=mv.pk)) is model  # a fresh row: same key
    assert type(model).__name__ == "PyFuncClassifier"
    model_cache_clear()
