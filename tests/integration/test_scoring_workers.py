"""One cycle's scoring shared by two real worker processes over Redis and Postgres (issue 20): both take chunks,
and a worker killed in the middle of a chunk costs only that chunk, redelivered to the other."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from campaigns.models import Cycle, Item, Score, ScoringChunk
from campaigns.services.actions import cycle_start
from campaigns.states import CycleState
from tests.campaigns.services.test_scoring_fanout import shaded_project
from tests.factories import ProjectFactory
from tests.worker import Worker, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration, pytest.mark.slow]


def restart_with(workers: list[Worker], **env: str) -> None:
    for w in workers:
        w.stop()
        w.env.update(env)
    for w in workers:
        w.log.unlink(missing_ok=True)
        w.start()
    wait_for(lambda: all(w.ready() for w in workers), timeout=120, what="both workers to be ready", worker=workers[0])


def worker_ids(workers: list[Worker]) -> dict[str, Worker]:
    """What each process records on the chunks it writes (scoring_plan.worker_id): host and pid."""
    assert all(w.proc is not None for w in workers)
    return {f"{socket.gethostname()}:{w.proc.pid}": w for w in workers if w.proc is not None}


def waiting_for_a_lock(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).fetchone()
    return int(row[0]) if row else 0


def scored(cycle_id: int) -> Cycle | None:
    cycle = Cycle.objects.get(pk=cycle_id)
    assert cycle.state != CycleState.FAILED, cycle.failure_reason
    return cycle if cycle.state == CycleState.SCORED else None


def every_item_scored_once(cycle: Cycle) -> None:
    pool = Item.objects.filter(project=cycle.project, split="pool", label__isnull=True).count()
    scores = Score.objects.filter(cycle=cycle)
    assert scores.count() == pool == scores.values("item").distinct().count() == cycle.score_stats["count"]


def test_two_workers_share_one_cycles_chunks(tmp_path: Path, celery_workers: list[Worker]) -> None:
    restart_with(celery_workers, ALWEB_SCORING_CHUNK_IDS="8")
    project = shaded_project(ProjectFactory, tmp_path, celery_workers[0].mlflow_uri, n=240)
    cycle = cycle_start(project=project, budget=10, auto_advance=False)
    done = wait_for(lambda: scored(cycle.pk), timeout=240, what="the cycle to be scored", worker=celery_workers[1])

    every_item_scored_once(done)
    ids = worker_ids(celery_workers)
    by_worker = {w: ScoringChunk.objects.filter(cycle=cycle, worker=w).count() for w in ids}
    assert all(n > 0 for n in by_worker.values()), f"one worker scored every chunk: {by_worker}"
    assert sum(by_worker.values()) == ScoringChunk.objects.filter(cycle=cycle).count()  # nobody else wrote any
    for w in celery_workers:  # and each says so in its own log
        assert re.search(rf"cycle {cycle.pk}: scored chunk \d+", w.output()), w.tail()
    assert done.progress["done"] == done.progress["total"] == done.scoring_plan.items


def test_a_worker_killed_mid_chunk_costs_only_that_chunk(tmp_path: Path, celery_workers: list[Worker]) -> None:
    victim, survivor = celery_workers
    # ~150 small chunks: a chunk's write takes ~25 ms on an idle host, and the lock below must land while many are
    # still to come (at 30 chunks the two workers could finish between two polls and nobody would wait on it).
    restart_with(celery_workers, ALWEB_SCORING_CHUNK_IDS="4")
    project = shaded_project(ProjectFactory, tmp_path, victim.mlflow_uri, n=600)
    dsn = f"dbname={connection.settings_dict['NAME']} host=127.0.0.1 user=postgres"
    cycle = cycle_start(project=project, budget=10, auto_advance=False)
    wait_for(
        lambda: ScoringChunk.objects.filter(cycle=cycle, written_at__isnull=False).count() >= 4,
        timeout=240,
        what="the first chunks",
        worker=victim,
    )
    # Hold every chunk's write: the workers compute their chunk and then wait, inside the transaction that writes
    # it, until the lock goes. Killing the victim then is killing it in the middle of a chunk, not between two.
    with psycopg.connect(dsn) as hold:
        hold.execute("LOCK TABLE campaigns_score IN SHARE ROW EXCLUSIVE MODE")
        wait_for(
            lambda: waiting_for_a_lock(dsn) >= 2,
            timeout=120,
            what="both workers to be waiting to write a chunk",
            worker=victim,
        )
        in_flight = int(re.findall(r"scoring chunk (\d+)", victim.output())[-1])
        before = {
            c: (w, t)
            for c, w, t in ScoringChunk.objects.filter(cycle=cycle, written_at__isnull=False).values_list(
                "chunk", "worker", "written_at"
            )
        }
        assert in_flight not in before
        victim.kill()
    # The lock is gone: the survivor goes on; the victim's chunk comes back after the visibility timeout (15 s).
    done = wait_for(lambda: scored(cycle.pk), timeout=240, what="the cycle to be scored", worker=survivor)
    every_item_scored_once(done)
    ids = worker_ids([survivor])
    redone = ScoringChunk.objects.get(cycle=cycle, chunk=in_flight)
    assert redone.worker in ids, "the killed worker's chunk was not redelivered to the survivor"
    after = {
        c: (w, t)
        for c, w, t in ScoringChunk.objects.filter(cycle=cycle, chunk__in=before).values_list(
            "chunk", "worker", "written_at"
        )
    }
    assert after == before, "chunks written before the kill were written again"
    rescored = [int(c) for c in re.findall(rf"cycle {cycle.pk}: scored chunk (\d+)", survivor.output())]
    assert in_flight in rescored and len(rescored) == len(set(rescored))
    assert not set(rescored) & {c for c, (w, _) in before.items() if w not in ids}
