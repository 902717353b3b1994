"""bench/models_ssl.py: the SSL trunk is pretrained on each seed's pool images only (no validation or test image),
every arm runs the same seeds and labels on one grid, the fine-tune arm trains the product's FineTuneModel from the
pretrained trunk, and the gain is averaged over datasets with a paired interval for the arm --arm names."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from bench import models_ssl
from bench.learning_data import Dataset, Plan
from engine.finetune import LR_SCALE, FineTuneModel
from engine.learning_protocol import make_split
from engine.ssl import SSLResult

PLAN = Plan(initial=10, step=10, cycles=1, n_valid=20, n_test=40)


def tiny_digits() -> Dataset:
    d = load_digits()
    x, y = (d.images[:150, None] / 16.0).astype(np.float32), d.target[:150].astype(np.int64)
    return Dataset("tiny-digits", "image", x, y, [str(i) for i in range(10)], "test", PLAN)


@pytest.fixture(scope="module")
def run() -> Iterator[tuple[dict[str, Any], list[np.ndarray]]]:
    seen: list[np.ndarray] = []
    real = models_ssl.pretrain

    def spy(images: np.ndarray, config: Any) -> SSLResult:
        seen.append(images)
        return real(images, config)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(models_ssl, "pretrain", spy)
        yield (
            models_ssl.curves_for(
                tiny_digits(),
                range(2),
                cycles=None,
                pool_cap=None,
                overrides={"min_steps": 4},
                arms=(models_ssl.SSL, models_ssl.SSL_FT),
            ),
            seen,
        )
    torch.set_num_threads(threads)


def test_the_trunk_sees_only_its_seeds_pool_and_both_arms_share_the_grid(
    run: tuple[dict[str, Any], list[np.ndarray]],
) -> None:
    result, seen = run
    ds = tiny_digits()
    for seed, images in enumerate(seen):
        split = make_split(len(ds.y), n_test=PLAN.n_test, n_valid=PLAN.n_valid, seed=seed)
        np.testing.assert_array_equal(images, ds.x[split.pool])
    assert len(seen) == 2  # one trunk per seed, shared by both SSL arms
    curves = result["curves"]
    assert curves[models_ssl.SCRATCH].shape == curves[models_ssl.SSL].shape == curves[models_ssl.SSL_FT].shape == (2, 2)
    assert result["grid"].tolist() == [30.0, 40.0] and len(result["pretrain_seconds"]) == 2
    # Training seconds of every cycle (2 per seed) of every arm.
    assert {a: len(v) for a, v in result["train_seconds"].items()} == {
        models_ssl.SCRATCH: 4,
        models_ssl.SSL: 4,
        models_ssl.SSL_FT: 4,
    }


def test_the_gain_is_ssl_minus_scratch_averaged_over_datasets(run: tuple[dict[str, Any], list[np.ndarray]]) -> None:
    result, _ = run
    point, low, high = models_ssl.gain_over_datasets({"a": result})
    curves = result["curves"]
    diff = np.trapezoid(curves[models_ssl.SSL].mean(0) - curves[models_ssl.SCRATCH].mean(0), result["grid"]) / 10
    assert point == pytest.approx(diff, abs=1e-4) and low <= point <= high
    better = {**result, "curves": {**curves, models_ssl.SSL: curves[models_ssl.SSL] + 0.1}}
    assert models_ssl.gain_over_datasets({"a": result, "b": better})[0] == pytest.approx(point + 0.05, abs=2e-4)


def test_the_finetune_arm_trains_the_products_finetune_model_from_the_pretrained_trunk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ds = tiny_digits()
    result: SSLResult = models_ssl.pretrain(ds.x[:64], models_ssl.ssl_config(0, min_steps=2))
    pretrained = {k: v.clone() for k, v in result.trunk.state_dict().items()}
    built: list[tuple[FineTuneModel, dict[str, torch.Tensor], Any]] = []
    real = models_ssl.train_classifier

    def spy(model: Any, *args: Any, **kwargs: Any) -> Any:
        built.append((model, {k: v.clone() for k, v in model.state_dict().items()}, kwargs["config"]))
        return real(model, *args, **kwargs)

    monkeypatch.setattr(models_ssl, "train_classifier", spy)
    train = models_ssl.finetune_trainer(result)
    idx = np.arange(150)
    for cycle in range(2):
        train(ds, idx[:100], np.arange(20 + 10 * cycle), idx[100:120], idx[120:], 3)
    for model, start, config in built:
        assert isinstance(model, FineTuneModel)
        # Every cycle starts from the pretrained trunk (a private copy: the previous cycle's training does not leak).
        trunk = {k.removeprefix("features.1.net."): v for k, v in start.items() if k.startswith("features.1.net.")}
        assert trunk.keys() == pretrained.keys()
        assert all(torch.equal(trunk[k], pretrained[k]) for k in pretrained)
        lrs = [g["lr"] for g in model.optimizer_groups(1.0)]
        assert lrs == [LR_SCALE, 1.0]  # the backbone at 0.1x the head's rate
        assert config.keep == "last"  # the product's recipe for a fine-tuned pretrained trunk (engine.recipes)
    # The head is drawn from the cycle's seed alone: the same seed, the same initial head.
    head0 = {k: v for k, v in built[0][1].items() if k.startswith("head.")}
    again = models_ssl.finetune_trainer(result)
    again(ds, idx[:100], np.arange(20), idx[100:120], idx[120:], 3)
    assert all(torch.equal(v, built[-1][1][k]) for k, v in head0.items())
    assert result.trunk.state_dict().keys() == pretrained.keys()
    assert all(torch.equal(result.trunk.state_dict()[k], v) for k, v in pretrained.items())


def test_the_result_key_reports_the_arm_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(models_ssl.DATASETS, "tiny-digits", tiny_digits)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = models_ssl.measure(
            range(2), cycles=None, pool_cap=None, datasets=["tiny-digits"], arm="finetune", compare=True, min_steps=4
        )
    finally:
        torch.set_num_threads(threads)
    assert out["ssl_arm"] == "finetune" and set(out["ssl_arms"]) == {"frozen", "finetune"}
    assert [out["ssl_auc_gain"], *out["ssl_auc_gain_ci"]] == out["ssl_arms"]["finetune"]
    assert out["ssl_auc_gain_ci_low"] == out["ssl_arms"]["finetune"][1]
    assert set(out["ssl_train_cpu_seconds_per_cycle"]) == {models_ssl.SCRATCH, models_ssl.SSL, models_ssl.SSL_FT}
    assert all(v > 0 for v in out["ssl_train_cpu_seconds_per_cycle"].values())
