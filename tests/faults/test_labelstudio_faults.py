"""Faults around Label Studio (issue 8, items 1, 2, 7, 8 and the key part of 9), against the real server.

Each test asserts the state afterwards on both sides: rows in alweb's database and tasks/predictions in LS.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from typing import Any

import pytest
import requests

from campaigns.models import Annotation, Cycle, Item, Project, SelectedItem
from campaigns.services.actions import cycle_sync_request
from campaigns.services.cycles import cycle_cancel
from campaigns.states import CycleState
from devtools.labelstudio import server as lss
from integrations.labelstudio import client as lsc
from integrations.labelstudio import convert, sync_rows
from integrations.labelstudio.client import LabelStudio
from integrations.labelstudio.connect import labelstudio_connect_project
from integrations.labelstudio.pull import project_pull_annotations
from integrations.labelstudio.sync import cycle_sync_to_labelstudio
from tests.integrations.labelstudio.builders import (
    annotate,
    cold_cycle,
    doubled_posts,
    duplicates,
    ls_tasks,
    make_project,
    scored_cycle,
)
from tests.worker import wait_for

pytestmark = [pytest.mark.integration]


class Killed(BaseException):
    """The process dies (not an Exception: nothing on the way may catch it)."""


def assert_one_task_and_prediction_per_item(client: LabelStudio, project: Project, cycle: Cycle, n: int) -> None:
    tasks = ls_tasks(client, project)
    assert len(tasks) == n and duplicates(tasks) == (0, 0)
    rows = SelectedItem.objects.filter(selection__cycle=cycle).select_related("item")
    assert rows.count() == n and {r.sync_state for r in rows} == {"synced"}
    assert {r.ls_task_id for r in rows} == {r.item.ls_task_id for r in rows} == {t["id"] for t in tasks}


@pytest.mark.django_db
def test_sync_retried_five_times_with_posts_delivered_twice_and_crashes(
    ls_settings: Any, ls_pat_client: LabelStudio, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 1: every attempt doubles its bulk POSTs; the first two die between LS's import and alweb's save."""
    ls_settings.ALWEB_LS_SYNC_BATCH = 7
    project = make_project(n=40)
    cycle = scored_cycle(project, {f"item-{i:04d}": 0.05 * (i + 1) for i in range(30)}, budget=30)
    real_save = sync_rows.save_synced
    saves: list[int] = []

    def dying_save(*args: Any, **kwargs: Any) -> None:
        saves.append(1)
        if len(saves) in (2, 4):
            raise Killed
        real_save(*args, **kwargs)

    monkeypatch.setattr(sync_rows, "save_synced", dying_save)
    outcomes = []
    with doubled_posts("/import", "/import/predictions") as doubled:
        for _ in range(5):
            try:
                outcomes.append(cycle_sync_to_labelstudio(cycle=cycle).tasks_created)
            except Killed:
                outcomes.append(-1)
    assert outcomes[:2] == [-1, -1] and outcomes[3:] == [0, 0]  # two deaths, then done by the third attempt
    assert len(doubled) >= 5
    assert_one_task_and_prediction_per_item(ls_pat_client, project, cycle, 30)

    # The next cycle re-predicts items that already have tasks: its doubled predictions imports change nothing.
    cycle_cancel(cycle=cycle)
    second = scored_cycle(project, {f"item-{i:04d}": 0.1 * (i + 1) for i in range(20, 40)}, budget=20)
    with doubled_posts("/import", "/import/predictions"):
        for _ in range(5):
            cycle_sync_to_labelstudio(cycle=second)
    tasks = ls_tasks(ls_pat_client, project)
    assert len(tasks) == 40 and duplicates(tasks) == (0, 0)
    versions = {t["data"]["alweb_key"]: sorted(p["model_version"] for p in t["predictions"]) for t in tasks}
    assert versions["item-0025"] == ["alweb-v1", "alweb-v2"] and versions["item-0035"] == ["alweb-v2"]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_label_studio_killed_mid_sync_and_restarted_the_cycle_completes(
    ls_server: lss.LabelStudioServer, ls_pat_client: LabelStudio, celery_worker: Any
) -> None:
    """Item 2: SIGKILL the LS server while a real worker syncs 3000 items; restart it; the task's retries finish."""
    n = 3000
    project = make_project(n=n)
    Project.objects.filter(pk=project.pk).update(ls_url=ls_server.url, ls_api_key=ls_server.pat)
    celery_worker.stop()
    celery_worker.env.update(
        ALWEB_TASK_RETRY_BACKOFF="1",
        ALWEB_TASK_MAX_RETRIES="10",
        ALWEB_BASE_URL="http://127.0.0.1:9",
        ALWEB_LS_ALLOWED_URLS=ls_server.url,  # the project names this server: the worker must allow it
    )
    celery_worker.start()
    cycle = cold_cycle(Project.objects.get(pk=project.pk), budget=n)
    cycle_sync_request(cycle=cycle)

    synced = SelectedItem.objects.filter(selection__cycle=cycle, sync_state="synced")
    wait_for(lambda: synced.count() >= 500, timeout=180, what="the first synced batch", worker=celery_worker)
    assert ls_server.pid is not None
    os.killpg(ls_server.pid, signal.SIGKILL)  # no shutdown: whatever request is in flight dies with it
    if ls_server.process is not None:
        ls_server.process.wait(10)
    at_kill = synced.count()
    assert at_kill < n, "the sync finished before LS could be killed"
    time.sleep(4)  # the worker meets a dead server and backs off
    port = int(ls_server.url.rsplit(":", 1)[1])
    assert ls_server.data_dir is not None
    restarted = lss.start(data_dir=ls_server.data_dir, port=port)
    ls_server.process, ls_server.pid = restarted.process, restarted.pid  # the session fixture stops this one

    done = wait_for(
        lambda: (c := Cycle.objects.get(pk=cycle.pk)).state in (CycleState.LABELING, CycleState.FAILED) and c,
        timeout=300,
        what="the retried sync",
        worker=celery_worker,
    )
    assert done.state == CycleState.LABELING, done.failure_reason
    assert "LabelStudioUnavailable" in celery_worker.output()  # it did fail and retry in between
    client = lsc.make_client(ls_server.url, ls_server.pat)
    assert_one_task_and_prediction_per_item(client, Project.objects.get(pk=project.pk), cycle, n)


@pytest.mark.django_db
def test_bad_annotations_are_recorded_on_their_items_and_the_rest_applies(
    ls_settings: Any, ls_pat_client: LabelStudio
) -> None:
    """Item 7: 5 unknown labels and 5 malformed results among 30 annotations."""
    project = make_project(n=30)
    cycle_sync_to_labelstudio(cycle=cold_cycle(project, budget=30))
    items = list(Item.objects.filter(project=project).order_by("key"))
    malformed = [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": "cat"}}]
    ids = {}
    for n, item in enumerate(items):
        assert item.ls_task_id is not None
        result = (
            convert.choice_result("zebra", to_name="text")
            if n < 5
            else malformed
            if n < 10
            else convert.choice_result(str(item.ground_truth), to_name="text")
        )
        ids[item.pk] = annotate(ls_pat_client, item.ls_task_id, result)
    pulled = project_pull_annotations(project=Project.objects.get(pk=project.pk))
    assert (pulled.created, pulled.errors) == (30, 10)
    rows = {i.key: i for i in Item.objects.filter(project=project)}
    bad = [rows[i.key] for i in items[:10]]
    assert all(i.label is None for i in bad)
    assert all("unknown label 'zebra'" in i.label_error for i in bad[:5])
    assert all("choices must be a list" in i.label_error for i in bad[5:])
    assert all(rows[i.key].label == i.ground_truth and not rows[i.key].label_error for i in items[10:])
    assert Annotation.objects.filter(project=project).exclude(error="").count() == 10

    for item in items[:10]:  # the annotators fix their answers in LS
        fixed = convert.choice_result(str(item.ground_truth), to_name="text")
        lsc._request(ls_pat_client, "PATCH", f"api/annotations/{ids[item.pk]}/", json={"result": fixed})
    project_pull_annotations(project=Project.objects.get(pk=project.pk))
    assert not Item.objects.filter(project=project).exclude(label_error="").exists()
    assert Item.objects.filter(project=project, label__isnull=False).count() == 30


@pytest.mark.django_db(transaction=True)
def test_webhook_secret_is_enforced_and_a_repeated_delivery_applies_once(
    ls_live: Any, ls_pat_client: LabelStudio, ls_server: lss.LabelStudioServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Item 8 (and the LS part of 9: neither the key nor the secret in any log line)."""
    caplog.set_level(logging.DEBUG)
    project = labelstudio_connect_project(project=make_project(n=4))
    cycle_sync_to_labelstudio(cycle=cold_cycle(project, budget=4))
    items = list(Item.objects.filter(project=project).order_by("key"))
    url = f"{ls_live.url}/labelstudio/webhook/{project.pk}/"
    header = lsc.WEBHOOK_SECRET_HEADER

    # LS delivers with the registered secret: the annotation arrives.
    first = annotate(ls_pat_client, items[0].ls_task_id or 0, convert.choice_result("dog", to_name="text"))
    row = wait_for(
        lambda: Annotation.objects.filter(project=project, ls_annotation_id=first).first(), timeout=20, what="delivery"
    )
    stamp = row.updated_at

    # The same delivery again (as a replaying proxy would send it): 200, nothing changes.
    annotation = lsc._request(ls_pat_client, "GET", f"api/annotations/{first}/")
    payload = {
        "action": "ANNOTATION_CREATED",
        "annotation": annotation,
        "task": {"id": annotation["task"]},
        "project": {"id": project.ls_project_id},
    }
    for _ in range(2):
        response = requests.post(url, json=payload, headers={header: project.ls_webhook_secret}, timeout=10)
        assert response.status_code == 200 and response.json()["tasks"] == [annotation["task"]]
    assert Annotation.objects.filter(project=project).count() == 1
    assert Annotation.objects.get(pk=row.pk).updated_at == stamp

    # Without the secret, or with a wrong one: refused, nothing pulled.
    forged = payload | {"annotation": annotation | {"id": first + 10_000}}
    assert requests.post(url, json=forged, timeout=10).status_code == 403
    assert requests.post(url, json=forged, headers={header: "guess"}, timeout=10).status_code == 403

    # The secret rotates in alweb but LS still sends the old one: LS's deliveries are refused...
    Project.objects.filter(pk=project.pk).update(ls_webhook_secret="rotated-" + "x" * 30)
    second = annotate(ls_pat_client, items[1].ls_task_id or 0, convert.choice_result("cat", to_name="text"))
    wait_for(lambda: "Forbidden: /labelstudio/webhook/" in caplog.text, timeout=20, what="the refused delivery")
    assert not Annotation.objects.filter(project=project, ls_annotation_id=second).exists()
    # ...and the periodic pull still brings the annotation in; reconnecting sends LS the new secret.
    project_pull_annotations(project=Project.objects.get(pk=project.pk))
    assert Annotation.objects.filter(project=project, ls_annotation_id=second).exists()
    labelstudio_connect_project(project=Project.objects.get(pk=project.pk))
    third = annotate(ls_pat_client, items[2].ls_task_id or 0, convert.choice_result("bird", to_name="text"))
    wait_for(
        lambda: Annotation.objects.filter(project=project, ls_annotation_id=third).exists(), timeout=20, what="delivery"
    )

    secrets_ = [ls_server.pat, ls_server.legacy_token, project.ls_webhook_secret, "rotated-" + "x" * 30]
    logged = caplog.text + "".join(json.dumps(r.args, default=str) for r in caplog.records)
    assert all(s not in logged for s in secrets_), "a key or webhook secret reached a log line"
    assert ls_server.log_path is None or all(
        s not in ls_server.log_path.read_text(errors="replace") for s in secrets_[:2]
    )
