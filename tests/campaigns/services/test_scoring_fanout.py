"""Scoring fanned out per chunk (issue 20): chunk tasks in any order, any number of times, complete the cycle once.

The chunks are scored in this process by the same function the Celery chunk task calls, with a real MLflow pyfunc
model (fast to score) and Postgres deciding completion; `tests/integration/test_scoring_workers.py` runs them on
real worker processes.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.db.models import Count

from campaigns.models import LABELED_CHUNK, Cycle, Item, Score, ScoringChunk, ScoringPlan
from campaigns.services import pipeline, queue
from campaigns.services.cycles import cycle_cancel, cycle_create
from campaigns.services.model_cache import model_cache_clear, model_cached
from campaigns.services.pipeline import (
    cycle_complete_scoring,
    cycle_run_score_chunk,
    cycle_run_scoring,
    cycle_run_training,
)
from campaigns.services.scoring import embed_labeled, score_chunk
from campaigns.services.scoring_plan import scoring_chunk_mark_written
from campaigns.services.training import model_register_external
from campaigns.states import CycleState
from tests.models_registry.test_external import BrightnessClassifier, log_pyfunc

pytestmark = [pytest.mark.integration]


def shaded_project(make_project: Any, tmp_path: Path, mlflow_store: str, n: int = 30) -> Any:
    """`n` grey 8x8 images, every one in the pool, scored by a registered pyfunc classifier (no training)."""
    from tests.campaigns.test_ingest import png, write_csv

    project = make_project(
        task_type="image_classification",
        labels=["light", "dark"],
        model_config={"image_size": 8, "channels": 1},
        split_ratios={"train": 0.0, "valid": 0.0, "test": 0.0, "pool": 1.0},
    )
    for i in range(n):
        shade = 5 + i * 240 // n
        (tmp_path / f"{i}.png").write_bytes(png((shade, shade, shade), size=(8, 8)))
    items_csv = write_csv(tmp_path / "i.csv", "image\n" + "".join(f"{i}.png\n" for i in range(n)))
    from campaigns.services.items import items_import

    items_import(project=project, path=items_csv)
    model_register_external(
        project=project, model_uri=log_pyfunc(BrightnessClassifier(), tmp_path, mlflow_store), kind="pyfunc-classifier"
    )
    return project


@pytest.fixture
def sent_groups(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[dict[str, Any]]]]:
    """Groups the scoring step sends, recorded instead of going to a broker (the chunks are then run by hand)."""
    sent: list[tuple[str, list[dict[str, Any]]]] = []
    monkeypatch.setattr(queue, "enqueue_group_on_commit", lambda name, calls: sent.append((name, calls)))
    return sent


def planned_cycle(project: Any, settings: Any, sent_groups: list[Any], chunk_ids: int = 4, **kwargs: Any) -> Cycle:
    settings.ALWEB_SCORING_CHUNK_IDS = chunk_ids
    cycle = cycle_create(project=project, **kwargs)
    cycle_run_training(cycle_id=cycle.pk, chain=False)  # the external champion: straight to scoring
    cycle_run_scoring(cycle_id=cycle.pk, fan_out=True)
    return Cycle.objects.get(pk=cycle.pk)


@pytest.mark.django_db
def test_chunks_run_out_of_order_and_twice_score_the_cycle_once(
    make_project: Any,
    tmp_path: Path,
    mlflow_store: str,
    settings: Any,
    sent_groups: list[Any],
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
    enqueued: list[Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    project = shaded_project(make_project, tmp_path, mlflow_store)
    pool = Item.objects.filter(project=project, split="pool").count()
    cycle = planned_cycle(project, settings, sent_groups, auto_advance=True)
    plan = ScoringPlan.objects.get(cycle=cycle)
    [(name, calls)] = sent_groups
    chunks = [c["chunk"] for c in calls]
    assert name == queue.CYCLE_SCORE_CHUNK and all(c["cycle_id"] == cycle.pk for c in calls)
    # 30 items in blocks of 4 ids, plus the labeled-embeddings chunk; each planned once.
    assert len(chunks) == len(set(chunks)) == plan.chunks and LABELED_CHUNK in chunks and plan.items == pool

    freezes: list[int] = []
    real_freeze = pipeline.score_stats_freeze
    monkeypatch.setattr(
        pipeline, "score_stats_freeze", lambda *, cycle: freezes.append(cycle.pk) or real_freeze(cycle=cycle)
    )
    # Last chunk first; every chunk delivered twice (at-least-once), the repeats interleaved with new chunks.
    order = list(reversed(chunks))
    deliveries = [c for pair in zip(order, order[1:] + order[:1], strict=True) for c in pair]
    assert sorted(deliveries) == sorted(chunks * 2)
    with caplog.at_level(logging.INFO, logger="campaigns.services.pipeline"):
        for i, chunk in enumerate(deliveries):
            with django_capture_on_commit_callbacks(execute=True):
                cycle_run_score_chunk(cycle_id=cycle.pk, chunk=chunk)
            state = Cycle.objects.get(pk=cycle.pk).state
            missing = ScoringChunk.objects.filter(cycle=cycle, written_at__isnull=True).count()
            # Scored exactly when the last missing chunk is written, never before.
            assert (state == CycleState.SCORED) == (missing == 0), (i, chunk, state, missing)

    done = Cycle.objects.get(pk=cycle.pk)
    assert done.state == CycleState.SCORED and done.score_stats["count"] == pool
    assert freezes == [cycle.pk]  # statistics frozen once, by the completing task
    assert caplog.text.count("every chunk written, scored") == 1
    assert enqueued == [("cycle_select", {"cycle_id": cycle.pk})]  # selection chained once
    # Every item scored once, in the chunk its id falls in.
    rows = Score.objects.filter(cycle=cycle)
    assert rows.count() == pool == rows.values("item").distinct().count()
    assert all(s.chunk == s.item_id // 4 for s in rows)
    per_chunk = dict(rows.values_list("chunk").annotate(n=Count("pk")).values_list("chunk", "n"))
    planned = dict(ScoringChunk.objects.filter(cycle=cycle, chunk__gte=0).values_list("chunk", "items"))
    assert per_chunk == planned
    assert done.progress["stage"] == CycleState.SCORING and (done.progress["done"], done.progress["total"]) == (
        pool,
        pool,
    )
    plan.refresh_from_db()
    assert plan.completed_at is not None and plan.completed_by

    # A redelivery after completion (a chunk, or the plan task) changes nothing.
    before = list(ScoringChunk.objects.filter(cycle=cycle).order_by("chunk").values_list("chunk", "written_at"))
    cycle_run_score_chunk(cycle_id=cycle.pk, chunk=chunks[0])
    cycle_run_scoring(cycle_id=cycle.pk, fan_out=True)
    assert list(ScoringChunk.objects.filter(cycle=cycle).order_by("chunk").values_list("chunk", "written_at")) == before
    assert len(sent_groups) == 1 and freezes == [cycle.pk]


@pytest.mark.django_db
def test_progress_adds_up_chunks_from_every_worker_and_a_resend_sends_only_what_is_missing(
    make_project: Any, tmp_path: Path, mlflow_store: str, settings: Any, sent_groups: list[Any]
) -> None:
    project = shaded_project(make_project, tmp_path, mlflow_store)
    cycle = planned_cycle(project, settings, sent_groups, auto_advance=False)
    chunks = [c["chunk"] for c in sent_groups[0][1]]
    pool_chunks = [c for c in chunks if c != LABELED_CHUNK]
    shown: list[int] = []
    for chunk in pool_chunks[:3]:
        cycle_run_score_chunk(cycle_id=cycle.pk, chunk=chunk)
        progress = Cycle.objects.get(pk=cycle.pk).progress
        shown.append(progress["done"])
        assert progress["total"] == Item.objects.filter(project=project).count()
    planned = dict(ScoringChunk.objects.filter(cycle=cycle).values_list("chunk", "items"))
    assert shown == [sum(planned[c] for c in pool_chunks[: k + 1]) for k in range(3)]

    # The plan task delivered again (a requeue, a redelivery): same plan, only the unwritten chunks go out again.
    cycle_run_scoring(cycle_id=cycle.pk, fan_out=True)
    assert [c["chunk"] for c in sent_groups[1][1]] == [c for c in sorted(chunks) if c not in pool_chunks[:3]]
    assert ScoringPlan.objects.filter(cycle=cycle).count() == 1
    assert Cycle.objects.get(pk=cycle.pk).progress["done"] == shown[-1]  # the bar is not reset to 0

    # Without fan-out (a simulation, a comparison): the rest is scored here and the cycle completes.
    cycle_run_scoring(cycle_id=cycle.pk)
    assert Cycle.objects.get(pk=cycle.pk).state == CycleState.SCORED


@pytest.mark.django_db
def test_chunks_of_a_cancelled_cycle_write_nothing(
    make_project: Any, tmp_path: Path, mlflow_store: str, settings: Any, sent_groups: list[Any]
) -> None:
    project = shaded_project(make_project, tmp_path, mlflow_store, n=12)
    cycle = planned_cycle(project, settings, sent_groups)
    chunks = [c["chunk"] for c in sent_groups[0][1]]
    cycle_run_score_chunk(cycle_id=cycle.pk, chunk=chunks[1])
    cycle_cancel(cycle=cycle)
    for chunk in chunks:
        cycle_run_score_chunk(cycle_id=cycle.pk, chunk=chunk)
    assert ScoringChunk.objects.filter(cycle=cycle, written_at__isnull=False).count() == 1
    assert Cycle.objects.get(pk=cycle.pk).state == CycleState.CANCELLED
    assert ScoringPlan.objects.get(cycle=cycle).completed_at is None


@pytest.mark.django_db(transaction=True)
def test_concurrent_completers_complete_the_cycle_exactly_once(
    make_project: Any, tmp_path: Path, mlflow_store: str, settings: Any, sent_groups: list[Any]
) -> None:
    """Two workers write the last two chunks at once and both try to complete: the plan row's conditional UPDATE
    lets one through; the other waits on its lock and then finds it completed."""
    project = shaded_project(make_project, tmp_path, mlflow_store, n=12)
    cycle = planned_cycle(project, settings, sent_groups)
    chunks = [c["chunk"] for c in sent_groups[0][1]]
    # Every chunk written by the chunk step's own parts, none completing: as if the last workers wrote theirs at
    # the same moment and had not yet looked at the plan.
    model_cache_clear()
    fresh = Cycle.objects.select_related("project", "model_version", "scoring_plan").get(pk=cycle.pk)
    model = model_cached(model_version=fresh.model_version)
    for chunk in chunks:
        if chunk == LABELED_CHUNK:
            embed_labeled(cycle=fresh, model=model)
            scoring_chunk_mark_written(cycle_id=cycle.pk, chunk=chunk, scored=0, seconds=0.0)
        else:
            score_chunk(cycle=fresh, chunk=chunk, chunk_ids=4, model=model)
    assert Cycle.objects.get(pk=cycle.pk).state == CycleState.SCORING

    results: list[bool] = []
    barrier = threading.Barrier(4)

    def complete() -> None:
        try:
            barrier.wait()
            results.append(cycle_complete_scoring(cycle_id=cycle.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=complete) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, False, False, True]
    assert Cycle.objects.get(pk=cycle.pk).state == CycleState.SCORED


@pytest.mark.django_db
def test_a_chunk_scored_twice_past_the_written_check_writes_its_rows_once(
    make_project: Any, tmp_path: Path, mlflow_store: str, settings: Any, sent_groups: list[Any]
) -> None:
    """Two deliveries that both passed the "written?" check: the second one's COPY meets the first one's rows, and
    falls back to the insert that skips them; the chunk is marked once. Rows that exist without the chunk's mark
    (scored before plans existed) stay as they are and only the missing ones are added."""
    project = shaded_project(make_project, tmp_path, mlflow_store, n=12)
    cycle = planned_cycle(project, settings, sent_groups)
    # A chunk with several items (ids run on across tests: the first block of 4 may hold just one).
    planned = ScoringChunk.objects.filter(cycle=cycle, chunk__gte=0).order_by("-items", "chunk").first()
    assert planned is not None and planned.items > 1
    chunk = planned.chunk
    model = model_cached(model_version=cycle.model_version)
    first = score_chunk(cycle=cycle, chunk=chunk, chunk_ids=4, model=model)
    rows = Score.objects.filter(cycle=cycle, chunk=chunk)
    assert first == rows.count() > 1
    assert score_chunk(cycle=cycle, chunk=chunk, chunk_ids=4, model=model) == 0  # written by "the other" delivery
    assert rows.count() == first and ScoringChunk.objects.get(cycle=cycle, chunk=chunk).written_at is not None

    kept = rows.order_by("item_id").first()
    assert kept is not None
    Score.objects.filter(pk=kept.pk).update(uncertainty=-1.0)
    rows.exclude(pk=kept.pk).delete()
    ScoringChunk.objects.filter(cycle=cycle, chunk=chunk).update(written_at=None)
    assert score_chunk(cycle=cycle, chunk=chunk, chunk_ids=4, model=model) == first
    assert rows.count() == first and Score.objects.get(pk=kept.pk).uncertainty == -1.0


@pytest.mark.django_db(transaction=True)
def test_a_connection_dropped_at_the_copy_is_an_error_the_task_retries(make_project: Any) -> None:
    """The scores' COPY goes through psycopg's own cursor: a connection a failover or a proxy restart dropped must
    still surface as Django's OperationalError (retried by the task, the chunk written by the next delivery), not
    as psycopg's AdminShutdown, which failed the whole cycle."""
    from django.db import OperationalError, connections

    from campaigns.services.scoring import _chunk_write
    from campaigns.tasks import RETRYABLE

    project = make_project()
    item = Item.objects.create(project=project, key="a", split="pool")
    cycle = cycle_create(project=project)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:  # what a database failover does to the worker's open connection
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    finally:
        other.close()
    rows = [(cycle.pk, item.pk, 0.5, "bald", 0, 0.9, None, 0)]
    try:
        with pytest.raises(OperationalError) as raised:
            _chunk_write(rows, lambda: True)
        assert isinstance(raised.value, RETRYABLE), type(raised.value)
    finally:
        connection.close()  # the next query reconnects, as a worker's next task does
    assert not Score.objects.filter(cycle=cycle).exists()
