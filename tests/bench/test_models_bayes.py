"""bench/models_bayes.py: MC dropout, the ensemble and Laplace run the learning benchmark's loop alike."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

from bench import models_bayes as mb
from engine.learning_protocol import labels_spent
from tests.bench.test_learning import tiny_dataset


@pytest.fixture(scope="module")
def run() -> Iterator[dict[str, Any]]:
    """One seed, one acquisition cycle on the tiny dataset, one torch thread (as the benchmark runs)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield mb.curves_for(tiny_dataset(), range(1), cycles=1, pool_cap=None, heuristic=None)
    finally:
        torch.set_num_threads(threads)


def test_every_method_starts_from_the_same_labels_and_head(run: dict[str, Any]) -> None:
    curves = run["curves"]
    assert set(curves) == {mb.MC, mb.ENS, mb.LAP, mb.MEMBER0}
    assert run["grid"].tolist() == [labels_spent(6 + 4 * k, 9) for k in range(2)]
    # Cycle 0: the same initial labels; Laplace's MAP and the ensemble's member 0 are the head MC dropout trains.
    assert curves[mb.LAP][0, 0] == curves[mb.MC][0, 0] == curves[mb.MEMBER0][0, 0]
    for method in (mb.MC, mb.ENS, mb.LAP):
        assert set(run["calibration"][method]) == {"ece", "nll"}


def test_gains_are_paired_differences_averaged_over_datasets(run: dict[str, Any]) -> None:
    assert mb.mean_gain({"a": run}, mb.MC, mb.MC) == [0.0, 0.0, 0.0]
    shifted = {**run, "curves": {**run["curves"], mb.ENS: run["curves"][mb.MC] + 0.1}}
    point, low, high = mb.mean_gain({"a": shifted}, mb.ENS, mb.MC)
    assert point == pytest.approx(0.1) and low == pytest.approx(0.1) and high == pytest.approx(0.1)
    both = mb.mean_gain({"a": shifted, "b": run}, mb.ENS, mb.MC, final=True)[0]
    gain_b = float(run["curves"][mb.ENS][:, -1].mean() - run["curves"][mb.MC][:, -1].mean())
    assert both == pytest.approx((0.1 + gain_b) / 2, abs=1e-4)
    assert np.isfinite(run["curves"][mb.ENS]).all()
