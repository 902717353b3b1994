"""Scoring a cycle's pool with MC dropout, chunk by chunk, resumable.

A chunk is the pool items whose id falls in one block of ALWEB_SCORING_CHUNK_IDS ids: stable whatever else changes, so a
redelivered task (after a worker died) lists the chunks already written and skips them. Each chunk's scores are
written in one transaction, so a chunk is either all there or not at all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import F

from campaigns.models import Cycle, Item, Score
from campaigns.selectors import items_labeled, items_pool
from campaigns.services.embeddings import (
    LABELED_MAX,
    embeddings_labeled_stored,
    embeddings_save,
    embeddings_save_labeled,
)
from campaigns.services.features import item_inputs
from campaigns.services.score_stats import score_stats_freeze
from campaigns.services.training import model_load, model_score
from engine.scoring import ScoreChunk

log = logging.getLogger(__name__)


def chunk_ids() -> int:
    return int(settings.ALWEB_SCORING_CHUNK_IDS)


def chunks_done(*, cycle: Cycle) -> set[int]:
    return set(Score.objects.filter(cycle=cycle).values_list("chunk", flat=True).distinct())


def pool_chunks(*, cycle: Cycle) -> dict[int, int]:
    """{chunk index: pool items in it} for the cycle's project."""
    rows = (
        items_pool(project=cycle.project).annotate(chunk=F("pk") / chunk_ids()).values_list("chunk").order_by("chunk")
    )
    counts: dict[int, int] = {}
    for (chunk,) in rows.iterator(chunk_size=50_000):
        counts[chunk] = counts.get(chunk, 0) + 1
    return counts


def _score_items(*, cycle: Cycle, items: list[Item], model: object, seed: int) -> ScoreChunk:
    return model_score(
        model=model,
        inputs=item_inputs(cycle.project, items),
        ids=[i.pk for i in items],
        iterations=cycle.mc_iterations,
        heuristic=cycle.heuristic,
        seed=seed,
        labels=list(cycle.project.labels),
    )


def score_chunk(*, cycle: Cycle, chunk: int, model: object) -> int:
    """Score one chunk of the pool and store it; returns the number of items scored."""

    items = list(
        items_pool(project=cycle.project).filter(pk__gte=chunk * chunk_ids(), pk__lt=(chunk + 1) * chunk_ids())
    )
    if not items:
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
    with transaction.atomic():
        Score.objects.bulk_create(
            [
                Score(
                    cycle=cycle,
                    item_id=item_id,
                    uncertainty=float(u),
                    heuristic=result.heuristic,  # what really produced it (external models may substitute)
                    predicted_label=labels[int(lbl)] if lbl >= 0 else "",
                    confidence=float(c),
                    boxes=boxes,
                    chunk=chunk,
                )
                for item_id, u, lbl, c, boxes in zip(
                    result.ids,
                    result.uncertainty,
                    result.labels,
                    result.confidence,
                    result.boxes if result.boxes is not None else [None] * len(result.ids),
                    strict=True,
                )
            ],
            batch_size=5000,
            ignore_conflicts=True,  # a second delivery racing the first writes nothing twice
        )
    log.info("cycle %s: scored chunk %s (%s items)", cycle.pk, chunk, len(items))
    return len(items)


def cycle_score_pool(*, cycle: Cycle, on_progress: Callable[[int, int], None] | None = None) -> int:
    """Score every chunk not yet scored; freeze the score statistics at the end. Returns items scored now."""

    if cycle.model_version is None:
        raise ValueError(f"cycle {cycle.pk} has no model version to score with")
    chunks = pool_chunks(cycle=cycle)
    done = chunks_done(cycle=cycle)
    total = sum(chunks.values())
    progress = sum(n for chunk, n in chunks.items() if chunk in done)
    if done:
        log.info("cycle %s: resuming scoring, %s chunks already written", cycle.pk, len(done & set(chunks)))
    labeled_missing = not embeddings_labeled_stored(cycle_id=cycle.pk)
    model = model_load(model_version=cycle.model_version) if set(chunks) - done or labeled_missing else None
    scored = 0
    for chunk in chunks:
        if chunk in done:
            continue
        n = score_chunk(cycle=cycle, chunk=chunk, model=model)
        scored += n
        progress += n
        if on_progress is not None:
            on_progress(progress, total)
    if labeled_missing:
        embed_labeled(cycle=cycle, model=model)
    score_stats_freeze(cycle=cycle)
    return scored


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
