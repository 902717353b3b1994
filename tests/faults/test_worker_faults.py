"""Faults around a real worker: SIGKILL mid-scoring, MLflow unreachable during training.

Each test asserts the state afterwards (rows in alweb's database), not just the absence of an exception.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from django.db.models import Count, F
from django.utils import timezone

from campaigns.models import Cycle, Item, Score, ScoringChunk
from campaigns.services.actions import cycle_start
from campaigns.services.cycles import cycle_retry
from campaigns.states import CycleState
from tests.integration.test_worker_cycle import digits_project
from tests.worker import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration, pytest.mark.slow]


def state_of(cycle_id: int) -> Cycle:
    return Cycle.objects.get(pk=cycle_id)


def test_worker_killed_mid_scoring_resumes_without_recomputing_chunks(tmp_path: Path, celery_worker: Any) -> None:
    project = digits_project(tmp_path, n=450, labeled=60)
    celery_worker.env["ALWEB_SCORING_CHUNK_IDS"] = "8"  # many small chunks: a wide window to kill in
    celery_worker.stop()
    celery_worker.start()
    cycle = cycle_start(project=project, budget=10, mc_iterations=20, auto_advance=False)
    pool = Item.objects.filter(project=project, split="pool", label__isnull=True).count()
    wait_for(
        lambda: Score.objects.filter(cycle=cycle).count() > 0,
        timeout=240,
        what="the first scored chunk",
        worker=celery_worker,
    )
    celery_worker.kill()
    killed_at = timezone.now()
    written = Score.objects.filter(cycle=cycle).count()
    chunks_before = set(Score.objects.filter(cycle=cycle).values_list("chunk", flat=True))
    assert 0 < written < pool, "the worker finished before it could be killed"
    first_log = celery_worker.output()
    celery_worker.log = tmp_path / "worker-2.log"
    celery_worker.start()  # the unacknowledged task comes back after the visibility timeout
    done = wait_for(
        lambda: (c := state_of(cycle.pk)).state == CycleState.SCORED and c,
        timeout=240,
        what="the redelivered scoring task",
        worker=celery_worker,
    )
    assert Score.objects.filter(cycle=cycle).count() == pool  # nothing lost, nothing twice (unique per item)
    recomputed = {int(c) for c in re.findall(r"scored chunk (\d+)", celery_worker.output())}
    assert recomputed, "the second worker scored nothing"
    assert not recomputed & chunks_before, "chunks written before the kill were scored again"
    # Each chunk task is its own message: the restarted worker takes the ones left in the queue and, after the
    # visibility timeout, the killed one's; the chunks written before the kill keep their first write.
    assert (
        set(ScoringChunk.objects.filter(cycle=cycle, written_at__lt=killed_at).values_list("chunk", flat=True))
        >= chunks_before
    )
    assert done.score_stats["count"] == pool
    assert "scored chunk" in first_log


def test_mlflow_unreachable_fails_the_cycle_with_a_reason_and_retry_succeeds(
    tmp_path: Path, celery_worker: Any
) -> None:
    project = digits_project(tmp_path, n=200, labeled=60)
    good_uri = celery_worker.env["MLFLOW_TRACKING_URI"]
    celery_worker.stop()
    celery_worker.env.update(
        MLFLOW_TRACKING_URI="http://127.0.0.1:9",  # nothing listens there
        MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
        MLFLOW_HTTP_REQUEST_TIMEOUT="5",
        ALWEB_TASK_MAX_RETRIES="1",
        ALWEB_TASK_RETRY_BACKOFF="1",
    )
    celery_worker.start()
    cycle = cycle_start(project=project, budget=5, mc_iterations=4, auto_advance=False)
    failed = wait_for(
        lambda: (c := state_of(cycle.pk)).state == CycleState.FAILED and c,
        timeout=240,
        what="the cycle to fail",
        worker=celery_worker,
    )
    assert "MLflow at http://127.0.0.1:9 is unreachable" in failed.failure_reason
    assert failed.model_version is None and not Score.objects.filter(cycle=cycle).exists()

    celery_worker.stop()
    celery_worker.env["MLFLOW_TRACKING_URI"] = good_uri
    celery_worker.start()
    assert cycle_retry(cycle=failed) == CycleState.TRAINING
    from campaigns.tasks import cycle_train

    cycle_train.delay(cycle_id=cycle.pk)
    done = wait_for(
        lambda: (c := state_of(cycle.pk)).state == CycleState.SCORED and c,
        timeout=240,
        what="the retried cycle",
        worker=celery_worker,
    )
    assert done.model_version is not None and done.failure_reason == ""


def test_database_connection_dropped_mid_scoring_retries_without_partial_state(
    tmp_path: Path, celery_worker: Any
) -> None:
    from django.db import connection

    project = digits_project(tmp_path, n=450, labeled=60)
    celery_worker.stop()
    celery_worker.env.update(ALWEB_SCORING_CHUNK_IDS="8", ALWEB_TASK_RETRY_BACKOFF="1")
    celery_worker.start()
    cycle = cycle_start(project=project, budget=10, mc_iterations=20, auto_advance=False)
    pool = Item.objects.filter(project=project, split="pool", label__isnull=True).count()
    wait_for(lambda: Score.objects.filter(cycle=cycle).count() > 0, timeout=240, what="scoring", worker=celery_worker)

    def noticed() -> bool:
        log = celery_worker.output()
        return "Retry in" in log or "resuming scoring" in log

    # What a database failover or a proxy restart does to open connections, again every 20 ms until one lands
    # inside a task: between two chunks the worker holds no connection (Django closes it after each task), and a
    # fresh task simply connects anew.
    dropped, deadline = 0, time.monotonic() + 60
    while not noticed() and state_of(cycle.pk).state == CycleState.SCORING and time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            dropped += cursor.fetchone()[0]
        time.sleep(0.02)
    assert dropped >= 1
    done = wait_for(
        lambda: (c := state_of(cycle.pk)).state == CycleState.SCORED and c,
        timeout=240,
        what="scoring to finish after the dropped connection",
        worker=celery_worker,
    )
    assert noticed(), "the task never noticed the dropped connection"
    # No partial state: every pool item scored exactly once, every chunk complete.
    assert Score.objects.filter(cycle=cycle).count() == pool == done.score_stats["count"]
    per_chunk = dict(
        Score.objects.filter(cycle=cycle).values_list("chunk").annotate(n=Count("pk")).values_list("chunk", "n")
    )
    expected = dict(
        Item.objects.filter(project=project, split="pool", label__isnull=True)
        .annotate(chunk=F("pk") / 8)
        .values_list("chunk")
        .annotate(n=Count("pk"))
        .values_list("chunk", "n")
    )
    assert per_chunk == expected
