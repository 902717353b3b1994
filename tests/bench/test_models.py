"""bench/models.py: the head and the linear probe are measured at the same random labels, on the same test set."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

from bench import learning, models
from engine.learning_protocol import initial_labeled, labels_spent, make_split
from engine.probe import probe_metrics
from tests.bench.test_learning import tiny_dataset


@pytest.fixture(scope="module")
def run() -> Iterator[dict[str, Any]]:
    """Two seeds, one acquisition cycle: head and probe curves on the tiny dataset (one torch thread, as the
    benchmark runs, so a loaded machine does not multiply the cost)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield models.curves_for(tiny_dataset(), range(2), cycles=1, pool_cap=None)
    finally:
        torch.set_num_threads(threads)


def test_the_probe_learns_from_the_random_arms_labels_and_the_same_test_set(run: dict[str, Any]) -> None:
    ds = tiny_dataset()
    assert set(run["curves"]) == {models.HEAD, learning.PROBE}
    assert run["curves"][models.HEAD].shape == run["curves"][learning.PROBE].shape == (2, 2)
    assert run["grid"].tolist() == [labels_spent(6 + 4 * k, 9) for k in range(2)]
    # The first point: the seed's shared initial labels, so the probe's macro-F1 there can be recomputed directly.
    split = make_split(len(ds.y), n_test=ds.plan.n_test, n_valid=ds.plan.n_valid, seed=1)
    first = initial_labeled(len(split.pool), ds.plan.initial, seed=1)
    x, y = ds.x[split.pool[first]], ds.y[split.pool[first]]
    expected = probe_metrics(x, y, ds.x[split.test], ds.y[split.test], 3).macro_f1
    assert run["curves"][learning.PROBE][1, 0] == pytest.approx(expected)


def test_only_frozen_feature_datasets_get_a_probe() -> None:
    ds = tiny_dataset()
    assert learning.has_probe(ds)
    image = type(ds)("img", "image", ds.x.reshape(-1, 1, 2, 4), ds.y, ds.labels, "test", ds.plan)
    assert not learning.has_probe(image)


def test_head_minus_probe_is_averaged_over_datasets_with_a_paired_interval(run: dict[str, Any]) -> None:
    point, low, high = models.mean_over_datasets({"a": run}, final=True)
    mean = {a: c.mean(axis=0) for a, c in run["curves"].items()}
    assert point == pytest.approx(models.final_gain(mean), abs=1e-4)
    assert low <= point <= high
    # A second dataset whose head is 0.1 better everywhere moves the mean over datasets by 0.05.
    better = {**run, "curves": {**run["curves"], models.HEAD: np.clip(run["curves"][models.HEAD] + 0.1, 0, None)}}
    one = models.mean_over_datasets({"a": run}, final=False)[0]
    two = models.mean_over_datasets({"a": run, "b": better}, final=False)[0]
    assert two == pytest.approx(one + 0.05, abs=2e-4)
