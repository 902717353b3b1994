"""Strategies against random on a project's own labels (issue 14, section 4): sandboxes, the in-process oracle (which
selects exactly what the Label Studio round trip selects), the report and its recommendation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from campaigns.demo_data import TOPIC_LABELS, write_topics
from campaigns.models import Cycle, Item, Project, SelectedItem
from campaigns.services.comparison import (
    _report,
    oracle_answer_in_process,
    project_compare_strategies,
    sandbox_create,
)
from campaigns.services.cycles import cycle_create
from campaigns.services.items import items_import
from campaigns.services.pipeline import cycle_run_scoring, cycle_run_training
from campaigns.services.selection import selection_make
from campaigns.services.simulation import simulation_cycle
from campaigns.services.training import registry
from campaigns.states import CycleState

pytestmark = pytest.mark.django_db


def topics_project(make_project: Any, tmp_path: Path, n: int = 160) -> Any:
    project = make_project(
        task_type="text_classification",
        labels=TOPIC_LABELS,
        model_config={"epochs": 3, "min_steps": 30},
        split_ratios={"train": 0.0, "valid": 0.15, "test": 0.15, "pool": 0.7},
        eval_valid_target=8,
        eval_test_target=8,
    )
    items_import(project=project, path=write_topics(tmp_path / "topics", n=n))
    # The team's own labels: what the simulation's oracle answers with.
    for item in Item.objects.filter(project=project):
        item.label, item.ground_truth = item.ground_truth, None
        item.save(update_fields=["label", "ground_truth"])
    return project


def test_a_sandbox_has_no_label_and_the_labels_as_answer_key(make_project: Any, tmp_path: Path) -> None:
    project = topics_project(make_project, tmp_path, n=40)
    sandbox = sandbox_create(source=project, name="sandbox")
    copied = dict(Item.objects.filter(project=sandbox).values_list("key", "ground_truth"))
    assert copied == dict(Item.objects.filter(project=project).values_list("key", "label"))
    assert not Item.objects.filter(project=sandbox, label__isnull=False).exists()
    assert not sandbox.train_on_close
    # The oracle answers a cycle's selection in process and the cycle closes.
    cycle = cycle_create(project=sandbox, budget=5, auto_advance=False)
    selection = selection_make(cycle=cycle)
    assert oracle_answer_in_process(cycle=Cycle.objects.get(pk=cycle.pk)) == selection.size
    assert Cycle.objects.get(pk=cycle.pk).state == CycleState.CLOSED
    picked = Item.objects.filter(selections__selection=selection)
    assert all(i.label == i.ground_truth for i in picked) and picked.count() == selection.size


def test_report_reads_paired_curves_and_recommends_only_a_credible_winner() -> None:
    grid_x = [10.0, 20.0, 30.0, 40.0]
    random = [(grid_x, [0.3, 0.4, 0.5, 0.55]), (grid_x, [0.32, 0.41, 0.49, 0.56])]
    better = [(grid_x, [0.3, 0.5, 0.6, 0.65]), (grid_x, [0.32, 0.52, 0.61, 0.66])]
    project = Project(pk=1)
    report = _report(project, {"random": random, "topk": better}, seeds=2, cycles=3, budget=10, heuristic="bald")
    topk = next(a for a in report.arms if a.strategy == "topk")
    assert topk.auc_gain.low > 0 and topk.labels_fraction.value < 1
    assert report.recommendation.startswith("Use topk")
    worse = [(grid_x, list(np.asarray(y) - 0.05)) for _, y in random]
    report = _report(project, {"random": random, "topk": worse}, seeds=2, cycles=3, budget=10, heuristic="bald")
    assert report.recommendation.startswith("No strategy beat random")


@pytest.mark.slow
@pytest.mark.integration
def test_the_in_process_oracle_selects_what_the_label_studio_round_trip_selects(
    make_project: Any, tmp_path: Path, mlflow_store: str, ls_settings: Any
) -> None:
    """Large comparison grids use the in-process oracle: the same cycles through the real Label Studio pick the same
    items, cycle after cycle (the labels that come back are the same, so every later choice is too)."""
    project = topics_project(make_project, tmp_path, n=120)
    through_ls = sandbox_create(source=project, name="through LS")
    in_process = sandbox_create(source=project, name="in process")
    picks: dict[str, list[list[str]]] = {"ls": [], "local": []}
    for k in range(2):
        params = {"budget": 6, "heuristic": "bald", "strategy": "topk", "mc_iterations": 4}
        ls_cycle = simulation_cycle(project=through_ls, seed=k, **params)
        local = cycle_create(project=in_process, seed=k, auto_advance=False, **params)
        cycle_run_training(cycle_id=local.pk, chain=False)
        if Cycle.objects.get(pk=local.pk).state == CycleState.SCORING:
            cycle_run_scoring(cycle_id=local.pk)
        selection_make(cycle=Cycle.objects.get(pk=local.pk))
        oracle_answer_in_process(cycle=Cycle.objects.get(pk=local.pk))
        for name, cycle in (("ls", ls_cycle), ("local", local)):
            keys = SelectedItem.objects.filter(selection__cycle_id=cycle.pk).order_by("rank")
            picks[name].append(list(keys.values_list("item__key", flat=True)))
    assert picks["ls"] == picks["local"] and all(picks["ls"])
    assert dict(Item.objects.filter(project=through_ls).values_list("key", "label")) == dict(
        Item.objects.filter(project=in_process).values_list("key", "label")
    )


@pytest.mark.slow
def test_simulate_command_compares_a_strategy_with_random(
    make_project: Any, tmp_path: Path, mlflow_store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = topics_project(make_project, tmp_path)
    report = project_compare_strategies(project=project, strategies=["topk"], seeds=2, cycles=2, budget=10)
    assert [a.strategy for a in report.arms] == ["random", "topk"]
    assert all(len(a.curve) == 20 and 0 <= a.auc.value <= 1 for a in report.arms)
    assert report.recommendation
    # The project itself is untouched and its sandboxes are gone, with the models and runs they left in MLflow.
    assert Project.objects.count() == 1 and not Item.objects.filter(project=project, label__isnull=True).exists()
    assert registry().client.search_registered_models() == []
    assert [e.name for e in registry().client.search_experiments()] == ["Default"]
    with pytest.raises(CommandError, match="unknown nonsense"):
        call_command("simulate", str(project.pk), "--strategies", "nonsense")


def test_simulate_command_refuses_bad_simulated_annotators_naming_the_option(make_project: Any) -> None:
    project = make_project()
    with pytest.raises(CommandError, match="--noise-rate: must be a share"):
        call_command("simulate", str(project.pk), "--noise-rate", "1.5")
    with pytest.raises(CommandError, match="--annotators: every annotator"):
        call_command("simulate", str(project.pk), "--annotators", "0.1,2")
    with pytest.raises(CommandError, match="--annotators: error rates separated by commas"):
        call_command("simulate", str(project.pk), "--annotators", "0.1,x")
