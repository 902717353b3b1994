"""Freezing a cycle's score distribution when scoring ends: statistics on the cycle, a sorted copy in storage."""

from __future__ import annotations

import io

import numpy as np
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from campaigns.models import Cycle, Score
from campaigns.selectors import scores_sorted_ids_name, scores_sorted_name, scores_stats_compute


def score_stats_freeze(*, cycle: Cycle) -> dict[str, object]:
    """Store the fine histogram on the cycle and, in storage, the uncertainties in ascending order with their item
    ids beside them (ties by item id); idempotent. The ids let whole-pool strategies (PowerBALD, random, Coreset,
    BADGE) draw from a million candidates without reading a million rows again at every preview."""
    stats = scores_stats_compute(cycle=cycle)
    rows = (
        Score.objects.filter(cycle=cycle).order_by().values_list("uncertainty", "item_id").iterator(chunk_size=50_000)
    )
    table = np.array(list(rows), dtype=[("u", np.float64), ("id", np.int64)]).reshape(-1)
    table.sort(order=["u", "id"])
    for name, values in ((scores_sorted_name(cycle.pk), table["u"]), (scores_sorted_ids_name(cycle.pk), table["id"])):
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(values))
        if default_storage.exists(name):
            default_storage.delete(name)
        default_storage.save(name, ContentFile(buf.getvalue()))
    Cycle.objects.filter(pk=cycle.pk).update(score_stats=stats)
    cycle.score_stats = stats
    return stats
