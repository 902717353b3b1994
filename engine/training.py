"""Supervised training for the classification heads: train / validate each epoch / keep best / stop early / test.

Deterministic for a seed on CPU: the shuffling generator and torch's global RNG (dropout masks) are seeded, data is
loaded in-process, and deterministic algorithms are switched on for the duration of training (then restored, since
that flag is process-wide and the scoring engine doesn't need it).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from engine.augment import Augment, augment_batch
from engine.device import autocast, needs_grad_scaler, resolve_device
from engine.metrics import ClassificationMetrics, classification_metrics

DataLike = Dataset[Any] | tuple[torch.Tensor, torch.Tensor]
Monitor = Literal["val_loss", "val_accuracy", "val_macro_f1"]
Keep = Literal["best", "last"]


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 5  # epochs without improvement of `monitor` before stopping
    # With few labels an epoch is one or two optimizer steps: 30 epochs would leave the model half trained and its
    # quality (and its uncertainty) noisy from cycle to cycle. Epochs and patience stretch to reach this many steps.
    min_steps: int = 0
    monitor: Monitor = "val_loss"
    # "best": keep the epoch with the best `monitor` and stop after `patience` epochs without improvement. "last":
    # train the whole schedule and keep its end; validation is still measured every epoch (history, champion).
    # With ~5 validation items per class, "best" picks among epochs by a few items' worth of noise and stops early:
    # on frozen text features that cost 0.03 macro-F1 against training to the end (docs/models.md).
    keep: Keep = "best"
    class_weights: bool = True
    seed: int = 0
    deterministic: bool = True
    eval_batch_size: int = 512
    device: str | None = None  # None: ALWEB_DEVICE (engine.device), auto by default
    # Training batches only (engine.augment), drawn from their own generator seeded by `seed`: image networks
    # trained end to end; None for heads on frozen features (engine.recipes decides).
    augment: Augment | None = None


@dataclass(frozen=True)
class EpochLog:
    epoch: int  # 1-based
    train_loss: float
    val_loss: float | None
    val_accuracy: float | None
    val_macro_f1: float | None
    seconds: float
    improved: bool

    def metrics(self) -> dict[str, float]:
        """The scalar metrics of this epoch (for MLflow ``log_metric(..., step=epoch)``)."""
        values = {
            "train_loss": self.train_loss,
            "val_loss": self.val_loss,
            "val_accuracy": self.val_accuracy,
            "val_macro_f1": self.val_macro_f1,
        }
        return {k: float(v) for k, v in values.items() if v is not None}


@dataclass
class TrainResult:
    model: nn.Module  # best checkpoint, eval mode
    best_epoch: int
    epochs_run: int
    stopped_early: bool
    history: list[EpochLog]
    valid: ClassificationMetrics | None
    test: ClassificationMetrics | None
    class_weights: list[float] = field(default_factory=list)

    def final_metrics(self, labels: list[str] | None = None) -> dict[str, float]:
        """Metrics of the kept checkpoint: ``best_val_*`` (validation) and ``test_*`` (per class too)."""
        out: dict[str, float] = {"best_epoch": float(self.best_epoch)}
        best = next((h for h in self.history if h.epoch == self.best_epoch), None)
        if best is not None:
            out.update({f"best_{k}": v for k, v in best.metrics().items() if k.startswith("val_")})
        if self.test is not None:
            out.update(self.test.flat("test", labels))
        return out


def as_dataset(data: DataLike) -> Dataset[Any]:
    if isinstance(data, tuple):
        return TensorDataset(*data)
    return data


def dataset_labels(data: Dataset[Any]) -> np.ndarray:
    if isinstance(data, TensorDataset):
        return data.tensors[1].numpy().astype(np.int64)
    return np.array([int(data[i][1]) for i in range(len(data))], dtype=np.int64)  # type: ignore[arg-type]


def balanced_class_weights(labels: ArrayLike, num_classes: int) -> torch.Tensor:
    """n / (k * n_c) for the k classes present (scikit-learn's "balanced"); 1 for classes absent from train."""
    y = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(y, minlength=num_classes).astype(np.float64)
    present = counts > 0
    weights = np.ones(num_classes)
    weights[present] = len(y) / (present.sum() * counts[present])
    return torch.tensor(weights, dtype=torch.float32)


@contextmanager
def deterministic_algorithms(enabled: bool = True) -> Iterator[None]:
    previous, warn_only = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=warn_only)


def model_device(model: nn.Module) -> torch.device:
    """Where the model's weights are (the CPU for a model without any)."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def predict_logits(model: nn.Module, data: DataLike, *, batch_size: int = 512) -> torch.Tensor:
    """Deterministic (eval mode, dropout off) float32 logits for every item, in order, on the CPU; the batches run
    on the model's device."""
    loader = DataLoader(as_dataset(data), batch_size=batch_size, shuffle=False)
    device = model_device(model)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), autocast(device):
            outs = [model(batch[0].to(device)).float().cpu() for batch in loader]
    finally:
        model.train(was_training)
    return torch.cat(outs) if outs else torch.empty(0)


def evaluate(
    model: nn.Module, data: DataLike, num_classes: int, *, criterion: nn.Module | None = None, batch_size: int = 512
) -> tuple[ClassificationMetrics, float | None]:
    ds = as_dataset(data)
    logits = predict_logits(model, ds, batch_size=batch_size)
    y = torch.from_numpy(dataset_labels(ds))
    loss = float(criterion(logits, y)) if criterion is not None and len(y) else None
    return classification_metrics(y.numpy(), logits.argmax(dim=1).numpy(), num_classes), loss


def _better(monitor: Monitor, new: EpochLog, best: EpochLog | None) -> bool:
    """Whether `new` is the better checkpoint. A tie on the monitored score goes to the lower validation loss: a small
    validation set puts macro-F1 on a few discrete values, and keeping the first epoch that reached the ceiling kept
    checkpoints from epochs 3-7 of ~55 (bench/learning.py, docs/learning.md): undertrained models whose test score
    fell as labels grew."""
    if best is None:
        return True
    a, b = getattr(new, monitor), getattr(best, monitor)
    if monitor == "val_loss":
        return bool(a < b)
    if a != b:
        return bool(a > b)
    return new.val_loss is not None and best.val_loss is not None and new.val_loss < best.val_loss


def effective_schedule(config: TrainConfig, n_train: int) -> tuple[int, int]:
    """(epochs, patience) after stretching both so that training takes at least ``config.min_steps`` steps."""
    steps_per_epoch = max(1, math.ceil(n_train / config.batch_size))
    scale = max(1.0, config.min_steps / (config.epochs * steps_per_epoch)) if config.min_steps else 1.0
    return math.ceil(config.epochs * scale), math.ceil(config.patience * scale)


def _param_groups(model: nn.Module, lr: float) -> list[dict[str, Any]]:
    """The optimizer's parameter groups: the model's own (``optimizer_groups(lr)``: a fine-tuned encoder learns at
    a lower rate than its new head), else every trainable parameter at ``lr``."""
    groups = getattr(model, "optimizer_groups", None)
    if callable(groups):
        return list(groups(lr))
    return [{"params": [p for p in model.parameters() if p.requires_grad]}]


def train_classifier(
    model: nn.Module,
    train: DataLike,
    valid: DataLike | None = None,
    *,
    num_classes: int,
    test: DataLike | None = None,
    config: TrainConfig | None = None,
    on_epoch: Callable[[EpochLog], None] | None = None,
) -> TrainResult:
    """Train ``model`` in place and return it at its best validation epoch, with validation and test metrics.

    Without a validation split (the first cycles of a project may have too few labels to hold some out) it trains
    for ``config.epochs`` and keeps the last epoch.
    """
    cfg = config or TrainConfig()
    train_ds = as_dataset(train)
    valid_ds = as_dataset(valid) if valid is not None and len(as_dataset(valid)) > 0 else None  # type: ignore[arg-type]
    y_train = dataset_labels(train_ds)
    weights = balanced_class_weights(y_train, num_classes) if cfg.class_weights else torch.ones(num_classes)
    device = resolve_device(cfg.device)
    model.to(device)
    criterion = nn.CrossEntropyLoss(weight=weights.to(device))
    eval_criterion = nn.CrossEntropyLoss(weight=weights)  # evaluate() returns its logits on the CPU
    scaler = torch.amp.GradScaler("cuda") if needs_grad_scaler(device) else None
    optimizer = torch.optim.AdamW(_param_groups(model, cfg.lr), lr=cfg.lr, weight_decay=cfg.weight_decay)
    history: list[EpochLog] = []
    best: EpochLog | None = None
    best_state = copy.deepcopy(model.state_dict())
    stale, stopped_early = 0, False
    epochs, patience = effective_schedule(cfg, len(train_ds))  # type: ignore[arg-type]

    with deterministic_algorithms(cfg.deterministic):
        torch.manual_seed(cfg.seed)  # dropout masks during training
        generator = torch.Generator().manual_seed(cfg.seed)
        loader = DataLoader(train_ds, batch_size=cfg.batch_size, shuffle=True, generator=generator, drop_last=False)
        # Its own stream: augmenting draws nothing from the shuffling generator or the dropout masks' global RNG.
        aug_generator = torch.Generator().manual_seed(cfg.seed + 1)
        for epoch in range(1, epochs + 1):
            started = time.perf_counter()
            model.train()
            total, count = 0.0, 0
            for x, y in loader:
                if cfg.augment is not None:
                    x = augment_batch(x, cfg.augment, aug_generator)
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                optimizer.zero_grad(set_to_none=True)
                with autocast(device):
                    loss = criterion(model(x).float(), y)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    loss.backward()
                    optimizer.step()
                total += loss.item() * len(y)
                count += len(y)
            if valid_ds is not None:
                vm, vloss = evaluate(
                    model, valid_ds, num_classes, criterion=eval_criterion, batch_size=cfg.eval_batch_size
                )
                log = EpochLog(epoch, total / max(count, 1), vloss, vm.accuracy, vm.macro_f1, 0.0, False)
                improved = cfg.keep == "last" or _better(cfg.monitor, log, best)
            else:
                log = EpochLog(epoch, total / max(count, 1), None, None, None, 0.0, False)
                improved = True
            log = EpochLog(**{**log.__dict__, "seconds": time.perf_counter() - started, "improved": improved})
            history.append(log)
            if on_epoch is not None:
                on_epoch(log)
            if improved:
                best, stale = log, 0
                if cfg.keep == "best":  # "last" keeps the weights as they end: no copy per epoch
                    best_state = copy.deepcopy(model.state_dict())
            else:
                stale += 1
                if stale >= patience:
                    stopped_early = True
                    break

    if cfg.keep == "best":
        model.load_state_dict(best_state)
    model.eval()
    valid_metrics = evaluate(model, valid_ds, num_classes)[0] if valid_ds is not None else None
    test_ds = as_dataset(test) if test is not None else None
    test_metrics = evaluate(model, test_ds, num_classes)[0] if test_ds is not None and len(test_ds) else None  # type: ignore[arg-type]
    # Handed back on the CPU: callers save it (MLflow), copy it, compare state_dicts; scoring moves it again.
    model.to("cpu")
    return TrainResult(
        model=model,
        best_epoch=best.epoch if best is not None else 0,
        epochs_run=len(history),
        stopped_early=stopped_early,
        history=history,
        valid=valid_metrics,
        test=test_metrics,
        class_weights=[float(w) for w in weights],
    )
