"""Training and scoring a cycle end to end in-process: digits images and MiniLM text, the real MLflow store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.db.models import Q

from campaigns.demo_data import DIGIT_LABELS, TOPIC_LABELS, write_digits, write_topics
from campaigns.models import LABELED_CHUNK, Cycle, Item, Score, ScoringChunk
from campaigns.services import pipeline, scoring
from campaigns.services.cycles import cycle_create
from campaigns.services.embeddings import embeddings_for, embeddings_labeled, probabilities_for
from campaigns.services.items import items_import
from campaigns.services.pipeline import cycle_run_scoring, cycle_run_training
from campaigns.services.training import registry
from campaigns.states import CycleState
from models_registry.models import ModelVersion

pytestmark = [pytest.mark.django_db, pytest.mark.integration, pytest.mark.slow]


def label_some(project: Any, n: int) -> None:
    """Stand-in for annotators: give n pool items, and the whole evaluation sample (validation and test), their
    ground truth as label. Evaluation needs human labels: ground truth alone never counts."""
    pool = list(Item.objects.filter(project=project, split="pool").order_by("pk").values_list("pk", flat=True)[:n])
    for item in Item.objects.filter(Q(pk__in=pool) | Q(project=project, split__in=["valid", "test"])):
        item.label, item.label_source = item.ground_truth, "annotation"
        item.save(update_fields=["label", "label_source"])


def test_image_cycle_trains_registers_scores_and_resumes(
    make_project: Any, tmp_path: Path, mlflow_store: str, monkeypatch: Any, settings: Any
) -> None:
    project = make_project(
        task_type="image_classification",
        labels=DIGIT_LABELS,
        model_config={"image_size": 16, "channels": 1, "epochs": 15},
        split_ratios={"train": 0.0, "valid": 0.15, "test": 0.15, "pool": 0.7},
    )
    items_import(project=project, path=write_digits(tmp_path / "digits", limit=600, size=16))
    label_some(project, 200)
    cycle = cycle_create(project=project, mc_iterations=8, budget=20)

    cycle_run_training(cycle_id=cycle.pk)
    cycle.refresh_from_db()
    mv = cycle.model_version
    assert cycle.state == CycleState.SCORING and mv is not None
    assert mv.label_count == 200 and mv.is_champion and mv.metrics["evaluated_on"] == "test"
    # Early stopping or not, the training bar ends full, at the epochs actually run (issue 16 item 6).
    ran = mv.params["epochs_run"]
    # The config it was trained with, whole: its predictions keep building inputs from it after the config changes.
    assert mv.params["model_config"] == {"image_size": 16, "channels": 1, "epochs": 15}
    assert (cycle.progress["stage"], cycle.progress["done"], cycle.progress["total"]) == ("training", ran, ran)
    assert mv.metrics["accuracy"] > 0.7, mv.metrics
    reloaded = registry().load_torch(f"models:/{mv.registered_name}@champion")
    assert type(reloaded).__name__ == "ImageCNN"

    # Score in small chunks; the worker dies in the third pool chunk, between its two writes (embeddings, then
    # scores): that chunk must not count as written, and the next run scores only the chunks not written.
    settings.ALWEB_SCORING_CHUNK_IDS = 64
    real_save = scoring.embeddings_save
    seen: list[int] = []

    def die_in_third(**kw: Any) -> None:
        seen.append(kw["chunk"])
        if len(seen) == 3:
            raise SystemExit("worker killed")
        real_save(**kw)

    monkeypatch.setattr(scoring, "embeddings_save", die_in_third)
    with pytest.raises(SystemExit):
        cycle_run_scoring(cycle_id=cycle.pk)
    monkeypatch.undo()
    crashed = seen[2]
    assert Cycle.objects.get(pk=cycle.pk).state == CycleState.SCORING
    assert not Score.objects.filter(cycle=cycle, chunk=crashed).exists()
    written = set(ScoringChunk.objects.filter(cycle=cycle, written_at__isnull=False).values_list("chunk", flat=True))
    assert written == {LABELED_CHUNK, *seen[:2]}
    calls: list[int] = []
    real = pipeline.score_chunk
    monkeypatch.setattr(pipeline, "score_chunk", lambda **kw: calls.append(kw["chunk"]) or real(**kw))
    cycle_run_scoring(cycle_id=cycle.pk)
    monkeypatch.undo()
    assert calls[0] == crashed and not set(calls) & written
    cycle.refresh_from_db()
    pool = Item.objects.filter(project=project, split="pool", label__isnull=True).count()
    assert cycle.state == CycleState.SCORED and Score.objects.filter(cycle=cycle).count() == pool
    assert cycle.score_stats["count"] == pool and cycle.progress["done"] == pool
    assert len(set(Score.objects.filter(cycle=cycle).values_list("chunk", flat=True))) > 3
    rows = list(Score.objects.filter(cycle=cycle).values_list("item_id", "chunk"))
    assert len(rows) == pool
    emb = embeddings_for(cycle_id=cycle.pk, item_ids=[i for i, _ in rows], chunk_of=dict(rows))
    assert emb is not None and emb.shape[0] == pool
    probs = probabilities_for(cycle_id=cycle.pk, item_ids=[i for i, _ in rows], chunk_of=dict(rows))
    assert probs is not None and probs.shape == (pool, len(DIGIT_LABELS))  # BADGE's p beside its h
    labeled = embeddings_labeled(cycle_id=cycle.pk)  # what Coreset's k-center starts from
    assert labeled is not None and labeled.shape == (200, emb.shape[1])

    # A redelivered training task does not train again.
    cycle_run_training(cycle_id=cycle.pk)
    assert ModelVersion.objects.filter(project=project).count() == 1


def test_text_cycle_uses_cached_minilm_embeddings(make_project: Any, tmp_path: Path, mlflow_store: str) -> None:
    project = make_project(
        task_type="text_classification",
        labels=TOPIC_LABELS,
        model_config={"epochs": 20},
        split_ratios={"train": 0.0, "valid": 0.2, "test": 0.2, "pool": 0.6},
    )
    items_import(project=project, path=write_topics(tmp_path / "topics", n=240))
    label_some(project, 60)
    cycle = cycle_create(project=project, mc_iterations=10)
    cycle_run_training(cycle_id=cycle.pk)
    cycle_run_scoring(cycle_id=cycle.pk)
    cycle = Cycle.objects.get(pk=cycle.pk)
    assert cycle.model_version is not None and cycle.model_version.metrics["accuracy"] > 0.8
    scores = Score.objects.filter(cycle=cycle)
    assert scores.count() == Item.objects.filter(project=project, split="pool", label__isnull=True).count()
    assert set(scores.values_list("predicted_label", flat=True)) <= set(TOPIC_LABELS)
    # Every item was embedded once; a second cycle reuses the cache.
    from campaigns.models import ItemEmbedding

    assert ItemEmbedding.objects.filter(item__project=project).count() == Item.objects.filter(project=project).count()


@pytest.mark.django_db
def test_initial_weights_depend_on_the_cycle_seed_only(make_project: Any) -> None:
    """Whatever the worker drew before, a cycle's network starts from the same weights (a retrained cycle, or a
    simulation rerun, gives the same model); another seed gives other weights."""
    import torch

    from campaigns.services.training import build_model

    project = make_project(task_type="image_classification", labels=["a", "b"], model_config={"image_size": 16})
    first = build_model(project, seed=7).state_dict()
    torch.rand(1000)  # the process's global RNG moves on, as it does between tasks in a worker
    again = build_model(project, seed=7).state_dict()
    other = build_model(project, seed=8).state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)
    state = torch.random.get_rng_state()
    build_model(project, seed=7)
    assert torch.equal(state, torch.random.get_rng_state())  # the caller's RNG is left as it was


@pytest.mark.django_db
def test_image_network_starts_from_a_users_backbone_in_storage(make_project: Any) -> None:
    import io

    import torch
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from campaigns.services.training import TrainingError, build_model
    from engine.architectures import ImageCNN

    donor = ImageCNN(5, image_size=16, channels=1)  # trained elsewhere, on another label set
    buf = io.BytesIO()
    torch.save(donor.state_dict(), buf)
    name = default_storage.save("backbones/donor.pt", ContentFile(buf.getvalue()))
    config = {"image_size": 16, "channels": 1, "backbone": name, "freeze_backbone": True}
    project = make_project(task_type="image_classification", labels=["a", "b"], model_config=config)
    model = build_model(project, seed=3)
    own, theirs = model.features.state_dict(), donor.features.state_dict()
    assert all(torch.equal(own[k], theirs[k]) for k in theirs)
    assert not any(p.requires_grad for p in model.features.parameters())
    assert model.head[-1].out_features == 2  # the head is the project's own

    project.model_config = {**config, "image_size": 32}  # a trunk for other input sizes still fits: convs only
    build_model(project, seed=3)
    project.model_config = {**config, "channels": 3}
    with pytest.raises(TrainingError, match=r"model_config.backbone: .* does not fit this project's network: .*shape"):
        build_model(project, seed=3)
    project.model_config = {**config, "backbone": "backbones/missing.pt"}
    with pytest.raises(TrainingError, match=r"'backbones/missing\.pt' is not in media storage"):
        build_model(project, seed=3)


def test_a_closing_cycle_trains_on_every_label_and_the_next_cycle_starts_from_it(
    make_project: Any, tmp_path: Path, mlflow_store: str
) -> None:
    """Issue 16 item 8: the last labels had no point on the curve until another cycle started."""
    from campaigns.selectors import project_learning_curve
    from campaigns.services.pipeline import cycle_run_closing_training
    from campaigns.states import CycleState as S

    project = make_project(
        task_type="text_classification",
        labels=TOPIC_LABELS,
        model_config={"epochs": 5},
        split_ratios={"train": 0.0, "valid": 0.2, "test": 0.2, "pool": 0.6},
    )
    items_import(project=project, path=write_topics(tmp_path / "topics", n=160))
    label_some(project, 20)
    first = cycle_create(project=project, mc_iterations=4)
    cycle_run_training(cycle_id=first.pk, chain=False)
    Cycle.objects.filter(pk=first.pk).update(state=S.CLOSED)  # scored, selected, labeled: its answers came in
    label_some(project, 40)
    closing = cycle_run_closing_training(cycle_id=first.pk)
    assert closing is not None and closing.params["closing"] and closing.label_count == 40
    assert cycle_run_closing_training(cycle_id=first.pk) == closing  # redelivered: the same version
    curve = project_learning_curve(project=project)
    assert [(p["cycle"], p["after_close"], p["labels"]) for p in curve] == [(1, False, 20), (1, True, 40)]
    # Nothing changed since: the next cycle starts from the closing model instead of training the same again.
    second = cycle_create(project=project, mc_iterations=4)
    cycle_run_training(cycle_id=second.pk, chain=False)
    assert Cycle.objects.get(pk=second.pk).model_version_id == closing.pk
    assert ModelVersion.objects.filter(project=project).count() == 2
