"""Simulation mode: run the active-learning loop unattended on items with known ground truth.

An oracle annotator answers in Label Studio through its API, as a human would, on exactly the tasks alweb synced;
the pull brings the answers back through the same path as real annotations. Each cycle runs the same steps the
Celery tasks run, in this process, so a simulation needs no worker. Users compare strategies on their own labeled
data this way before paying annotators; `manage.py demo` builds on it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from campaigns.models import Cycle, Project
from campaigns.selectors import project_learning_curve
from campaigns.services.cycles import cycle_create
from campaigns.services.pipeline import (
    cycle_run_closing_training,
    cycle_run_scoring,
    cycle_run_sync,
    cycle_run_training,
    project_run_pull,
)
from campaigns.services.selection import selection_make
from campaigns.states import CycleState
from engine.label_quality import Noise
from integrations.labelstudio.oracle import oracle_annotate

log = logging.getLogger(__name__)
S = CycleState


class SimulationError(RuntimeError):
    """The loop stopped somewhere it should not (a cycle failed, the oracle could not answer)."""


@dataclass(frozen=True, slots=True)
class Point:
    labels: int
    accuracy: float
    macro_f1: float


def simulation_cycle(*, project: Project, seed: int, noise: Noise | None = None, **params: Any) -> Cycle:
    """One full cycle: train (or cold start) → score → select → sync → the oracle labels in LS → pull → closed.
    `noise`: the simulated annotators (`comparison.noise_validate`); one exact oracle by default."""
    cycle = cycle_create(project=project, seed=seed, auto_advance=False, **params)
    cycle_run_training(cycle_id=cycle.pk, chain=False)
    cycle.refresh_from_db()
    if cycle.state == S.SCORING:
        cycle_run_scoring(cycle_id=cycle.pk)
        cycle.refresh_from_db()
    if cycle.state == S.SCORED:
        selection_make(cycle=cycle)
        cycle.refresh_from_db()
    if cycle.state != S.SELECTED:
        raise SimulationError(f"cycle {cycle.number} is {cycle.state}: {cycle.failure_reason}")
    cycle_run_sync(cycle_id=cycle.pk)
    noise = noise or Noise()
    answered = oracle_annotate(
        cycle=Cycle.objects.get(pk=cycle.pk), seed=seed, noise_rate=noise.rate, annotators=noise.annotators
    )
    project_run_pull(project_id=project.pk)
    cycle.refresh_from_db()
    if cycle.state != S.CLOSED:
        raise SimulationError(f"cycle {cycle.number} still {cycle.state} after the oracle answered {answered} tasks")
    return cycle


def simulation_evaluate(*, project: Project, seed: int) -> None:
    """The last point of the learning curve: the last closed cycle's closing model, trained on every label collected
    (in this process: a simulation runs its steps itself and sends no task)."""
    last = Cycle.objects.filter(project=project, state=S.CLOSED).order_by("-number").first()
    if last is not None:
        cycle_run_closing_training(cycle_id=last.pk)


def simulation_run(
    *,
    project: Project,
    cycles: int,
    budget: int,
    seed: int,
    heuristic: str,
    strategy: str = "topk",
    strategy_params: dict[str, Any] | None = None,
    mc_iterations: int = 20,
    on_cycle: Callable[[Cycle], None] | None = None,
    noise: Noise | None = None,
) -> list[Point]:
    """`cycles` cycles of `budget` labels each (the first is a cold start when nothing is labeled), then a final
    evaluation; returns the learning curve (labels → test accuracy and macro-F1)."""
    # The closing trainings run inline (simulation_evaluate), not as tasks no worker of this process would take.
    Project.objects.filter(pk=project.pk).update(train_on_close=False)
    for k in range(cycles):
        cycle = simulation_cycle(
            project=project,
            seed=seed * 1000 + k,
            budget=budget,
            heuristic=heuristic,
            strategy=strategy,
            strategy_params=strategy_params or {},
            mc_iterations=mc_iterations,
            noise=noise,
        )
        if on_cycle is not None:
            on_cycle(cycle)
    simulation_evaluate(project=project, seed=seed * 1000 + cycles)
    return [
        Point(p["labels_spent"], float(p["accuracy"]), float(p["macro_f1"]))
        for p in project_learning_curve(project=project)
        if p["accuracy"] is not None
    ]


def labels_to_reach(curve: list[Point], target: float, *, metric: str = "accuracy") -> float | None:
    """Labels at which a (mean) learning curve first reaches `target` (accuracy or macro_f1), interpolating linearly
    between the two points around the crossing; None when the curve never reaches it.

    Every arm of a comparison goes through this same function, the baseline included, so no side is read at a
    measured point while the other is interpolated."""
    for prev, point in zip([None, *curve[:-1]], curve, strict=True):
        value = getattr(point, metric)
        if value >= target:
            if prev is None or value == (before := getattr(prev, metric)):
                return float(point.labels)
            frac = (target - before) / (value - before)
            return prev.labels + frac * (point.labels - prev.labels)
    return None


def comparison_arms(
    *,
    strategy: str,
    heuristic: str,
    cold_start: str,
    mc_iterations: int,
    strategy_params: dict[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """`simulation_run` arguments of the strategy arm and the random arm of a comparison.

    Both arms get the same cold start (method, and the seed `simulation_run` derives): their first batch, the
    initial labeled set, is identical, so the curves differ only by what the strategy chose afterwards. The cold
    start is an ablation of its own, never a head start for one arm."""
    return {
        "strategy": {
            "heuristic": heuristic,
            "strategy": strategy,
            "strategy_params": {**(strategy_params or {}), "cold_start": cold_start},
            "mc_iterations": mc_iterations,
        },
        "random": {
            "heuristic": "random",
            "strategy": "topk",
            "strategy_params": {"cold_start": cold_start},
            "mc_iterations": 1,
        },
    }


def mean_curve(curves: list[list[Point]]) -> tuple[list[Point], list[float]]:
    """Pointwise mean over seeds (curves share label counts: same budgets) and the accuracy spread (std)."""
    n = min(len(c) for c in curves)
    acc = np.array([[c[i].accuracy for i in range(n)] for c in curves])
    f1 = np.array([[c[i].macro_f1 for i in range(n)] for c in curves])
    labels = [int(np.mean([c[i].labels for c in curves])) for i in range(n)]
    mean = [Point(labels[i], float(acc[:, i].mean()), float(f1[:, i].mean())) for i in range(n)]
    return mean, [float(v) for v in acc.std(axis=0)]
