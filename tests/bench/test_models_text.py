"""bench/models_text.py: the fine-tuned and frozen arms are measured at the same random labels as the learning
benchmark's random arm, and confined MC is timed against the whole network on the same weights (a tiny BERT)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from bench import models_text
from bench.learning import run_arm
from bench.learning_arms import ARMS
from engine.learning_protocol import labels_spent
from tests.bench.test_learning import tiny_dataset
from tests.engine.test_text_finetune import TEXTS, tiny_bert_folder

BOUNDS = models_text.Bounds(seeds=1, cycles=1, pool_cap=60, test_cap=30, max_length=16, min_steps=2, speed_items=6)


def test_both_arms_share_the_random_arms_labels_and_the_speed_is_like_for_like(
    tmp_path: Path, monkeypatch: Any
) -> None:
    folder = tiny_bert_folder(tmp_path / "tiny")
    monkeypatch.setattr(models_text, "encoder_dir", lambda: folder)
    ds = tiny_dataset()
    ds = dataclasses.replace(ds, texts=tuple(TEXTS[int(c) * 2 + i % 2] for i, c in enumerate(ds.y)))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run = models_text.run_dataset(ds, BOUNDS, first_seed=0)
        speed = models_text.speedup(ds, BOUNDS, run["model"])  # timed on the fine-tuned weights
    finally:
        torch.set_num_threads(threads)
    assert run["labels"] == [labels_spent(6 + 4 * k, 9) for k in range(2)]
    assert run["curves"][models_text.FINETUNE].shape == run["curves"][models_text.FROZEN].shape == (1, 2)
    # The frozen arm is the learning benchmark's random arm, point for point.
    plan = dataclasses.replace(ds.plan, cycles=1)
    rows = run_arm(ds, plan, ARMS["random"], 0, BOUNDS.pool_cap, 20, {})
    assert np.allclose(run["curves"][models_text.FROZEN][0], rows[:, 1])
    assert set(run["seconds_per_cycle"]) == {"finetune_train_s", "frozen_train_s", "finetune_score_s"}
    assert speed["items"] == 6 and speed["speedup_top1"] > 0 and speed["speedup_top2"] > 0  # times may round to 0.00
    assert speed["speedup_top0.5"] > 0 and -1 <= speed["rank_corr_top0.5"] <= 1
    assert isinstance(run["model"], models_text.TextFinetuneModel) and run["n_valid"] == 9
    gain = models_text.mean_gain({"tiny": run})
    assert gain[1] <= gain[0] <= gain[2]
    assert gain[0] == pytest.approx(run["auc_finetune"] - run["auc_frozen"], abs=2e-4)
