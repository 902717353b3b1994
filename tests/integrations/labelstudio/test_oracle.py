"""The simulation's oracle annotator in the real Label Studio, and a cycle through sync → labels → pull → closed."""

from __future__ import annotations

from typing import Any

import pytest

from campaigns.models import Annotation, Cycle, Item, Project, SelectedItem
from campaigns.services.pipeline import cycle_run_sync, project_run_pull
from campaigns.states import CycleState
from engine.label_quality import simulated_answers
from integrations.labelstudio.client import LabelStudio
from integrations.labelstudio.oracle import oracle_annotate
from tests.integrations.labelstudio.builders import cold_cycle, ls_tasks, make_project

pytestmark = [pytest.mark.django_db, pytest.mark.integration]


def test_oracle_labels_exactly_the_cycle_tasks_and_the_pull_closes_the_cycle(
    ls_settings: Any, ls_pat_client: LabelStudio
) -> None:
    project = make_project(n=12)
    cycle = cold_cycle(project, budget=5)
    cycle_run_sync(cycle_id=cycle.pk)
    synced = Cycle.objects.get(pk=cycle.pk)
    # Out for labeling, the progress counts answers received of the items selected (issue 16 item 6).
    assert synced.state == CycleState.LABELING
    assert (synced.progress["stage"], synced.progress["done"], synced.progress["total"]) == ("labeling", 0, 5)

    assert oracle_annotate(cycle=cycle, seed=3) == 5
    assert oracle_annotate(cycle=cycle, seed=3) == 0  # a rerun answers nothing twice
    tasks = ls_tasks(ls_pat_client, project)
    assert sorted(len(t["annotations"]) for t in tasks) == [1] * 5

    project_run_pull(project_id=project.pk)
    cycle.refresh_from_db()
    assert cycle.state == CycleState.CLOSED and cycle.progress["done"] == 5
    selected = Item.objects.filter(selections__selection__cycle=cycle)
    assert all(i.label == i.ground_truth and i.label_source == "annotation" for i in selected)
    assert Item.objects.filter(project=project, label__isnull=False).count() == 5  # only the cycle's items
    lead_times = list(Annotation.objects.filter(project=project).values_list("lead_time", flat=True))
    assert len(lead_times) == 5 and all(2.0 <= t <= 20.0 for t in lead_times)


def test_oracle_draws_boxes_for_detection(ls_settings: Any, ls_pat_client: LabelStudio) -> None:
    project = make_project("object_detection", n=4)
    cycle = cold_cycle(project, budget=3)
    cycle_run_sync(cycle_id=cycle.pk)
    assert oracle_annotate(cycle=cycle) == 3
    project_run_pull(project_id=project.pk)
    for si in SelectedItem.objects.filter(selection__cycle=cycle).select_related("item"):
        (box,) = si.item.label
        (truth,) = si.item.ground_truth
        assert box["label"] == truth["label"]
        assert [box[k] for k in "xywh"] == pytest.approx([truth[k] for k in "xywh"], abs=1e-6)


def test_several_simulated_annotators_answer_as_their_own_label_studio_users(
    ls_settings: Any, ls_pat_client: LabelStudio
) -> None:
    project = make_project(n=10)
    Project.objects.filter(pk=project.pk).update(annotators_per_task=2)
    cycle = cold_cycle(project, budget=4)
    cycle_run_sync(cycle_id=cycle.pk)
    rates = [0.0, 0.5, 0.9]
    assert oracle_annotate(cycle=cycle, seed=5, annotators=rates) == 8  # two answers per task
    assert oracle_annotate(cycle=cycle, seed=5, annotators=rates) == 0  # a rerun answers nothing twice
    project_run_pull(project_id=project.pk)
    labels = list(project.labels)
    for item in Item.objects.filter(selections__selection__cycle=cycle):
        said = simulated_answers(item.ground_truth, labels, rates=rates, overlap=2, seed=5, key=item.key)
        stored = {a.annotator: a.value for a in Annotation.objects.filter(item=item)}
        assert stored == {f"{who}@alweb.local": value for who, value in said}
        assert item.label == said[0][1] or item.label == said[1][1]
        assert item.label_source == "consensus"
