"""Rows the dashboard tests (view and browser) start from, made through the services where one exists."""

from __future__ import annotations

from typing import Any

import numpy as np

from campaigns.models import Cycle, Item, Score
from campaigns.services.cycles import cycle_create, cycle_transition
from campaigns.services.score_stats import score_stats_freeze
from campaigns.states import CycleState
from tests.factories import ItemFactory, UserFactory


def user_with_password(username: str, password: str = "pw-for-tests") -> Any:
    user = UserFactory(username=username)
    user.set_password(password)  # a raw `password=` kwarg would replace the factory's hashing declaration
    user.save(update_fields=["password"])
    return user


def scored_cycle(project: Any, *, n: int = 60, seed: int = 0, budget: int = 10, **params: Any) -> Cycle:
    """A cycle in "scored" with one score per new pool item, as scoring leaves it: stats frozen, sorted copy stored.

    Uncertainties are drawn from a skewed Beta, so most items are fairly certain and a tail is not: the shape a
    real pool has, and one where moving the threshold changes the count a lot at first, then a little.
    """
    rng = np.random.default_rng(seed)
    start = Item.objects.filter(project=project).count()
    items = [
        ItemFactory(project=project, key=f"item-{start + i:04d}", split="pool", text=f"text {start + i}")
        for i in range(n)
    ]
    cycle = cycle_create(project=project, budget=budget, auto_advance=False, **params)
    uncertainties = rng.beta(1.5, 5.0, size=n) * 2.0
    labels = list(project.labels)
    Score.objects.bulk_create(
        Score(
            cycle=cycle,
            item=item,
            uncertainty=float(u),
            heuristic=cycle.heuristic,
            predicted_label=labels[i % len(labels)],
            confidence=float(1.0 - u / 2.0),
        )
        for i, (item, u) in enumerate(zip(items, uncertainties, strict=True))
    )
    cycle_transition(cycle_id=cycle.pk, to=CycleState.SCORING)
    cycle_transition(cycle_id=cycle.pk, to=CycleState.SCORED)
    cycle.refresh_from_db()
    score_stats_freeze(cycle=cycle)
    return cycle


def uncertainties(cycle: Cycle) -> list[float]:
    return list(Score.objects.filter(cycle=cycle).values_list("uncertainty", flat=True))
