"""The product's default networks and training recipes, in one place for the product (``campaigns.services.training``)
and the benchmarks (``bench/learning.py``, ``bench/models.py``): a benchmark can then never measure a model, or a
training schedule, that a project does not get.

Two recipes, because the two kinds of model learn differently from few labels:

- a **head on frozen features** (``TextHead``: on MiniLM embeddings, or on a frozen backbone's features, cached
  per item) trains the whole schedule and keeps its end (``keep="last"``). Picking the checkpoint by validation
  macro-F1 over ~5 items per class chose early, undertrained epochs by a few items' worth of noise: 0.524 vs 0.557
  mean macro-F1 on the Debian descriptions at equal random labels, below a class-balanced logistic regression on
  the same embeddings (docs/models.md);
- a **network trained end to end from scratch** (the image CNN) keeps the best validation epoch with early
  stopping, as before. A network that starts from pretrained weights (a fine-tuned backbone, ``FineTuneModel``; a
  fine-tuned text encoder) keeps its last epoch like a head: with the trunk at a tenth of the head's rate, "best"
  kept an early checkpoint and a sixth of the pretrained trunk's gain (+0.004 vs +0.021 AUC over scratch on the
  digit sets' development seeds, docs/models.md "A fine-tuned backbone keeps its last epoch").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from engine.architectures import FeaturesHeadModel, ImageCNN, TextHead
from engine.augment import Augment
from engine.finetune import FineTuneModel
from engine.text_finetune import BATCH_SIZE as FT_BATCH_SIZE
from engine.text_finetune import EPOCHS as FT_EPOCHS
from engine.text_finetune import HEAD_LR, TextFinetuneModel
from engine.text_finetune import MIN_STEPS as FT_MIN_STEPS
from engine.training import Monitor, TrainConfig

Kind = Literal["text", "image"]

TEXT_DROPOUT = 0.3  # TextHead's MC-dropout rate: the one model_config.dropout overrides
IMAGE_DROPOUT = 0.5
EPOCHS = 30
# With few labels an epoch is one or two optimizer steps: the schedule is stretched to at least this many steps.
MIN_STEPS = 300
# Early stopping and checkpoint choice of the image CNN: macro-F1, not loss, because with rare classes heavily
# weighted the weighted validation loss rises from the first epochs (confident mistakes on rare classes) while F1
# still improves, and stopping on it kept near-untrained checkpoints.
MONITOR: Monitor = "val_macro_f1"
# Training augmentation of image networks trained end to end when model_config.augment is absent. Off: on the
# learning benchmark's digit sets the "light" preset raised one set's AUC, lowered the other's and lowered both
# sets' final macro-F1 (bench/augment.py, docs/models.md "Training augmentation").
IMAGE_AUGMENT: Augment | None = None


def new_network(
    kind: Kind,
    num_classes: int,
    *,
    in_dim: int = 384,
    image_size: int | Sequence[int] = 32,
    channels: int = 3,
    dropout: float | None = None,
    seed: int | None = None,
) -> FeaturesHeadModel:
    """The project's network for ``kind``; initial weights drawn from ``seed`` alone when given (the same cycle
    trained twice, or every arm of a benchmark cycle, starts from the same weights), without touching the caller's
    random stream."""
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        if kind == "text":
            return TextHead(num_classes, in_dim=in_dim, dropout=TEXT_DROPOUT if dropout is None else dropout)
        return ImageCNN(
            num_classes,
            image_size=image_size,
            channels=channels,
            dropout=IMAGE_DROPOUT if dropout is None else dropout,
        )


def train_config(
    model: nn.Module,
    *,
    seed: int,
    epochs: int | None = None,
    min_steps: int | None = None,
    monitor: Monitor = MONITOR,
    augment: Augment | None = IMAGE_AUGMENT,
) -> TrainConfig:
    """The training recipe for ``model``: a head on frozen features (a ``TextHead``, on text embeddings or on a
    frozen backbone's cached features) and a fine-tuned backbone (``FineTuneModel``) keep their last epoch, the CNN
    trained from scratch its best validation epoch (see the module docstring for why). A fine-tuned text encoder
    (``TextFinetuneModel``) gets the short schedule of BERT fine-tuning (a few epochs, small batches, its encoder at
    a lower rate than its head) and keeps its last epoch too: its validation set is as small as the head's.
    ``epochs``/``min_steps``: the project's own (None: the recipe's). ``augment`` (training batches,
    engine.augment) applies only to image networks trained end to end (the CNN, a fine-tuned backbone): heads on
    cached features get none."""
    if isinstance(model, TextFinetuneModel):
        return TrainConfig(
            epochs=FT_EPOCHS if epochs is None else epochs,
            min_steps=FT_MIN_STEPS if min_steps is None else min_steps,
            batch_size=FT_BATCH_SIZE,
            lr=HEAD_LR,
            eval_batch_size=FT_BATCH_SIZE * 4,
            monitor=monitor,
            seed=seed,
            keep="last",
        )
    keep: Literal["best", "last"] = "last" if isinstance(model, TextHead | FineTuneModel) else "best"
    return TrainConfig(
        epochs=EPOCHS if epochs is None else epochs,
        min_steps=MIN_STEPS if min_steps is None else min_steps,
        monitor=monitor,
        seed=seed,
        keep=keep,
        augment=augment
        if isinstance(model, ImageCNN | FineTuneModel) and augment is not None and augment.active
        else None,
    )
