"""bench/models_ssl.py: the SSL trunk is pretrained on each seed's pool images only (no validation or test image),
both arms run the same seeds and labels on one grid, and the gain is averaged over datasets with a paired interval."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from bench import models_ssl
from bench.learning_data import Dataset, Plan
from engine.learning_protocol import make_split

PLAN = Plan(initial=10, step=10, cycles=1, n_valid=20, n_test=40)


def tiny_digits() -> Dataset:
    d = load_digits()
    x, y = (d.images[:150, None] / 16.0).astype(np.float32), d.target[:150].astype(np.int64)
    return Dataset("tiny-digits", "image", x, y, [str(i) for i in range(10)], "test", PLAN)


@pytest.fixture(scope="module")
def run() -> Iterator[tuple[dict[str, Any], list[np.ndarray]]]:
    seen: list[np.ndarray] = []
    real = models_ssl.pretrain
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    models_ssl.pretrain = lambda images, config: seen.append(images) or real(images, config)  # type: ignore[assignment]
    try:
        yield (
            models_ssl.curves_for(tiny_digits(), range(2), cycles=None, pool_cap=None, overrides={"min_steps": 4}),
            seen,
        )
    finally:
        models_ssl.pretrain = real  # type: ignore[assignment]
        torch.set_num_threads(threads)


def test_the_trunk_sees_only_its_seeds_pool_and_both_arms_share_the_grid(
    run: tuple[dict[str, Any], list[np.ndarray]],
) -> None:
    result, seen = run
    ds = tiny_digits()
    for seed, images in enumerate(seen):
        split = make_split(len(ds.y), n_test=PLAN.n_test, n_valid=PLAN.n_valid, seed=seed)
        np.testing.assert_array_equal(images, ds.x[split.pool])
    assert result["curves"][models_ssl.SCRATCH].shape == result["curves"][models_ssl.SSL].shape == (2, 2)
    assert result["grid"].tolist() == [30.0, 40.0] and len(result["pretrain_seconds"]) == 2


def test_the_gain_is_ssl_minus_scratch_averaged_over_datasets(run: tuple[dict[str, Any], list[np.ndarray]]) -> None:
    result, _ = run
    point, low, high = models_ssl.gain_over_datasets({"a": result})
    curves = result["curves"]
    diff = np.trapezoid(curves[models_ssl.SSL].mean(0) - curves[models_ssl.SCRATCH].mean(0), result["grid"]) / 10
    assert point == pytest.approx(diff, abs=1e-4) and low <= point <= high
    better = {**result, "curves": {**curves, models_ssl.SSL: curves[models_ssl.SSL] + 0.1}}
    assert models_ssl.gain_over_datasets({"a": result, "b": better})[0] == pytest.approx(point + 0.05, abs=2e-4)
