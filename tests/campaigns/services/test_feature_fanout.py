"""Item features computed after an import, one chunk of ids per task (issue 20): the plan covers only items
without a vector, a chunk computes only what is still missing (a redelivery computes nothing), a chunk planned
under another key does nothing, and projects whose inputs are pixels plan nothing."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from campaigns.models import Item, ItemEmbedding
from campaigns.services import feature_fanout as ff
from campaigns.services import features
from tests.factories import ItemFactory, ProjectFactory

pytestmark = pytest.mark.django_db


class CountingEncoder:
    """A stand-in for MiniLM (the real one runs in the worker test below): records every text it embeds."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def encode(self, texts: list[str], *, batch_size: int = 64) -> np.ndarray:
        self.seen += texts
        return np.ones((len(texts), 384), dtype=np.float32)


@pytest.fixture
def encoder(monkeypatch: Any) -> CountingEncoder:
    fake = CountingEncoder()
    monkeypatch.setattr(features, "text_encoder", lambda: fake)
    return fake


@pytest.fixture
def sent(monkeypatch: Any) -> list[tuple[str, list[dict[str, Any]]]]:
    calls: list[tuple[str, list[dict[str, Any]]]] = []
    monkeypatch.setattr(ff.queue, "enqueue_group_on_commit", lambda name, kw: calls.append((name, kw)))
    return calls


def text_project(n: int) -> Any:
    project = ProjectFactory(task_type="text_classification", labels=["a", "b"])
    for i in range(n):
        ItemFactory(project=project, key=f"t{i}", text=f"text number {i}")
    return project


def test_plan_covers_only_items_without_features_and_chunks_compute_once(
    settings: Any, encoder: CountingEncoder, sent: list[Any]
) -> None:
    settings.ALWEB_SCORING_CHUNK_IDS = 4
    project = text_project(10)
    items = list(Item.objects.filter(project=project).order_by("pk"))
    zeros = np.zeros(384, np.float32).tobytes()
    ItemEmbedding.objects.create(item=items[0], encoder=features.TEXT_ENCODER, vector=zeros)

    plan = ff.features_plan(project_id=project.pk)
    assert plan.key == features.TEXT_ENCODER and plan.items == 9
    ((name, calls),) = sent
    assert name == ff.queue.PROJECT_FEATURES_CHUNK and len(calls) == plan.chunks
    assert {c["chunk"] for c in calls} == {it.pk // 4 for it in items[1:]}

    for call in calls:
        ff.features_chunk(**call)
    assert sorted(encoder.seen) == sorted(it.text for it in items[1:])
    assert ff.features_status(project=project) == ff.FeaturesStatus(features.TEXT_ENCODER, 10, 10)
    for call in calls:  # redelivered: nothing left to compute
        assert ff.features_chunk(**call) == 0
    assert len(encoder.seen) == 9
    assert ff.features_plan(project_id=project.pk).chunks == 0


def test_a_chunk_planned_under_another_key_does_nothing(encoder: CountingEncoder) -> None:
    project = text_project(3)
    first = Item.objects.filter(project=project).order_by("pk").first()
    assert first is not None
    assert ff.features_chunk(project_id=project.pk, chunk=first.pk // 2048, chunk_ids=2048, key="bb:old") == 0
    assert encoder.seen == []


def test_pixel_projects_plan_nothing(sent: list[Any]) -> None:
    project = ProjectFactory(task_type="image_classification", labels=["a", "b"])
    ItemFactory(project=project, key="i0")
    assert ff.features_plan(project_id=project.pk) == ff.FeaturesPlan(None, 0, 0)
    assert not ff.features_request(project=project)
    assert ff.features_status(project=project) == ff.FeaturesStatus(None, 1, 0)
    assert sent == []
