"""Simulation comparisons: every arm starts from the same initial labeled set."""

from __future__ import annotations

from typing import Any

import pytest

from campaigns.models import SelectedItem
from campaigns.services.cycles import cycle_create
from campaigns.services.selection import selection_make
from campaigns.services.simulation import comparison_arms
from tests.campaigns.services.test_selection import _png, image_pool


def first_batch(project: Any, arm: dict[str, Any]) -> list[str]:
    cycle = cycle_create(project=project, budget=4, seed=3000, **arm)  # simulation_run's first seed for seed 3
    selection = selection_make(cycle=cycle)
    return list(SelectedItem.objects.filter(selection=selection).order_by("rank").values_list("item__key", flat=True))


@pytest.mark.django_db
@pytest.mark.parametrize("cold_start", ["random", "kmeans", "typiclust"])
def test_the_strategy_arm_and_the_random_arm_start_from_the_same_items(make_project: Any, cold_start: str) -> None:
    """Issue 14: the demo gave the strategy arm a k-means cold start and the random arm a random one."""
    arms = comparison_arms(strategy="diverse", heuristic="bald", cold_start=cold_start, mc_iterations=20)
    batches = []
    for arm in ("strategy", "random"):
        project = make_project(task_type="image_classification", model_config={"image_size": 8, "channels": 1})
        # The same pool in each project: six kinds of image.
        image_pool(project, [(f"k{i}", _png(10 + 100 * (i % 3), stripes=i % 2 == 0), 4) for i in range(6)])
        batches.append(first_batch(project, arms[arm]))
    assert batches[0] == batches[1] and len(batches[0]) == 4
    assert arms["strategy"]["strategy_params"]["cold_start"] == arms["random"]["strategy_params"]["cold_start"]
