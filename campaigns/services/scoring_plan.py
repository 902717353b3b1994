"""A cycle's scoring plan: the pool cut into chunks, the chunks still to write, progress and completion, all read
from and decided in the database, so that any number of workers on any hosts can share one cycle's scoring.

A chunk is the pool items whose id falls in one block of `chunk_ids` ids (ALWEB_SCORING_CHUNK_IDS when the plan was
made: every worker cuts the pool the same way, whatever its own environment says). A chunk counts as written when
its row's `written_at` is set, in the same transaction as its scores. Completion is one conditional UPDATE of the
plan row: "completed_at is empty and the written chunks number `chunks`"; the row lock it takes makes a concurrent
completer wait, then find `completed_at` set, so exactly one task completes the cycle.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, IntegerField, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from campaigns.models import LABELED_CHUNK, Cycle, Score, ScoringChunk, ScoringPlan
from campaigns.selectors import items_pool
from campaigns.states import CycleState


def worker_id() -> str:
    """This process, as recorded on the chunks it writes: host and pid (two processes on one host differ)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def pool_chunks(*, cycle: Cycle, chunk_ids: int) -> dict[int, int]:
    """{chunk index: pool items in it} for the cycle's project, counted by the database (one row per chunk)."""
    rows = (
        items_pool(project=cycle.project)
        .annotate(chunk=F("pk") / chunk_ids)
        .order_by()
        .values("chunk")
        .annotate(n=Count("pk"))
        .values_list("chunk", "n")
    )
    return dict(sorted(rows))


def scoring_plan_make(*, cycle: Cycle) -> ScoringPlan:
    """The cycle's plan, made on the first call and returned as it is on every later one (a redelivered or requeued
    scoring task must not re-cut a pool whose chunks are partly written). Chunks that already hold scores (a cycle
    whose scoring started before plans existed) count as written."""
    existing = ScoringPlan.objects.filter(cycle=cycle).first()
    if existing is not None:
        return existing
    size = int(settings.ALWEB_SCORING_CHUNK_IDS)
    chunks = pool_chunks(cycle=cycle, chunk_ids=size)
    with transaction.atomic():
        plan, created = ScoringPlan.objects.get_or_create(
            cycle=cycle, defaults={"chunks": len(chunks) + 1, "items": sum(chunks.values()), "chunk_ids": size}
        )
        if not created:
            return plan  # a concurrent delivery made it first
        rows = [ScoringChunk(cycle=cycle, chunk=c, items=n) for c, n in chunks.items()]
        rows.append(ScoringChunk(cycle=cycle, chunk=LABELED_CHUNK, items=0))
        ScoringChunk.objects.bulk_create(rows, batch_size=5000)
        legacy = list(Score.objects.filter(cycle=cycle).values_list("chunk", flat=True).distinct())
        if legacy:
            ScoringChunk.objects.filter(cycle=cycle, chunk__in=legacy).update(written_at=timezone.now(), worker="")
    return plan


def scoring_chunks_pending(*, cycle_id: int) -> list[int]:
    """The plan's chunks not yet written, in order (the labeled-embeddings chunk first)."""
    return list(
        ScoringChunk.objects.filter(cycle_id=cycle_id, written_at__isnull=True)
        .order_by("chunk")
        .values_list("chunk", flat=True)
    )


def scoring_chunk_written(*, cycle_id: int, chunk: int) -> bool:
    return ScoringChunk.objects.filter(cycle_id=cycle_id, chunk=chunk, written_at__isnull=False).exists()


def scoring_chunk_mark_written(*, cycle_id: int, chunk: int, scored: int, seconds: float) -> bool:
    """Call inside the transaction that writes the chunk's scores. False: another delivery wrote it first."""
    moved = ScoringChunk.objects.filter(cycle_id=cycle_id, chunk=chunk, written_at__isnull=True).update(
        written_at=timezone.now(), scored=scored, worker=worker_id(), seconds=seconds
    )
    return moved == 1


def scoring_progress_report(*, cycle_id: int, plan: ScoringPlan | None = None) -> tuple[int, int]:
    """Write the cycle's scoring progress, aggregated over every worker: (pool items in written chunks, plan
    total). The UPDATE never lowers a count already shown: two workers finishing together may report in either
    order, and the bar must only move forward. The ETA runs from the plan's creation, the one clock all share.
    `plan`: the cycle's plan when the caller holds it already (its items and creation never change)."""
    plan = plan if plan is not None else ScoringPlan.objects.filter(cycle_id=cycle_id).first()
    if plan is None:
        return 0, 0
    done = int(
        ScoringChunk.objects.filter(cycle_id=cycle_id, written_at__isnull=False).aggregate(n=Coalesce(Sum("items"), 0))[
            "n"
        ]
    )
    now = timezone.now()
    progress: dict[str, Any] = {"stage": CycleState.SCORING, "done": done, "total": plan.items}
    progress["updated_at"] = now.isoformat()
    if 0 < done < plan.items:
        progress["eta_s"] = round((now - plan.created_at).total_seconds() / done * (plan.items - done), 1)
    Cycle.objects.filter(pk=cycle_id).exclude(progress__stage=CycleState.SCORING, progress__done__gt=done).update(
        progress=progress
    )
    return done, plan.items


def scoring_plan_claim_completion(*, cycle_id: int) -> bool:
    """Mark the plan complete if every chunk is written and no task did so before. Call inside the transaction
    that freezes the statistics and moves the cycle: the row stays locked until it commits, and a rollback (a worker
    killed mid-way) leaves the plan to complete again."""
    written = (
        ScoringChunk.objects.filter(cycle_id=cycle_id, written_at__isnull=False)
        .order_by()
        .values("cycle_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    complete = Q(chunks=Coalesce(Subquery(written, output_field=IntegerField()), Value(0)))
    moved = ScoringPlan.objects.filter(complete, cycle_id=cycle_id, completed_at__isnull=True).update(
        completed_at=timezone.now(), completed_by=worker_id()
    )
    return moved == 1


def scoring_plan_completed_at(*, cycle_id: int) -> datetime | None:
    return ScoringPlan.objects.filter(cycle_id=cycle_id).values_list("completed_at", flat=True).first()
