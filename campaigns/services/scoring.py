"""Scoring one chunk of a cycle's pool with MC dropout: the unit any worker takes (issue 20 fans a cycle's chunks
out over every worker; `campaigns.services.scoring_plan` holds the plan they are counted against).

A chunk is the pool items whose id falls in one block of the plan's `chunk_ids` ids: stable whatever else changes,
so a redelivered chunk task (after a worker died) finds its chunk written and does nothing. Each chunk's scores and
its "written" mark are one transaction, so a chunk is either all there or not at all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from django.db import IntegrityError, connection, transaction
from psycopg.errors import UniqueViolation
from psycopg.types.json import Jsonb

from campaigns.models import Cycle, Item, Score
from campaigns.selectors import items_labeled, items_pool
from campaigns.services.embeddings import (
    LABELED_MAX,
    embeddings_save,
    embeddings_save_labeled,
)
from campaigns.services.features import INPUT_FIELDS, item_inputs, project_as_trained
from campaigns.services.inference import model_score
from campaigns.services.scoring_plan import scoring_chunk_mark_written
from engine.scoring import ScoreChunk

log = logging.getLogger(__name__)


def _score_items(*, cycle: Cycle, items: list[Item], model: object, seed: int) -> ScoreChunk:
    return model_score(
        model=model,
        inputs=item_inputs(project_as_trained(cycle.project, cycle.model_version), items, model=model),
        ids=[i.pk for i in items],
        iterations=cycle.mc_iterations,
        heuristic=cycle.heuristic,
        seed=seed,
        labels=list(cycle.project.labels),
    )


_SCORE_COLUMNS = ("cycle_id", "item_id", "uncertainty", "heuristic", "predicted_label", "confidence", "boxes", "chunk")


def _scores_copy(rows: list[tuple[Any, ...]]) -> None:
    """COPY a chunk's score rows (in `_SCORE_COLUMNS` order): on Postgres a thousand rows cost a third of a
    multi-row INSERT's time, in the worker and in the database, which shares the cores with the workers. Raises
    IntegrityError from a UniqueViolation (and leaves the transaction aborted) when some of the rows exist already.
    The COPY goes through psycopg's own cursor, so its errors are wrapped here as Django wraps its own: a connection
    dropped mid-COPY must be Django's OperationalError, which the task retries, not psycopg's, which fails it."""
    sql = f"COPY {Score._meta.db_table} ({', '.join(_SCORE_COLUMNS)}) FROM STDIN"
    with connection.cursor() as cursor, connection.wrap_database_errors, cursor.cursor.copy(sql) as copy:
        for row in rows:
            copy.write_row((*row[:6], None if row[6] is None else Jsonb(row[6]), row[7]))


def _scores_insert(rows: list[tuple[Any, ...]]) -> None:
    Score.objects.bulk_create(
        [Score(**dict(zip(_SCORE_COLUMNS, row, strict=True))) for row in rows],
        batch_size=5000,
        ignore_conflicts=True,  # a second delivery racing the first writes nothing twice
    )


def _chunk_write(rows: list[tuple[Any, ...]], mark: Callable[[], bool]) -> bool:
    """The chunk's scores and its mark in one transaction; `mark()`'s answer (False: another delivery marked the
    chunk first). COPY cannot skip a duplicate: when another delivery committed the chunk's rows meanwhile, the
    transaction is rolled back and written again by the INSERT that skips conflicts, whose mark then finds the
    chunk written. No savepoint around the COPY: it would cost two more round trips on every chunk."""
    if connection.vendor == "postgresql":
        try:
            with transaction.atomic():
                _scores_copy(rows)
                return mark()
        except IntegrityError as exc:
            if not isinstance(exc.__cause__, UniqueViolation):
                raise
            log.info("some scores of chunk %s were written meanwhile", rows[0][7] if rows else "?")
    with transaction.atomic():
        _scores_insert(rows)
        return mark()


def score_chunk(*, cycle: Cycle, chunk: int, chunk_ids: int, model: object) -> int:
    """Score one chunk of the pool, store it and mark it written; returns the number of items scored (0 when
    another delivery wrote it first, or when every item of the chunk was labeled since the plan was made)."""
    started = time.monotonic()
    log.info("cycle %s: scoring chunk %s", cycle.pk, chunk)
    pool = items_pool(project=cycle.project).filter(pk__gte=chunk * chunk_ids, pk__lt=(chunk + 1) * chunk_ids)
    items = list(pool.only(*INPUT_FIELDS))
    if not items:
        with transaction.atomic():
            scoring_chunk_mark_written(cycle_id=cycle.pk, chunk=chunk, scored=0, seconds=time.monotonic() - started)
        return 0
    result = _score_items(cycle=cycle, items=items, model=model, seed=cycle.seed * 1_000_003 + chunk)
    labels = list(cycle.project.labels)
    # Embeddings first: the chunk's scores are what marks it done, so a worker dying between the two writes must
    # leave a chunk to score again, not a scored chunk without the embeddings diverse selection needs.
    if result.embeddings is not None:
        embeddings_save(
            cycle_id=cycle.pk,
            chunk=chunk,
            item_ids=np.asarray(result.ids),
            features=result.embeddings,
            probs=result.probs,  # BADGE's gradient embeddings need them with the features
        )
    rows = [
        # heuristic: what really produced it (external models may substitute)
        (cycle.pk, item_id, float(u), result.heuristic, labels[int(lbl)] if lbl >= 0 else "", float(c), boxes, chunk)
        for item_id, u, lbl, c, boxes in zip(
            result.ids,
            result.uncertainty,
            result.labels,
            result.confidence,
            result.boxes if result.boxes is not None else [None] * len(result.ids),
            strict=True,
        )
    ]
    first = _chunk_write(
        rows,
        lambda: scoring_chunk_mark_written(
            cycle_id=cycle.pk, chunk=chunk, scored=len(items), seconds=time.monotonic() - started
        ),
    )
    if not first:
        log.info("cycle %s: chunk %s was written by another delivery meanwhile", cycle.pk, chunk)
        return 0
    log.info("cycle %s: scored chunk %s (%s items)", cycle.pk, chunk, len(items))
    return len(items)


def embed_labeled(*, cycle: Cycle, model: object) -> int:
    """Store the embeddings of the items the cycle's model was trained on (a seeded sample of at most LABELED_MAX),
    so k-center starts from what is already labeled. Returns how many; 0 when the model gives no embeddings (an
    external model: nothing is written, and the strategies that need embeddings say so when selecting)."""
    ids = list(items_labeled(project=cycle.project).order_by("pk").values_list("pk", flat=True))
    if len(ids) > LABELED_MAX:
        keep = np.sort(np.random.default_rng(cycle.seed).choice(len(ids), LABELED_MAX, replace=False))
        ids = [ids[int(k)] for k in keep]
    items = list(items_labeled(project=cycle.project).filter(pk__in=ids).order_by("pk"))
    if not items:
        embeddings_save_labeled(cycle_id=cycle.pk, item_ids=np.empty(0, dtype=np.int64), features=np.empty((0, 0)))
        return 0
    result = _score_items(cycle=cycle, items=items, model=model, seed=cycle.seed)
    if result.embeddings is None:
        return 0
    embeddings_save_labeled(cycle_id=cycle.pk, item_ids=np.asarray(result.ids), features=result.embeddings)
    return len(items)
