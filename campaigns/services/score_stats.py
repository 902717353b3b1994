"""Freezing a cycle's score distribution when scoring ends: statistics on the cycle, a sorted copy in storage."""

from __future__ import annotations

import io

import numpy as np
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from campaigns.models import Cycle, Score
from campaigns.selectors import scores_sorted_name, scores_stats_compute


def score_stats_freeze(*, cycle: Cycle) -> dict[str, object]:
    """Store the fine histogram on the cycle and the sorted uncertainties in storage; idempotent."""
    stats = scores_stats_compute(cycle=cycle)
    values = np.fromiter(
        Score.objects.filter(cycle=cycle).order_by().values_list("uncertainty", flat=True).iterator(chunk_size=50_000),
        dtype=np.float64,
    )
    values.sort()
    buf = io.BytesIO()
    np.save(buf, values)
    name = scores_sorted_name(cycle.pk)
    if default_storage.exists(name):
        default_storage.delete(name)
    default_storage.save(name, ContentFile(buf.getvalue()))
    Cycle.objects.filter(pk=cycle.pk).update(score_stats=stats)
    cycle.score_stats = stats
    return stats
