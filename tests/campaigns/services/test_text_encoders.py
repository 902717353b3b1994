"""A text project's own encoder folder and fine-tuning (model_config.encoder / finetune / mc_layers): a tiny BERT
built in the test, stored in media storage, trained per cycle, registered in a real MLflow store, reloaded by a
fresh worker's cache and scored with MC dropout confined to its top layer."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from campaigns.demo_data import TOPIC_LABELS, write_topics
from campaigns.models import Cycle, Item, ItemEmbedding, Score
from campaigns.services.cycles import cycle_create
from campaigns.services.items import items_import
from campaigns.services.model_config import model_config_problem
from campaigns.services.pipeline import cycle_run_scoring, cycle_run_training
from campaigns.services.training import registry
from campaigns.states import CycleState
from tests.campaigns.services.test_training import label_some
from tests.engine.test_text_finetune import tiny_bert_folder

pytestmark = [pytest.mark.django_db, pytest.mark.integration, pytest.mark.slow]


def store_folder(folder: Path, name: str, *, skip: tuple[str, ...] = ()) -> str:
    for path in folder.iterdir():
        if path.is_file() and path.name not in skip:
            default_storage.save(f"{name}/{path.name}", ContentFile(path.read_bytes()))
    return name


def topics(tmp_path: Path, n: int) -> tuple[Path, list[str]]:
    path = write_topics(tmp_path / "topics", n=n)
    with path.open(encoding="utf-8") as fh:
        words = {w for row in csv.DictReader(fh) for w in re.findall(r"\w+", row["text"].lower())}
    return path, sorted(words)


def test_an_encoder_folder_is_checked_when_the_config_is_saved(tmp_path: Path) -> None:
    good = store_folder(tiny_bert_folder(tmp_path / "tiny"), "encoders/tiny")
    assert model_config_problem({"encoder": good}) is None
    assert model_config_problem({"encoder": good, "finetune": True, "mc_layers": 2}) is None
    cases = {
        "encoders/none": "is not a folder in media storage",
        store_folder(tmp_path / "tiny", "encoders/no-tokenizer", skip=("vocab.txt", "tokenizer.json")): (
            "has no tokenizer"
        ),
        store_folder(tmp_path / "tiny", "encoders/no-weights", skip=("model.safetensors",)): "has no weights",
        store_folder(tmp_path / "tiny", "encoders/no-config", skip=("config.json",)): "has no config.json",
    }
    for name, reason in cases.items():
        problem = model_config_problem({"encoder": name})
        assert problem is not None and problem.startswith(f"encoder {name!r} ") and reason in problem, problem
    broken = store_folder(tmp_path / "tiny", "encoders/broken", skip=("model.safetensors",))
    default_storage.save(f"{broken}/model.safetensors", ContentFile(b"not weights"))
    problem = model_config_problem({"encoder": broken})
    assert problem is not None and "does not load" in problem
    deep = model_config_problem({"encoder": good, "finetune": True, "mc_layers": 2.5})
    assert deep is not None and "has 2 layers" in deep
    assert model_config_problem({"encoder": good, "finetune": True, "mc_layers": 0.5}) is None
    for config, reason in [
        ({"encoder": "../etc"}, "is not such a name"),
        ({"encoder": "backbones/x"}, "is not such a name"),
        ({"mc_layers": 1}, "mc_layers needs finetune: true"),
        ({"finetune": "yes"}, "finetune must be true or false"),
        ({"finetune": True, "mc_layers": 0}, "mc_layers must be a number from 0.5"),
        ({"finetune": True, "mc_layers": 1.25}, "in steps of 0.5"),
        ({"finetune": True, "mc_layers": True}, "mc_layers must be a number"),
    ]:
        problem = model_config_problem(config, check_storage=False)
        assert problem is not None and reason in problem, (config, problem)


def test_frozen_embeddings_are_cached_under_the_encoders_content(make_project: Any, tmp_path: Path) -> None:
    from campaigns.services.features import item_inputs, raw_features

    path, words = topics(tmp_path, 40)
    name = store_folder(tiny_bert_folder(tmp_path / "tiny", words=words), "encoders/tiny")
    project = make_project(task_type="text_classification", labels=TOPIC_LABELS, model_config={"encoder": name})
    items_import(project=project, path=path)
    items = list(Item.objects.filter(project=project).order_by("pk")[:5])
    x = item_inputs(project, items)
    assert x.shape == (5, 32)  # the folder's width, not MiniLM's 384
    (key,) = set(ItemEmbedding.objects.filter(item__project=project).values_list("encoder", flat=True))
    assert key.startswith("hf:")
    # Another folder (other weights): another key, never the stale rows.
    other = store_folder(tiny_bert_folder(tmp_path / "tiny2", words=words, seed=1), "encoders/tiny2")
    project.model_config = {"encoder": other, "finetune": True}
    project.save(update_fields=["model_config"])
    assert raw_features(project, [i.pk for i in items]).shape == (5, 32)  # cold start: frozen embeddings
    assert ItemEmbedding.objects.filter(item__project=project).values("encoder").distinct().count() == 2


def test_a_folder_replaced_in_place_is_read_afresh(make_project: Any, tmp_path: Path) -> None:
    """A worker keeps loaded encoders and tokenizers; a folder overwritten under the same path has a new content
    identity, and the worker reads the new files instead of serving the old ones under the new key."""
    from campaigns.services.features import item_inputs, text_tokens
    from engine.text import MiniLMEncoder
    from engine.text_finetune import folder_tokens

    path, words = topics(tmp_path, 40)
    name = store_folder(tiny_bert_folder(tmp_path / "old", words=words), "encoders/same")
    project = make_project(task_type="text_classification", labels=TOPIC_LABELS, model_config={"encoder": name})
    items_import(project=project, path=path)
    items = list(Item.objects.filter(project=project).order_by("pk")[:5])
    texts = [i.text for i in items]
    before, tokens_before = item_inputs(project, items), text_tokens(project, texts)

    new = tiny_bert_folder(tmp_path / "new", words=words[::-1], seed=1)  # other weights, other vocabulary order
    for file in new.iterdir():
        default_storage.delete(f"{name}/{file.name}")
    store_folder(new, name)
    after, tokens_after = item_inputs(project, items), text_tokens(project, texts)
    assert not np.allclose(before, after)
    assert np.allclose(after, MiniLMEncoder(str(new)).encode(texts), atol=1e-5)
    assert not np.array_equal(tokens_before, tokens_after)
    assert np.array_equal(tokens_after, folder_tokens(new, texts))
    assert ItemEmbedding.objects.filter(item__project=project).values("encoder").distinct().count() == 2


def test_finetune_cycle_trains_registers_reloads_and_scores_confined_mc(
    make_project: Any, tmp_path: Path, mlflow_store: str
) -> None:
    from campaigns.services.features import item_inputs
    from campaigns.services.inference import model_score
    from campaigns.services.model_cache import model_cache_clear, model_cached
    from engine.scoring import MCDropout
    from engine.text_finetune import TextFinetuneModel

    path, words = topics(tmp_path, 90)
    name = store_folder(tiny_bert_folder(tmp_path / "tiny", words=words), "encoders/tiny")
    config = {"encoder": name, "finetune": True, "mc_layers": 1, "epochs": 2, "min_steps": 0}
    assert model_config_problem(config) is None
    project = make_project(
        task_type="text_classification",
        labels=TOPIC_LABELS,
        model_config=config,
        split_ratios={"train": 0.0, "valid": 0.2, "test": 0.2, "pool": 0.6},
    )
    items_import(project=project, path=path)
    label_some(project, 20)
    cycle = cycle_create(project=project, mc_iterations=6, budget=5)
    cycle_run_training(cycle_id=cycle.pk)
    cycle_run_scoring(cycle_id=cycle.pk)
    cycle = Cycle.objects.get(pk=cycle.pk)
    mv = cycle.model_version
    assert cycle.state == CycleState.SCORED and mv is not None and mv.architecture == "TextFinetuneModel"
    pool = Item.objects.filter(project=project, split="pool", label__isnull=True)
    scores = Score.objects.filter(cycle=cycle)
    assert scores.count() == pool.count() and set(scores.values_list("predicted_label", flat=True)) <= set(TOPIC_LABELS)
    assert not ItemEmbedding.objects.filter(item__project=project).exists()  # token ids, not cached embeddings
    params = registry().client.get_run(mv.mlflow_run_id).data.params
    assert params["finetune"].lower() == "true" and params["mc_layers"] == "1" and params["encoder"] == name
    assert params["encoder_identity"].startswith("hf:")

    # A fresh worker: the version loads from MLflow with its tokenizer and scores with confined MC dropout.
    model_cache_clear()
    model = model_cached(model_version=mv)
    assert isinstance(model, TextFinetuneModel) and model.config["mc_layers"] == 1
    items = list(pool[:4])
    x = item_inputs(project, items, model=model)
    assert x.dtype == np.int64 and np.array_equal(x, item_inputs(project, items))  # its tokenizer, the folder's
    chunk = model_score(model=model, inputs=x, ids=[i.pk for i in items], iterations=6, heuristic="bald", seed=0)
    assert np.allclose(chunk.probs.sum(axis=1), 1.0, atol=1e-5) and chunk.uncertainty.max() > 0
    sampler = MCDropout(model, iterations=6)
    samples, _ = sampler(torch.as_tensor(x))
    assert sampler.mode == "fast" and samples.std(axis=2).max() > 1e-4  # lower layers once, top layer T times
