"""Training on scikit-learn's digits rendered as images: train / valid / test, best checkpoint, early stop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from engine.architectures import ImageCNN
from engine.scoring import concat_chunks, iter_batches, score_model
from engine.training import EpochLog, TrainConfig, balanced_class_weights, train_classifier

Split = tuple[torch.Tensor, torch.Tensor]


def render_digits(size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """8x8 digit grids (0..16) -> grayscale PIL images upscaled to size x size -> [N, 1, size, size] in [0, 1]."""
    digits = load_digits()
    images = [
        np.asarray(Image.fromarray((img / 16 * 255).astype(np.uint8)).resize((size, size), Image.Resampling.BILINEAR))
        for img in digits.images
    ]
    x = torch.from_numpy(np.stack(images)).float().div(255).unsqueeze(1)
    return x, torch.from_numpy(digits.target).long()


@pytest.fixture(scope="module")
def digits() -> tuple[Split, Split, Split]:
    x, y = render_digits()
    idx = np.arange(len(y))
    train, rest = train_test_split(idx, test_size=0.4, random_state=0, stratify=y)
    valid, test = train_test_split(rest, test_size=0.5, random_state=0, stratify=y[rest])
    return (x[train], y[train]), (x[valid], y[valid]), (x[test], y[test])


def test_digits_reach_a_sane_accuracy_and_keep_the_best_epoch(digits: tuple[Split, Split, Split]) -> None:
    train, valid, test = digits
    torch.manual_seed(0)
    model = ImageCNN(10, 16, 1, width=16, hidden=64)
    epochs: list[EpochLog] = []
    result = train_classifier(
        model,
        train,
        valid,
        test=test,
        num_classes=10,
        config=TrainConfig(epochs=12, patience=3),
        on_epoch=epochs.append,
    )
    assert result.test is not None and result.valid is not None
    assert result.test.accuracy > 0.85, result.test
    assert result.test.macro_f1 > 0.85
    assert epochs == result.history and len(epochs) == result.epochs_run
    best = min(result.history, key=lambda h: h.val_loss or 0.0)
    assert result.best_epoch == best.epoch
    assert result.valid.accuracy == pytest.approx(best.val_accuracy)  # the kept weights are the best epoch's
    assert np.array(result.test.confusion).sum() == len(test[1])
    final = result.final_metrics()
    assert final["test_accuracy"] == result.test.accuracy and "best_val_macro_f1" in final
    # The trained model goes straight into MC-dropout scoring.
    chunk = concat_chunks(score_model(result.model, iter_batches(test[0][:64], 32), iterations=10))
    assert (chunk.labels == test[1][:64].numpy()).mean() > 0.8


def test_training_is_deterministic_for_a_seed(digits: tuple[Split, Split, Split]) -> None:
    (xt, yt), (xv, yv), _ = digits

    def run(seed: int) -> dict[str, torch.Tensor]:
        torch.manual_seed(seed)
        model = ImageCNN(10, 16, 1, width=8, hidden=32)
        cfg = TrainConfig(epochs=2, seed=seed)
        return train_classifier(
            model, (xt[:300], yt[:300]), (xv[:100], yv[:100]), num_classes=10, config=cfg
        ).model.state_dict()

    a, b, c = run(1), run(1), run(2)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_early_stopping_and_no_validation_split(digits: tuple[Split, Split, Split]) -> None:
    (xt, yt), (xv, yv), _ = digits
    model = ImageCNN(10, 16, 1, width=8, hidden=32, batch_norm=False)  # lr 0 and no BN statistics: nothing moves
    stuck = train_classifier(
        model,
        (xt[:100], yt[:100]),
        (xv[:50], yv[:50]),
        num_classes=10,
        config=TrainConfig(epochs=10, lr=0.0, patience=2),
    )
    assert stuck.stopped_early and stuck.epochs_run == 3 and stuck.best_epoch == 1
    blind = train_classifier(model, (xt[:100], yt[:100]), None, num_classes=10, config=TrainConfig(epochs=2))
    assert blind.epochs_run == 2 and blind.best_epoch == 2 and blind.valid is None


def test_balanced_class_weights() -> None:
    w = balanced_class_weights([0, 0, 0, 1], num_classes=3)
    # n / (k * n_c) over the k = 2 classes present; an absent class keeps weight 1.
    np.testing.assert_allclose(w.numpy(), [4 / 6, 4 / 2, 1.0])


def test_a_tie_on_the_monitored_score_goes_to_the_lower_validation_loss() -> None:
    """Issue 14: with 20 validation items macro-F1 hits its ceiling early; the first epoch there was kept (epochs 3-7
    of ~55) and test accuracy fell as labels grew. A tie now goes to the checkpoint with the lower validation loss."""
    from engine.training import EpochLog, _better

    def log(epoch: int, f1: float, loss: float) -> EpochLog:
        return EpochLog(epoch, 0.1, loss, f1, f1, 0.0, False)

    first = log(3, 1.0, 0.40)
    assert _better("val_macro_f1", log(9, 1.0, 0.12), first)  # same F1, better loss: the later epoch
    assert not _better("val_macro_f1", log(9, 1.0, 0.55), first)  # same F1, worse loss: keep
    assert not _better("val_macro_f1", log(9, 0.9, 0.01), first)  # the monitored score still decides first
    assert _better("val_loss", log(9, 0.5, 0.30), first) and not _better("val_loss", log(9, 1.0, 0.40), first)
