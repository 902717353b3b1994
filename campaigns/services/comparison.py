""" "What would active learning save me on my data?": strategies against random sampling, on a project's own labels.

A team that already has labeled data runs the product's own loop on it, as a simulation: for every (strategy, seed)
a sandbox copy of the project starts with no label at all, its items' labels becoming the answer key of an oracle
annotator; each cycle trains, scores, selects (the evaluation sample included) and the oracle answers in process,
exactly the labels the product's Label Studio round trip would bring back (`tests/campaigns/services/
test_comparison.py` checks both paths select the same items). The learning curves (macro-F1 on the oracle's test
labels against labels spent) are compared with the benchmark's protocol (`engine.learning_protocol`): paired
seeds, one interpolation for every arm, 95% bootstrap intervals. The sandboxes are deleted afterwards.

A sandbox is a Project marked `sandbox_of` its source (and `sandbox_run`, when a `SimulationRun` made it): no list a
person sees shows it, and one left behind by a worker that died is deleted by `sandboxes_delete`.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.db import transaction
from django.db.models import QuerySet
from mlflow.exceptions import MlflowException

from campaigns.models import (
    MAX_ANNOTATORS_PER_TASK,
    Annotation,
    ColdStart,
    Cycle,
    Heuristic,
    Item,
    LabelSource,
    Project,
    SelectedItem,
    Strategy,
)
from campaigns.selectors import project_learning_curve
from campaigns.services.annotations import resolve
from campaigns.services.closing import cycles_close_if_labeled
from campaigns.services.cycles import cycle_create, cycle_transition
from campaigns.services.label_history import item_labels_set
from campaigns.services.pipeline import cycle_run_closing_training, cycle_run_scoring, cycle_run_training
from campaigns.services.projects import project_delete
from campaigns.services.selection import selection_make
from campaigns.services.training import (
    RegistryUnavailable,
    experiment_name,
    mlflow_errors,
    registered_name,
    registry,
)
from campaigns.states import CycleState
from engine import learning_protocol as lp
from engine.label_quality import Noise, noisy_answer, simulated_answers

log = logging.getLogger(__name__)
S = CycleState
BASELINE = "random"


# Upper bounds, so that one run ends within a task's time limit (CELERY_TASK_SOFT_TIME_LIMIT): every arm of every
# seed trains `cycles` models plus a closing one.
MAX_SEEDS = 10
MAX_CYCLES = 20
MAX_BUDGET = 10_000


class ComparisonError(ValueError):
    """The project cannot be simulated as asked (no answer key, too few items, unknown strategy), naming the
    parameter at fault: `field` is one of strategies, seeds, cycles, budget, heuristic, noise_rate, annotators."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def comparison_validate(
    *, project: Project, strategies: Sequence[str], seeds: int, cycles: int, budget: int, heuristic: str
) -> list[str]:
    """Refuse what cannot be simulated, naming the parameter; returns the arms, random first."""
    unknown = sorted(set(strategies) - set(Strategy.values))
    if unknown:
        raise ComparisonError("strategies", f"unknown {', '.join(unknown)} (known: {', '.join(Strategy.values)})")
    arms = [BASELINE, *dict.fromkeys(s for s in strategies if s != BASELINE)]
    if len(arms) < 2:
        raise ComparisonError("strategies", "name at least one strategy to compare with random")
    if heuristic not in Heuristic.values:
        raise ComparisonError("heuristic", f"unknown {heuristic!r} (known: {', '.join(Heuristic.values)})")
    if not 2 <= seeds <= MAX_SEEDS:
        raise ComparisonError("seeds", f"from 2 (paired seeds, for an interval) to {MAX_SEEDS}")
    if not 1 <= cycles <= MAX_CYCLES:
        raise ComparisonError("cycles", f"from 1 to {MAX_CYCLES}")
    if not 1 <= budget <= MAX_BUDGET:
        raise ComparisonError("budget", f"from 1 to {MAX_BUDGET}")
    answered = _answered(project).count()
    if answered < budget * cycles * 2:
        raise ComparisonError(
            "budget",
            f"only {answered} items have a label to simulate with: too few for {cycles} cycles of {budget} "
            f"(at least 2 x budget x cycles)",
        )
    return arms


def _answered(project: Project) -> QuerySet[Item]:
    """The items a sandbox copies: active ones with a label (or a ground truth) to answer with."""
    return Item.objects.filter(project=project, state="active").exclude(label__isnull=True, ground_truth__isnull=True)


@dataclass(frozen=True)
class ArmResult:
    strategy: str
    auc: lp.Estimate
    auc_gain: lp.Estimate  # AUC(strategy) - AUC(random), paired over seeds
    labels_fraction: lp.Estimate  # labels to reach random's final macro-F1, over random's
    curve: list[tuple[float, float]]  # the mean curve on the common grid: (labels spent, macro-F1)


@dataclass(frozen=True)
class ComparisonReport:
    project: int
    seeds: int
    cycles: int
    budget: int
    heuristic: str
    grid: list[float]
    arms: list[ArmResult] = field(default_factory=list)
    recommendation: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "seeds": self.seeds,
            "cycles": self.cycles,
            "budget": self.budget,
            "heuristic": self.heuristic,
            "recommendation": self.recommendation,
            "arms": [
                {
                    "strategy": a.strategy,
                    "auc": a.auc.as_json(),
                    "auc_gain_vs_random": a.auc_gain.as_json(),
                    "labels_fraction_vs_random": a.labels_fraction.as_json(),
                    "curve": [[round(x, 1), round(y, 4)] for x, y in a.curve],
                }
                for a in self.arms
            ],
        }


_COPIED = ("key", "split", "state", "text", "media", "url", "media_width", "media_height", "metadata", "source")


def sandbox_create(*, source: Project, name: str, run_id: int | None = None) -> Project:
    """A copy of `source` with no label: its items' labels (or, failing that, their ground truth) become the answer
    key. Media files are shared, not copied: deleting the sandbox deletes rows, never files. Marked as a sandbox (of
    `source`, made by run `run_id`), so that no project list shows it."""
    answered = _answered(source)
    with transaction.atomic():
        sandbox = Project.objects.create(
            name=name,
            task_type=source.task_type,
            labels=list(source.labels),
            split_ratios=dict(source.split_ratios),
            model_config=dict(source.model_config or {}),
            default_heuristic=source.default_heuristic,
            default_mc_iterations=source.default_mc_iterations,
            default_budget=source.default_budget,
            eval_valid_target=source.eval_valid_target,
            eval_test_target=source.eval_test_target,
            # The simulated annotators answer as many times per item as the project's people would.
            annotators_per_task=source.annotators_per_task,
            consensus_rule=source.consensus_rule,
            train_on_close=False,  # the comparison trains its closing points itself, in this process
            owner=source.owner,
            sandbox_of=source,
            sandbox_run_id=run_id,
        )
        # In the source's id order: every copy then lists (and trains on) its items in the same order.
        rows = answered.order_by("pk").values(*_COPIED, "label", "ground_truth").iterator(chunk_size=5000)
        batch: list[Item] = []
        for row in rows:
            answer = row.pop("label") if row["label"] is not None else row["ground_truth"]
            row.pop("ground_truth", None)
            batch.append(Item(project=sandbox, ground_truth=answer, **row))
            if len(batch) == 5000:
                Item.objects.bulk_create(batch)
                batch = []
        Item.objects.bulk_create(batch)
    return sandbox


def sandboxes_delete(*, sandboxes: QuerySet[Project]) -> int:
    """Delete these sandboxes (and everything under them), one by one through `project_delete`; refuses anything that
    is not a sandbox. Returns how many were deleted."""
    deleted = 0
    for sandbox in sandboxes.filter(sandbox_of__isnull=False).order_by("pk"):
        _sandbox_delete(sandbox)
        deleted += 1
    return deleted


def _sandbox_delete(sandbox: Project) -> None:
    """The sandbox's rows, then its models and runs in MLflow: a comparison trains dozens of throwaway versions,
    which would crowd the registry's list of a team's real ones. An unreachable MLflow keeps them (logged); the
    rows go whatever happens."""
    name, experiment = registered_name(sandbox), experiment_name(sandbox)
    project_delete(project=sandbox)
    try:
        with mlflow_errors():
            registry().discard(registered_name=name, experiment=experiment)
    except (RegistryUnavailable, MlflowException) as exc:
        log.warning("sandbox models %s left in MLflow: %s", name, exc)


def oracle_answer_in_process(
    *, cycle: Cycle, noise_rate: float = 0.0, noise_seed: int = 0, annotators: Sequence[float] = ()
) -> int:
    """The simulated annotator without Label Studio: every selected item gets its answer key as its label (what the
    Label Studio oracle's annotations resolve to), then the cycle closes. Returns how many were answered.

    `noise_rate`: a share of classification answers flipped to another class, seeded by `noise_seed` and the item's
    key (the same item gets the same answer in every arm of a comparison), as a careless annotator would.
    `annotators`: several simulated annotators instead (their error rates); the project's annotators per task answer
    each item and the majority of their answers is its label (the "majority" rule of `annotations.resolve`: a quorum
    could leave an item unlabeled, and a sandbox cycle open, for good)."""
    selected = SelectedItem.objects.filter(selection__cycle=cycle, item__label__isnull=True).values("item_id")
    truth = Item.objects.filter(pk__in=selected, ground_truth__isnull=False).values_list("pk", "key", "ground_truth")
    labels, overlap = list(cycle.project.labels), cycle.project.annotators_per_task

    def answer(key: str, t: str) -> Any:
        if not annotators:
            return noisy_answer(t, labels, rate=noise_rate, seed=noise_seed, key=key)
        said = simulated_answers(t, labels, rates=annotators, overlap=overlap, seed=noise_seed, key=key)
        return resolve([Annotation(annotator=who, value=value) for who, value in said])[0]

    # Boxes (detection) are answered as they are: the noise flips classes.
    answers = {pk: answer(key, t) if isinstance(t, str) else t for pk, key, t in truth}
    answered = item_labels_set(labels=answers, source=LabelSource.SIMULATION, annotator="oracle")
    cycle_transition(cycle_id=cycle.pk, to=S.SYNCING, from_states=[S.SELECTED])
    cycle_transition(cycle_id=cycle.pk, to=S.LABELING, from_states=[S.SYNCING])
    cycles_close_if_labeled(project=cycle.project)
    return answered


def noise_validate(*, noise_rate: Any, annotators: Any) -> Noise:
    """Check the simulated annotators' error rates (ComparisonError naming `noise_rate` or `annotators`)."""

    def rate_ok(value: Any) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 1

    if not rate_ok(noise_rate):
        raise ComparisonError("noise_rate", "must be a share of wrong answers in [0, 1)")
    if not isinstance(annotators, list | tuple) or len(annotators) > MAX_ANNOTATORS_PER_TASK:
        raise ComparisonError("annotators", f"must be a list of at most {MAX_ANNOTATORS_PER_TASK} error rates")
    if not all(rate_ok(a) for a in annotators):
        raise ComparisonError("annotators", "every annotator's error rate must be a number in [0, 1)")
    if annotators and noise_rate:
        raise ComparisonError("noise_rate", "give noise_rate (one annotator) or annotators (several), not both")
    return Noise(float(noise_rate), tuple(float(a) for a in annotators))


def _run_arm(
    sandbox: Project, *, strategy: str, heuristic: str, cycles: int, budget: int, seed: int, noise: Noise
) -> None:
    for k in range(cycles):
        # The cycle seed depends on (seed, k) only: every arm of a seed starts from the same first batch.
        cycle = cycle_create(
            project=sandbox,
            seed=lp.seed_for(seed, k),
            budget=budget,
            heuristic=heuristic,
            strategy=strategy,
            # The same first batch for every arm: a strategy's own cold start (k-means for diverse) would credit it
            # with a different initial labeled set; the cold start is an ablation of its own.
            strategy_params={"cold_start": ColdStart.RANDOM.value},
            auto_advance=False,
        )
        cycle_run_training(cycle_id=cycle.pk, chain=False)
        if Cycle.objects.get(pk=cycle.pk).state == S.SCORING:
            cycle_run_scoring(cycle_id=cycle.pk)
        selection_make(cycle=Cycle.objects.select_related("project", "model_version").get(pk=cycle.pk))
        oracle_answer_in_process(
            cycle=Cycle.objects.select_related("project").get(pk=cycle.pk),
            noise_rate=noise.rate,
            annotators=noise.annotators,
            noise_seed=seed,  # the same answers in every arm of a seed
        )
    last = Cycle.objects.filter(project=sandbox, state=S.CLOSED).order_by("-number").first()
    if last is not None:
        cycle_run_closing_training(cycle_id=last.pk, chain=False)


def _curve(project: Project) -> tuple[list[float], list[float]]:
    points = [p for p in project_learning_curve(project=project) if p["macro_f1"] is not None]
    return [float(p["labels_spent"]) for p in points], [float(p["macro_f1"]) for p in points]


def project_compare_strategies(
    *,
    project: Project,
    strategies: Sequence[str],
    seeds: int = 3,
    cycles: int = 4,
    budget: int = 20,
    heuristic: str = Heuristic.MARGIN,
    on_progress: Callable[[int, int], None] | None = None,
    run_id: int | None = None,
    noise: Noise | None = None,
) -> ComparisonReport:
    """Run each strategy and random with `seeds` paired seeds through the product's loop on sandboxes of the
    project; compare their learning curves. Raises ComparisonError for what cannot be simulated. `on_progress(done,
    total)` runs after each arm (an exception from it stops the comparison, its sandbox deleted); `run_id` marks the
    sandboxes as that SimulationRun's; `noise` sets the simulated annotators (`noise_validate`), exact by default."""
    arms = comparison_validate(
        project=project, strategies=strategies, seeds=seeds, cycles=cycles, budget=budget, heuristic=heuristic
    )
    curves: dict[str, list[tuple[list[float], list[float]]]] = {a: [] for a in arms}
    total, done = len(arms) * seeds, 0
    for seed in range(seeds):
        for arm in arms:
            name = f"{project.name} [simulation {arm} seed {seed} {uuid.uuid4().hex[:6]}]"
            sandbox = sandbox_create(source=project, name=name[-200:], run_id=run_id)
            try:
                _run_arm(
                    sandbox,
                    strategy=arm,
                    heuristic=heuristic,
                    cycles=cycles,
                    budget=budget,
                    seed=seed,
                    noise=noise or Noise(),
                )
                curves[arm].append(_curve(sandbox))
            finally:
                _sandbox_delete(sandbox)
            done += 1
            if on_progress is not None:
                on_progress(done, total)
    return _report(project, curves, seeds=seeds, cycles=cycles, budget=budget, heuristic=heuristic)


def _report(
    project: Project,
    curves: dict[str, list[tuple[list[float], list[float]]]],
    *,
    seeds: int,
    cycles: int,
    budget: int,
    heuristic: str,
) -> ComparisonReport:
    # One common grid inside every run's span: no arm is extrapolated.
    lo = max(x[0] for runs in curves.values() for x, _ in runs)
    hi = min(x[-1] for runs in curves.values() for x, _ in runs)
    if not hi > lo:
        raise ComparisonError("cycles", "the runs have no common range of labels spent: too few points to compare")
    grid = np.linspace(lo, hi, 20)
    on = {a: np.stack([lp.on_grid(np.asarray(x), np.asarray(y), grid) for x, y in runs]) for a, runs in curves.items()}
    results = []
    for arm in curves:
        mean = on[arm].mean(axis=0)
        results.append(
            ArmResult(
                strategy=arm,
                auc=lp.paired_bootstrap(on, lp.auc_stat(grid, arm)),
                auc_gain=lp.paired_bootstrap(on, lp.auc_gain_stat(grid, arm, BASELINE)),
                labels_fraction=lp.paired_bootstrap(on, lp.labels_fraction_stat(grid, arm, BASELINE)),
                curve=list(zip(grid.tolist(), mean.tolist(), strict=True)),
            )
        )
    return ComparisonReport(
        project=project.pk,
        seeds=seeds,
        cycles=cycles,
        budget=budget,
        heuristic=heuristic,
        grid=grid.tolist(),
        arms=results,
        recommendation=_recommend(results),
    )


def _recommend(results: list[ArmResult]) -> str:
    """The strategy with the best AUC among those credibly not worse than random (interval above 0), in words."""
    credible = [r for r in results if r.strategy != BASELINE and r.auc_gain.low > 0]
    if not credible:
        return (
            "No strategy beat random sampling credibly on this data (every AUC gain's 95% interval reaches 0 or "
            "below): label at random, or try more seeds, cycles or a stronger model."
        )
    best = max(credible, key=lambda r: r.auc.value)
    fraction = best.labels_fraction.value
    saving = "" if math.isinf(fraction) else f", reaching random's final macro-F1 with {fraction:.0%} of its labels"
    return f"Use {best.strategy}: mean macro-F1 over the budget {best.auc_gain.value:+.3f} against random{saving}."
