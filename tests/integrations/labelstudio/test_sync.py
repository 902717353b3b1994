"""Sync against a real Label Studio: tasks with predictions, LS's own task stream in alweb's order, idempotence."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest

from campaigns.models import Cycle, Item, Project, SelectedItem
from campaigns.services.cycles import cycle_cancel
from integrations.labelstudio import client as lsc
from integrations.labelstudio import convert, sync_rows
from integrations.labelstudio import sync as ls_sync
from integrations.labelstudio.client import LabelStudio
from integrations.labelstudio.sync import cycle_sync_to_labelstudio
from tests.integrations.labelstudio.builders import (
    cold_cycle,
    doubled_posts,
    duplicates,
    ls_tasks,
    make_project,
    model_version,
    scored_cycle,
    selection_of,
)

pytestmark = [pytest.mark.django_db, pytest.mark.integration]


class Killed(BaseException):
    """A process death: not an Exception, so nothing on the way may swallow it."""


def uncertainties(keys: list[str], seed: int = 0) -> dict[str, float]:
    rng = random.Random(seed)
    return {k: round(rng.uniform(0.01, 2.5), 6) for k in keys}


def keys(n: int, start: int = 0) -> list[str]:
    return [f"item-{i:04d}" for i in range(start, start + n)]


def served_order(client: LabelStudio, project: Project, count: int) -> list[str]:
    """Keys in the order LS's labeling stream serves them (each answered so the next one comes)."""
    out = []
    for _ in range(count):
        task = lsc.next_task(client, project_id=project.ls_project_id or 0)
        assert task is not None
        out.append(task["data"]["alweb_key"])
        lsc._request(client, "POST", f"api/tasks/{task['id']}/annotations/", json={"result": [], "lead_time": 1})
    return out


def test_sync_pushes_tasks_and_ls_serves_alweb_most_informative_first(
    ls_settings: Any, ls_pat_client: LabelStudio
) -> None:
    project = make_project(n=30)
    scores = uncertainties(keys(30))
    cycle = scored_cycle(project, scores, budget=10)
    result = cycle_sync_to_labelstudio(cycle=cycle)
    assert (result.tasks_created, result.duplicates_removed) == (10, 0)

    project.refresh_from_db()
    rows = list(SelectedItem.objects.filter(selection__cycle=cycle).select_related("item").order_by("rank"))
    assert all(si.sync_state == "synced" and si.ls_task_id == si.item.ls_task_id for si in rows)
    tasks = {t["id"]: t for t in ls_tasks(ls_pat_client, project)}
    assert set(tasks) == {si.ls_task_id for si in rows}
    for si in rows:
        task = tasks[si.ls_task_id]
        assert task["data"]["text"] == si.item.text
        assert (task["data"]["alweb_key"], task["data"]["alweb_item"]) == (si.item.key, si.item.pk)
        (pred,) = task["predictions"]
        assert pred["model_version"] == "alweb-v1"
        assert pred["score"] == pytest.approx(convert.uncertainty_to_ls_score(si.uncertainty or 0))
        assert convert.result_to_labels(pred["result"], known_labels=project.labels) == [si.predicted_label]
    assert lsc.get_project(ls_pat_client, project.ls_project_id or 0).model_version == "alweb-v1"
    progress = Cycle.objects.get(pk=cycle.pk).progress
    assert (progress["stage"], progress["done"], progress["total"]) == ("syncing", 10, 10)

    top = sorted(scores, key=lambda k: -scores[k])[:3]
    assert served_order(ls_pat_client, project, 3) == top


def test_cold_start_keeps_alweb_rank_order_in_ls(ls_settings: Any, ls_pat_client: LabelStudio) -> None:
    project = make_project(n=25)
    cycle = cold_cycle(project, budget=8)
    cycle_sync_to_labelstudio(cycle=cycle)
    project.refresh_from_db()
    ranked = list(
        SelectedItem.objects.filter(selection__cycle=cycle).order_by("rank").values_list("item__key", flat=True)
    )
    tasks = ls_tasks(ls_pat_client, project)
    assert {p["model_version"] for t in tasks for p in t["predictions"]} == {f"cold-start-c{cycle.number}"}
    assert all(p["result"] == [] for t in tasks for p in t["predictions"])
    assert served_order(ls_pat_client, project, 4) == ranked[:4]


def test_items_already_in_ls_get_only_the_new_prediction(ls_settings: Any, ls_pat_client: LabelStudio) -> None:
    project = make_project(n=20)
    first = scored_cycle(project, uncertainties(keys(6)), budget=6)
    cycle_sync_to_labelstudio(cycle=first)
    before = dict(Item.objects.filter(project=project, ls_task_id__isnull=False).values_list("key", "ls_task_id"))
    cycle_cancel(cycle=first)

    second_scores = {k: 3.0 - i * 0.1 for i, k in enumerate(keys(8, start=3))}  # 3 overlap with the first cycle
    second = scored_cycle(project, second_scores, budget=8)
    result = cycle_sync_to_labelstudio(cycle=second)
    assert (result.tasks_created, result.predictions_created) == (5, 8)
    after = dict(Item.objects.filter(project=project, ls_task_id__isnull=False).values_list("key", "ls_task_id"))
    assert all(after[k] == v for k, v in before.items())  # same tasks, never re-imported
    tasks = ls_tasks(ls_pat_client, project)
    assert len(tasks) == 11 and duplicates(tasks) == (0, 0)
    by_key = {t["data"]["alweb_key"]: t for t in tasks}
    assert sorted(p["model_version"] for p in by_key["item-0004"]["predictions"]) == ["alweb-v1", "alweb-v2"]
    assert lsc.get_project(ls_pat_client, project.ls_project_id or 0).model_version == "alweb-v2"
    # The overlap item ranked first in cycle 2 is served first although it was imported in cycle 1.
    assert served_order(ls_pat_client, project, 2) == ["item-0003", "item-0004"]


def test_five_syncs_leave_one_task_per_item(ls_settings: Any, ls_pat_client: LabelStudio) -> None:
    project = make_project(n=15)
    cycle = scored_cycle(project, uncertainties(keys(15)), budget=12)
    results = [cycle_sync_to_labelstudio(cycle=cycle) for _ in range(5)]
    assert [r.tasks_created for r in results] == [12, 0, 0, 0, 0]
    tasks = ls_tasks(ls_pat_client, project)
    assert len(tasks) == 12 and duplicates(tasks) == (0, 0)


def test_a_doubled_task_import_is_found_and_undone(ls_settings: Any, ls_pat_client: LabelStudio, settings: Any) -> None:
    settings.ALWEB_LS_SYNC_BATCH = 4
    project = make_project(n=12)
    cycle = scored_cycle(project, uncertainties(keys(10)), budget=10)
    with doubled_posts("/import") as doubled:
        result = cycle_sync_to_labelstudio(cycle=cycle)
    assert len(doubled) == 3  # batches of 4, 4, 2, each delivered twice
    assert result.duplicates_removed == 10
    tasks = ls_tasks(ls_pat_client, project)
    assert len(tasks) == 10 and duplicates(tasks) == (0, 0)
    saved = set(SelectedItem.objects.filter(selection__cycle=cycle).values_list("ls_task_id", flat=True))
    assert saved == {t["id"] for t in tasks}  # alweb points at the tasks that stayed


def test_a_pass_starts_with_a_small_batch_then_full_ones(
    ls_settings: Any, ls_pat_client: LabelStudio, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first POST of a pass carries FIRST_BATCH tasks (LS starts sooner), the rest ALWEB_LS_SYNC_BATCH each,
    in rank order; every item once."""
    settings.ALWEB_LS_SYNC_BATCH = 5
    monkeypatch.setattr(ls_sync, "FIRST_BATCH", 2)
    project = make_project(n=14)
    cycle = scored_cycle(project, uncertainties(keys(12)), budget=12)
    assert cycle_sync_to_labelstudio(cycle=cycle).tasks_created == 12
    tasks = sorted(ls_tasks(ls_pat_client, project), key=lambda t: t["id"])
    tokens = [t["data"][sync_rows.BATCH_KEY] for t in tasks]
    sizes = [len(list(group)) for _, group in itertools.groupby(tokens)]
    assert sizes == [2, 5, 5] and len(set(tokens)) == 3 and duplicates(tasks) == (0, 0)
    ranked = SelectedItem.objects.filter(selection__cycle=cycle).order_by("rank").values_list("ls_task_id", flat=True)
    assert list(ranked) == [t["id"] for t in tasks]


def test_a_doubled_predictions_import_is_found_and_undone(ls_settings: Any, ls_pat_client: LabelStudio) -> None:
    project = make_project(n=10)
    first = scored_cycle(project, uncertainties(keys(5)), budget=5)
    cycle_sync_to_labelstudio(cycle=first)
    cycle_cancel(cycle=first)
    second = scored_cycle(project, uncertainties(keys(5), seed=1), budget=5)
    with doubled_posts("/import/predictions") as doubled:
        result = cycle_sync_to_labelstudio(cycle=second)
    assert doubled and result.duplicates_removed == 5
    tasks = ls_tasks(ls_pat_client, project)
    assert len(tasks) == 5 and duplicates(tasks) == (0, 0)
    assert all(sorted(p["model_version"] for p in t["predictions"]) == ["alweb-v1", "alweb-v2"] for t in tasks)


@pytest.mark.parametrize("crash_on_save", [1, 2])
def test_a_crash_between_import_and_save_is_recovered(
    ls_settings: Any, ls_pat_client: LabelStudio, settings: Any, monkeypatch: pytest.MonkeyPatch, crash_on_save: int
) -> None:
    """The process dies after LS took a batch but before alweb stored the ids (on the first or the second batch)."""
    settings.ALWEB_LS_SYNC_BATCH = 5
    project = make_project(n=14)
    cycle = scored_cycle(project, uncertainties(keys(12)), budget=12)
    real_save, calls = sync_rows.save_synced, []

    def dying_save(*args: Any, **kwargs: Any) -> None:
        calls.append(1)
        if len(calls) == crash_on_save:
            raise Killed("killed after the import, before the save")
        real_save(*args, **kwargs)

    monkeypatch.setattr(sync_rows, "save_synced", dying_save)
    with pytest.raises(Killed):
        cycle_sync_to_labelstudio(cycle=cycle)
    monkeypatch.setattr(sync_rows, "save_synced", real_save)
    synced = SelectedItem.objects.filter(selection__cycle=cycle, sync_state="synced").count()
    assert synced == 5 * (crash_on_save - 1)
    # LS holds the batch alweb lost, and the next one if its POST was already in flight (it is sent while the
    # previous batch is saved).
    in_ls = len(ls_tasks(ls_pat_client, project))
    assert in_ls in (5 * crash_on_save, 5 * crash_on_save + 5, 12)

    result = cycle_sync_to_labelstudio(cycle=cycle)
    # Everything pushed before the crash is found in LS (saved or not), nothing is imported twice.
    assert result.already_there == in_ls and result.tasks_created == 12 - in_ls
    tasks = ls_tasks(ls_pat_client, project)
    assert len(tasks) == 12 and duplicates(tasks) == (0, 0)
    rows = SelectedItem.objects.filter(selection__cycle=cycle)
    assert {r.sync_state for r in rows} == {"synced"}
    assert {r.ls_task_id for r in rows} == {t["id"] for t in tasks}


def test_a_task_deleted_in_ls_is_recreated_with_the_next_prediction(
    ls_settings: Any, ls_pat_client: LabelStudio
) -> None:
    project = make_project(n=8)
    first = scored_cycle(project, uncertainties(keys(4)), budget=4)
    cycle_sync_to_labelstudio(cycle=first)
    cycle_cancel(cycle=first)
    gone = Item.objects.get(project=project, key="item-0000")
    lsc._request(ls_pat_client, "DELETE", f"api/tasks/{gone.ls_task_id}/")
    second = scored_cycle(project, uncertainties(keys(4), seed=2), budget=4)
    cycle_sync_to_labelstudio(cycle=second)
    tasks = ls_tasks(ls_pat_client, project)
    assert len(tasks) == 4 and duplicates(tasks) == (0, 0)
    gone.refresh_from_db()
    assert gone.ls_task_id in {t["id"] for t in tasks}
    assert selection_of(second).items.filter(sync_state="synced").count() == 4


def test_model_version_names(ls_settings: Any) -> None:
    project = make_project(n=4)
    mv = model_version(project)
    assert ls_sync.ls_model_version(version=mv.version, cycle_number=3) == "alweb-v1"
    assert ls_sync.ls_model_version(version=None, cycle_number=3) == "cold-start-c3"


def test_resync_repairs_what_label_studio_lost_and_is_idempotent(ls_settings: Any, ls_pat_client: LabelStudio) -> None:
    """The admin's resync: a task deleted in LS, a prediction deleted in LS and a row alweb marked failed are
    repaired; rows LS holds completely are left alone; running it again changes nothing."""
    from campaigns.services.pipeline import cycle_run_resync

    project = make_project(n=10)
    cycle = scored_cycle(project, uncertainties(keys(6)), budget=6)
    cycle_sync_to_labelstudio(cycle=cycle)
    Cycle.objects.filter(pk=cycle.pk).update(state="labeling")
    rows = {si.item.key: si for si in SelectedItem.objects.filter(selection__cycle=cycle).select_related("item")}
    gone, unpredicted, failed = rows["item-0000"], rows["item-0001"], rows["item-0002"]
    lsc._request(ls_pat_client, "DELETE", f"api/tasks/{gone.ls_task_id}/")
    (pred,) = next(t for t in ls_tasks(ls_pat_client, project) if t["id"] == unpredicted.ls_task_id)["predictions"]
    lsc.delete_predictions(ls_pat_client, prediction_ids=[int(pred["id"])])
    SelectedItem.objects.filter(pk=failed.pk).update(sync_state="failed", sync_error="LS refused it")
    kept = {k: si.ls_task_id for k, si in rows.items() if k != "item-0000"}

    cycle_run_resync(cycle_id=cycle.pk, item_ids=[])
    tasks = ls_tasks(ls_pat_client, project)
    assert len(tasks) == 6 and duplicates(tasks) == (0, 0)
    assert all([p["model_version"] for p in t["predictions"]] == ["alweb-v1"] for t in tasks)
    after = {si.item.key: si for si in SelectedItem.objects.filter(selection__cycle=cycle).select_related("item")}
    assert {si.sync_state for si in after.values()} == {"synced"}
    assert {si.ls_task_id for si in after.values()} == {t["id"] for t in tasks}
    assert after["item-0000"].ls_task_id not in (None, gone.ls_task_id)
    assert after["item-0000"].item.ls_task_id == after["item-0000"].ls_task_id
    assert all(after[k].ls_task_id == v for k, v in kept.items())  # never re-imported
    assert Cycle.objects.get(pk=cycle.pk).state == "labeling"

    cycle_run_resync(cycle_id=cycle.pk, item_ids=[after["item-0003"].item_id])
    again = ls_tasks(ls_pat_client, project)
    assert sorted((t["id"], len(t["predictions"])) for t in again) == sorted((t["id"], 1) for t in tasks)


def test_a_resync_that_gives_up_marks_its_rows_failed_and_the_next_sync_repairs_them(
    ls_settings: Any, ls_pat_client: LabelStudio, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The resync task (run by Celery's own tracer, retries and on_failure included) against a Label Studio that
    does not answer: the rows it was for say failed and why, the others and the cycle are untouched. With LS back,
    the next sync of the cycle checks those rows first and repairs them without a duplicate."""
    from campaigns import tasks

    project = make_project(n=8)
    cycle = scored_cycle(project, uncertainties(keys(4)), budget=4)
    cycle_sync_to_labelstudio(cycle=cycle)
    Cycle.objects.filter(pk=cycle.pk).update(state="labeling")
    rows = list(SelectedItem.objects.filter(selection__cycle=cycle).order_by("rank"))
    target, other = rows[0], rows[1]
    lsc._request(ls_pat_client, "DELETE", f"api/tasks/{target.ls_task_id}/")  # what the resync was meant to repair

    url = project.ls_url
    Project.objects.filter(pk=project.pk).update(ls_url="http://127.0.0.1:9")  # nothing listens there
    ls_settings.ALWEB_LS_ALLOWED_URLS = ["http://127.0.0.1:9"]  # allowed, so the call is made and fails
    monkeypatch.setattr(tasks.cycle_resync, "max_retries", 1)
    result = tasks.cycle_resync.apply(kwargs={"cycle_id": cycle.pk, "item_ids": [target.item_id]})
    assert result.failed()
    failed = SelectedItem.objects.get(pk=target.pk)
    assert failed.sync_state == "failed" and failed.sync_error.startswith("resync failed: ")
    assert "127.0.0.1:9" in failed.sync_error or "onnect" in failed.sync_error, failed.sync_error
    assert SelectedItem.objects.get(pk=other.pk).sync_state == "synced"
    assert Cycle.objects.get(pk=cycle.pk).state == "labeling"

    Project.objects.filter(pk=project.pk).update(ls_url=url)
    cycle_sync_to_labelstudio(cycle=Cycle.objects.get(pk=cycle.pk))
    repaired = SelectedItem.objects.get(pk=target.pk)
    assert (repaired.sync_state, repaired.sync_error) == ("synced", "")
    assert repaired.ls_task_id not in (None, target.ls_task_id)
    tasks_ = ls_tasks(ls_pat_client, project)
    assert len(tasks_) == 4 and duplicates(tasks_) == (0, 0)


def test_evaluation_items_reach_label_studio_marked_and_without_a_suggested_label(
    ls_settings: Any, ls_pat_client: LabelStudio
) -> None:
    """The evaluation sample rides with a cycle's selection to the real Label Studio: marked in the task data (so
    annotators and Data Manager filters see it) and with no pre-annotation that could bias the test labels."""
    project = make_project(n=20, eval_valid_target=3, eval_test_target=2)
    for i, split in enumerate(["valid"] * 6 + ["test"] * 6):
        Item.objects.create(project=project, key=f"eval-{i:02d}", split=split, text=f"evaluation text {i}")
    cycle = scored_cycle(project, uncertainties(keys(20)), budget=4)
    cycle_sync_to_labelstudio(cycle=cycle)
    tasks = ls_tasks(ls_pat_client, project)
    evaluation = [t for t in tasks if t["data"].get("alweb_purpose") == "evaluation"]
    assert len(tasks) == 9 and len(evaluation) == 5
    assert sorted(t["data"]["alweb_split"] for t in evaluation) == ["test", "test", "valid", "valid", "valid"]
    assert all(p["result"] == [] for t in evaluation for p in t["predictions"])
    training = [t for t in tasks if "alweb_purpose" not in t["data"]]
    assert all(p["result"] for t in training for p in t["predictions"])  # the model's suggestion, as before
