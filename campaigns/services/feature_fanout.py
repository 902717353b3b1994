"""Item features (text embeddings, a frozen backbone's features) computed right after an import, fanned out over the
scoring workers one chunk of item ids at a time, so a large pool is ready before its first cycle.

Without this the first cycle computes them on the way: training embeds the labeled items on the training worker,
a k-means or typicality cold start embeds the whole pool in one task, and the scoring chunks embed their own items.
At a million text items that is hours of one worker for the cold start alone; spread over N scoring workers it is
that ÷ N, and it overlaps the time people spend looking at the freshly imported project.

Each chunk is the project's items without a cached vector for the project's feature key whose id falls in one block
of `chunk_ids` ids (as scoring cuts a pool). A chunk task looks the missing items up again when it runs, so a
redelivered or duplicated chunk computes nothing twice (and two racing ones store each vector once: ItemEmbedding is
unique per item and key); a run interrupted anywhere resumes by planning again, which finds only what is missing.
Progress is read from the database (cached vectors against items), whichever worker wrote them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count, Exists, F, OuterRef, QuerySet

from campaigns.models import Item, ItemEmbedding, ItemState, Project, TaskType
from campaigns.services import queue
from campaigns.services.encoders import EncoderConfigError, encoder_for
from campaigns.services.features import frozen_backbone, item_inputs, project_text_embeddings

log = logging.getLogger(__name__)


def feature_key(project: Project) -> str | None:
    """The ItemEmbedding key the project's model reads its inputs under, or None when its inputs are not cached
    (pixels for alweb's own CNN, a detector): then there is nothing to compute ahead."""
    if project.task_type == TaskType.TEXT_CLASSIFICATION:
        # The encoder's embeddings (by its content), also when it is fine-tuned: cold start and diversity read them.
        try:
            return encoder_for(project.model_config or {}).identity
        except EncoderConfigError:
            return None  # an encoder folder gone from storage: the cycle says why, nothing to compute ahead
    backbone = frozen_backbone(project)
    return backbone.identity if backbone is not None else None


def _eligible(project: Project) -> QuerySet[Item]:
    """Items a model reads features of: the active ones, and for images only those with a stored file (a URL-only
    item has no pixels to run the backbone on: it is labeled, never scored, and would fail its whole chunk)."""
    items = Item.objects.filter(project=project, state=ItemState.ACTIVE)
    return items if project.task_type == TaskType.TEXT_CLASSIFICATION else items.exclude(media="")


def _missing(project: Project, key: str) -> QuerySet[Item]:
    return _eligible(project).exclude(Exists(ItemEmbedding.objects.filter(item=OuterRef("pk"), encoder=key)))


@dataclass(frozen=True)
class FeaturesPlan:
    key: str | None
    chunks: int
    items: int


def features_plan(*, project_id: int) -> FeaturesPlan:
    """Send one chunk task per block of ids holding items without features (after commit); nothing when the
    project's inputs are not cached or every item has its vector."""
    project = Project.objects.get(pk=project_id)
    key = feature_key(project)
    if key is None:
        return FeaturesPlan(None, 0, 0)
    size = int(settings.ALWEB_SCORING_CHUNK_IDS)
    rows = (
        _missing(project, key)
        .annotate(chunk=F("pk") / size)
        .order_by()
        .values("chunk")
        .annotate(n=Count("pk"))
        .values_list("chunk", "n")
    )
    chunks = dict(sorted(rows))
    if chunks:
        calls = [{"project_id": project_id, "chunk": c, "chunk_ids": size, "key": key} for c in chunks]
        queue.enqueue_group_on_commit(queue.PROJECT_FEATURES_CHUNK, calls)
    log.info("project %s: features %s for %s items in %s chunks", project_id, key, sum(chunks.values()), len(chunks))
    return FeaturesPlan(key, len(chunks), sum(chunks.values()))


def features_chunk(*, project_id: int, chunk: int, chunk_ids: int, key: str) -> int:
    """Compute and cache the features of one chunk's items still without them; returns how many were computed. A
    chunk planned under another key (the project's backbone or encoder changed since) does nothing: the plan the
    change sends covers the new key."""
    project = Project.objects.get(pk=project_id)
    if feature_key(project) != key:
        return 0
    lo = chunk * chunk_ids
    items = list(_missing(project, key).filter(pk__gte=lo, pk__lt=lo + chunk_ids).order_by("pk"))
    if items:
        # Computes the missing vectors and stores them (ItemEmbedding).
        if project.task_type == TaskType.TEXT_CLASSIFICATION:
            project_text_embeddings(project, items)
        else:
            item_inputs(project, items)
    return len(items)


@dataclass(frozen=True)
class FeaturesStatus:
    key: str | None  # None: the project's inputs are not cached (nothing to compute ahead)
    items: int
    ready: int


def features_status(*, project: Project) -> FeaturesStatus:
    """How many of the project's items that a model reads have their cached features under the current key (two
    COUNTs)."""
    key = feature_key(project)
    if key is None:  # nothing is cached for this project's model: every item counts, none is "ready"
        return FeaturesStatus(None, Item.objects.filter(project=project).count(), 0)
    items = _eligible(project).count()
    return FeaturesStatus(key, items, items - _missing(project, key).count())


def features_request(*, project: Project) -> bool:
    """Plan the project's features once the current transaction commits (after an import, a config change); False
    when its inputs are not cached (nothing to compute ahead)."""
    if feature_key(project) is None:
        return False
    queue.enqueue_on_commit(queue.PROJECT_FEATURES, project_id=project.pk)
    return True
