"""The product's default recipes (engine/recipes.py) and the linear probe (engine/probe.py) on small real data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from torch import nn

from engine.architectures import ImageCNN, TextHead
from engine.finetune import FineTuneModel
from engine.probe import PROBE_C, linear_probe, probe_metrics, probe_predict
from engine.recipes import new_network, train_config
from engine.training import TrainConfig, effective_schedule, train_classifier

Data = tuple[torch.Tensor, torch.Tensor]


@pytest.fixture(scope="module")
def digits_features() -> tuple[np.ndarray, np.ndarray]:
    """The 64 pixel counts of scikit-learn's digits, scaled to [0, 1]: frozen features of a real dataset."""
    d = load_digits()
    return (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)


def test_a_text_head_trains_its_whole_schedule_and_keeps_the_last_epoch(
    digits_features: tuple[np.ndarray, np.ndarray],
) -> None:
    x, y = digits_features
    train, valid = (
        (torch.from_numpy(x[:60]), torch.from_numpy(y[:60])),
        (torch.from_numpy(x[60:80]), torch.from_numpy(y[60:80])),
    )
    model = new_network("text", 10, in_dim=64, seed=0)
    cfg = train_config(model, seed=0, epochs=10, min_steps=40)
    assert cfg.keep == "last" and cfg.monitor == "val_macro_f1"
    result = train_classifier(model, train, valid, num_classes=10, config=cfg)
    epochs, _ = effective_schedule(cfg, 60)
    assert result.epochs_run == epochs and not result.stopped_early
    assert result.best_epoch == epochs  # the end of the schedule, whatever validation said on the way
    assert all(h.val_macro_f1 is not None for h in result.history)  # still measured every epoch (champion, logs)
    # The kept weights are the last epoch's: validation of the returned model equals the last epoch's log.
    assert result.valid is not None and result.valid.macro_f1 == pytest.approx(result.history[-1].val_macro_f1)


def test_keep_best_still_stops_early_and_keeps_the_best_epoch(digits_features: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = digits_features
    train, valid = (
        (torch.from_numpy(x[:60]), torch.from_numpy(y[:60])),
        (torch.from_numpy(x[60:70]), torch.from_numpy(y[60:70])),
    )
    cfg = TrainConfig(epochs=200, patience=3, monitor="val_macro_f1", seed=0, keep="best")
    result = train_classifier(new_network("text", 10, in_dim=64, seed=0), train, valid, num_classes=10, config=cfg)
    assert result.stopped_early and result.epochs_run < 200
    best = result.history[result.best_epoch - 1]
    assert best.val_macro_f1 == max(h.val_macro_f1 or 0.0 for h in result.history)


def test_the_image_recipe_keeps_its_best_epoch_and_networks_follow_their_seed() -> None:
    cnn = new_network("image", 3, image_size=8, channels=1, seed=0)
    assert train_config(cnn, seed=3).keep == "best" and train_config(cnn, seed=3).seed == 3
    # A pretrained trunk fine-tuned under alweb's head keeps its last epoch, like a head on frozen features.
    finetuned = FineTuneModel(nn.Flatten(), 3, feature_dim=64, mean=(0.5,), std=(0.25,))
    assert train_config(finetuned, seed=3).keep == "last"
    a, b, c = (new_network("text", 4, in_dim=8, seed=s) for s in (1, 1, 2))
    assert isinstance(a, TextHead) and a.config["dropout"] == 0.3
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert not torch.equal(a.state_dict()["features.0.weight"], c.state_dict()["features.0.weight"])
    state = torch.get_rng_state()
    img = new_network("image", 3, image_size=8, channels=1, dropout=0.2, seed=5)
    assert torch.equal(state, torch.get_rng_state())  # the caller's random stream is left as it was
    assert isinstance(img, ImageCNN) and img.config["dropout"] == 0.2


def test_the_probe_is_a_class_balanced_logistic_regression_with_the_fixed_c(
    digits_features: tuple[np.ndarray, np.ndarray],
) -> None:
    x, y = digits_features
    probe = linear_probe(x[:200], y[:200])
    assert isinstance(probe, LogisticRegression)
    assert probe.C == PROBE_C and probe.class_weight == "balanced"
    reference = LogisticRegression(C=PROBE_C, class_weight="balanced", max_iter=5000).fit(x[:200], y[:200])
    np.testing.assert_array_equal(probe_predict(probe, x[200:]), reference.predict(x[200:]))
    metrics = probe_metrics(x[:200], y[:200], x[200:], y[200:], 10)
    assert metrics.macro_f1 > 0.75  # a linear model on digits' pixels is a strong baseline (0.82 here)
    # Class balance: with one 9 among 360 training digits, the weights lift its recall far above the plain fit's
    # (0.30 vs 0.08 here).
    keep = (y[:400] != 9) | (np.arange(400) % 10 == 0)
    weighted = probe_metrics(x[:400][keep], y[:400][keep], x[400:], y[400:], 10)
    plain = LogisticRegression(C=PROBE_C, max_iter=5000).fit(x[:400][keep], y[:400][keep]).predict(x[400:])
    assert weighted.recall[9] > float(np.mean(plain[y[400:] == 9] == 9)) + 0.1
