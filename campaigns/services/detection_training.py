"""Training a detection project's own detector for a cycle (engine.detector), when no external model is registered.

`training.model_train_for_cycle` does the bookkeeping every model shares (idempotence, MLflow, the version row);
this module fits the detector on the boxes labeled so far and measures it: mAP@0.5 and mAP@0.5:0.95 on the human
test labels (pycocotools), the validation split choosing the checkpoint. What it returns is the `Fit` that
bookkeeping logs, for classifiers and detectors alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from campaigns.models import Item, Project
from campaigns.services.features import item_inputs
from engine.detector import CenterDetector
from engine.detector_training import DetectorConfig, train_detector

ProgressFn = Callable[[int, int], None]


@dataclass
class Fit:
    """A trained model and what the version records: evaluation metrics (the learning curve's), parameters of the
    run, per-epoch history and final scalars for MLflow, the validation metric the champion policy compares."""

    model: nn.Module
    metrics: dict[str, Any]
    params: dict[str, Any]
    history: list[dict[str, float]]
    final_metrics: dict[str, float]
    champion_metric: str
    input_example: np.ndarray


def detection_boxes(items: Sequence[Item]) -> list[list[dict[str, Any]]]:
    """The labeled boxes of `items` (a detection label is a list of {label, x, y, w, h}; an empty list is an image
    people found nothing in, which teaches the detector what background looks like)."""
    return [list(item.label or []) for item in items]


def detector_fit(
    *,
    project: Project,
    model: nn.Module,
    train_items: Sequence[Item],
    valid: Sequence[Item],
    test: Sequence[Item],
    seed: int,
    on_epoch: ProgressFn | None,
) -> Fit:
    assert isinstance(model, CenterDetector)
    labels = list(project.labels)
    cfg = project.model_config or {}
    config = DetectorConfig(
        epochs=int(cfg.get("epochs", 40)),
        min_steps=int(cfg.get("min_steps", 200)),
        seed=seed,
    )

    def data(items: Sequence[Item]) -> tuple[torch.Tensor, list[list[dict[str, Any]]]]:
        return torch.as_tensor(item_inputs(project, items)), detection_boxes(items)

    x_train, boxes_train = data(train_items)
    steps = -(-len(train_items) // config.batch_size)
    total = max(config.epochs, -(-config.min_steps // steps))
    result = train_detector(
        model,
        (x_train, boxes_train),
        labels,
        valid=data(valid) if valid else None,
        test=data(test) if test else None,
        config=config,
        on_epoch=None if on_epoch is None else (lambda log: on_epoch(log.epoch, total)),
    )
    metrics: dict[str, Any] = {}
    if result.test is not None:
        metrics = {
            "map": result.test["map"],
            "map_50": result.test["map_50"],
            "per_class_ap50": result.test["per_class_ap50"],
            "evaluated_on": "test",
        }
    if result.valid is not None:
        metrics["valid"] = {"map": result.valid["map"], "map_50": result.valid["map_50"]}
    return Fit(
        model=result.model,
        metrics=metrics,
        params={"epochs_run": result.epochs_run, "best_epoch": result.best_epoch},
        history=[{"epoch": h.epoch, **h.metrics()} for h in result.history],
        final_metrics=result.final_metrics(),
        champion_metric="best_val_map_50",
        input_example=x_train[:2].numpy(),
    )
