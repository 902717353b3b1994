"""Re-labeling through the real Label Studio (issue 15): a noisy oracle labels a cycle, suspects go back as review
tasks (current label and the model's suggestion in the task, the suggestion as a prediction), the reviewer's answer
comes back with the ordinary pull and replaces the label with its history; sync and pull are idempotent."""

from __future__ import annotations

from typing import Any

import pytest

from campaigns.models import Annotation, Item, LabelChange, LabelQualityRun, LabelReview, LabelSuspect, RunState
from campaigns.services.pipeline import cycle_run_sync, project_run_pull, projects_to_pull
from campaigns.services.reviews import reviews_request
from integrations.labelstudio import client as lsc
from integrations.labelstudio import convert
from integrations.labelstudio.client import LabelStudio
from integrations.labelstudio.label_config import info_for
from integrations.labelstudio.oracle import oracle_annotate
from integrations.labelstudio.review_sync import BATCH_KEY, REVIEW_KEY, reviews_run_sync
from tests.integrations.labelstudio.builders import cold_cycle, ls_tasks, make_project, model_version

pytestmark = [pytest.mark.django_db, pytest.mark.integration]


def suspects_for(items: list[Item]) -> None:
    """A finished label-quality run suspecting these items, suggesting their true class (the ranking itself is
    tested against a real training in tests/campaigns/services/test_label_quality.py)."""
    project = items[0].project
    run = LabelQualityRun.objects.create(
        project=project,
        cycle=project.cycles.get(),
        model_version=model_version(project),
        state=RunState.DONE,
    )
    for rank, item in enumerate(items, start=1):
        LabelSuspect.objects.create(
            run=run,
            item=item,
            rank=rank,
            quality=0.01,
            label=item.label,
            suggested_label=item.ground_truth,
            suggested_probability=0.9,
        )


def test_suspects_go_back_for_review_and_the_decision_replaces_the_label(
    ls_settings: Any, ls_pat_client: LabelStudio, django_capture_on_commit_callbacks: Any
) -> None:
    project = make_project(n=12)
    cycle = cold_cycle(project, budget=4)
    cycle_run_sync(cycle_id=cycle.pk)
    project.refresh_from_db()  # connected to its LS project by the sync
    # A careless annotator: every answer flipped to another class.
    assert oracle_annotate(cycle=cycle, seed=1, noise_rate=1.0) == 4
    project_run_pull(project_id=project.pk)
    labeled = list(Item.objects.filter(project=project, label__isnull=False).order_by("pk"))
    assert len(labeled) == 4 and all(i.label != i.ground_truth and i.label_source == "annotation" for i in labeled)
    first, second, third = labeled[:3]
    wrong = first.label
    suspects_for([first, second, third])

    with django_capture_on_commit_callbacks(execute=False) as queued:
        reviews = reviews_request(project=project, item_ids=[first.pk, second.pk])
    assert len(queued) == 1  # the review sync task, after commit
    assert reviews_run_sync(project_id=project.pk) == 2
    assert reviews_run_sync(project_id=project.pk) == 0  # a redelivered task imports nothing twice

    # A crash between LS's import and alweb's save: LS holds the third review's task, alweb has only its token.
    [third_review] = reviews_request(project=project, item_ids=[third.pk])
    LabelReview.objects.filter(pk=third_review.pk).update(sync_batch="crashed0123456789")
    [orphan] = lsc.import_tasks(
        ls_pat_client,
        project_id=int(project.ls_project_id or 0),
        tasks=[{"data": {"text": third.text, REVIEW_KEY: third_review.pk, BATCH_KEY: "crashed0123456789"}}],
    )
    assert reviews_run_sync(project_id=project.pk) == 0
    assert LabelReview.objects.get(pk=third_review.pk).ls_task_id == orphan

    by_task = {t["id"]: t for t in ls_tasks(ls_pat_client, project)}
    review = LabelReview.objects.get(pk=reviews[0].pk)
    task = by_task[review.ls_task_id]
    assert review.sync_state == "synced" and review.item_id == first.pk
    assert task["data"]["alweb_current_label"] == first.label
    assert task["data"]["alweb_suggested_label"] == first.ground_truth
    assert first.ground_truth in task["data"]["alweb_review_note"]
    (prediction,) = task["predictions"]
    assert convert.result_to_labels(prediction["result"], known_labels=project.labels) == [first.ground_truth]
    assert len(by_task) == 4 + 3  # the cycle's tasks and one review task per review, none twice
    assert project.pk in projects_to_pull()  # reviews out in LS keep the periodic pull going

    info = info_for(project.task_type, project.labels)
    # The reviewer accepts the suggestion on the first review task; nobody answers the others yet.
    ls_pat_client.annotations.create(
        id=review.ls_task_id,
        result=convert.choice_result(first.ground_truth, from_name=info.from_name, to_name=info.to_name),
        request_options=lsc.NO_RETRY,
    )
    project_run_pull(project_id=project.pk)
    first.refresh_from_db()
    assert (first.label, first.label_source) == (first.ground_truth, "review")
    review.refresh_from_db()
    assert (review.state, review.decision) == ("decided", first.ground_truth) and review.ls_annotation_id
    change = LabelChange.objects.filter(item=first).order_by("-id").first()
    assert change is not None and (change.old_value, change.new_value, change.source) == (
        wrong,
        first.ground_truth,
        "review",
    )
    assert change.annotator  # the reviewer, as Label Studio names them
    # The review task's answer is a decision, not one more annotation of the item's own task.
    assert Annotation.objects.filter(item=first).count() == 1

    # A late second answer on the decided review changes nothing; the other reviews stay open.
    other = next(label for label in project.labels if label != first.ground_truth)
    ls_pat_client.annotations.create(
        id=review.ls_task_id,
        result=convert.choice_result(other, from_name=info.from_name, to_name=info.to_name),
        request_options=lsc.NO_RETRY,
    )
    project_run_pull(project_id=project.pk, task_ids=[review.ls_task_id])
    assert Item.objects.get(pk=first.pk).label == first.ground_truth
    assert LabelReview.objects.filter(project=project, state="open").count() == 2
