"""Score reads: the candidates a selection takes, threshold counts, histograms and frozen score statistics."""

from __future__ import annotations

import io
from functools import lru_cache
from typing import Any

import numpy as np
from django.core.files.storage import default_storage
from django.db.models import Avg, Count, F, FloatField, IntegerField, Max, Min, QuerySet
from django.db.models.functions import Cast, Floor, Least
from numpy.typing import NDArray

from campaigns.models import Cycle, Item, ItemState, Score, Split

# A scored item stays a candidate while it is unlabeled and active (the one rule, for both reads below).
_CANDIDATE = {"label__isnull": True, "state": ItemState.ACTIVE}


def scores_candidates(*, cycle: Cycle, threshold: float | None) -> QuerySet[Score]:
    """Scores of the cycle at or above the threshold, most uncertain first, whose items are still unlabeled."""
    qs = Score.objects.filter(cycle=cycle, **{f"item__{k}": v for k, v in _CANDIDATE.items()})
    if threshold is not None:
        qs = qs.filter(uncertainty__gte=threshold)
    return qs.order_by("-uncertainty", "item_id")


def scores_candidate_arrays(*, cycle: Cycle, threshold: float | None) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """(item ids, uncertainties) of the candidates, in ascending (uncertainty, item id) order: the whole-pool
    strategies' input. Once scoring has finished they come from the sorted copy in storage, less the items labeled
    or set aside since (one query returning only those); before that, from one two-column query."""
    stored = scores_sorted(cycle_id=cycle.pk)
    ids = _load_sorted(scores_sorted_ids_name(cycle.pk)) if stored is not None else None
    if stored is None or ids is None or len(ids) != len(stored):  # scoring not finished, or frozen before ids were
        _load_sorted.cache_clear()  # don't remember "missing": the files appear when scoring ends
        qs = scores_candidates(cycle=cycle, threshold=threshold).order_by("uncertainty", "item_id")
        table = np.array(list(qs.values_list("item_id", "uncertainty")), dtype=[("id", np.int64), ("u", np.float64)])
        return np.ascontiguousarray(table["id"].reshape(-1)), np.ascontiguousarray(table["u"].reshape(-1))
    lo = 0 if threshold is None else int(np.searchsorted(stored, threshold, side="left"))
    # Only pool items are ever scored: the evaluation splits (labeled, and 20% of a project) need not be read.
    pool = Item.objects.filter(project_id=cycle.project_id, split=Split.POOL)
    gone = pool.exclude(**_CANDIDATE).values_list("pk", flat=True)
    keep = ~np.isin(ids[lo:], np.fromiter(gone, dtype=np.int64))
    return ids[lo:][keep].astype(np.int64), stored[lo:][keep].astype(np.float64)


_ORDERS: dict[str, tuple[NDArray[Any], NDArray[np.int64]]] = {}


def _id_order(name: str, ids: NDArray[Any]) -> NDArray[np.int64]:
    """argsort of a cycle's sorted-copy ids, computed once per loaded copy (kept with the very array it was computed
    from, so a copy loaded again, e.g. after a rescore, never meets an old order): item ids found by binary search."""
    cached = _ORDERS.get(name)
    if cached is None or cached[0] is not ids:
        if len(_ORDERS) >= 16:
            _ORDERS.pop(next(iter(_ORDERS)))
        cached = _ORDERS[name] = (ids, np.argsort(ids, kind="stable"))
    return cached[1]


def scores_top_candidates(*, cycle: Cycle, threshold: float | None, limit: int) -> tuple[NDArray[np.int64], int] | None:
    """(the ids of the `limit` most uncertain candidates, most uncertain first and ties by item id; how many
    candidates there are in all), from the sorted copy, or None before scoring has frozen it.

    Work per call is bounded by `limit` and the items labeled or set aside since scoring, not by the pool: the
    slider's preview asks this on every move, and at a million scores a pass over the whole copy cost ~0.1 s of CPU
    per request, which 50 users on 2 cores could not afford."""
    name = scores_sorted_ids_name(cycle.pk)
    for _ in range(2):  # a second read after a mismatch: the two files cached from two different writes
        stored = scores_sorted(cycle_id=cycle.pk)
        ids = _load_sorted(name) if stored is not None else None
        if stored is not None and ids is not None and len(ids) == len(stored):
            break
        _load_sorted.cache_clear()
    if stored is None or ids is None or len(ids) != len(stored):
        return None  # scoring has not frozen the copy (or froze it before ids were kept)
    order = _id_order(name, ids)
    n = len(ids)
    lo = 0 if threshold is None else int(np.searchsorted(stored, threshold, side="left"))
    pool = Item.objects.filter(project_id=cycle.project_id, split=Split.POOL)
    gone = np.fromiter(pool.exclude(**_CANDIDATE).values_list("pk", flat=True), dtype=np.int64)
    at: NDArray[Any] = gone[:0]
    if n and len(gone):
        at = order[np.searchsorted(ids, gone, sorter=order).clip(max=n - 1)]
        at = at[(ids[at] == gone) & (at >= lo)]  # positions of gone items among the candidates
    gone_at = at
    available = n - lo - len(gone_at)
    # The top `limit` lie in the last limit + len(gone_at) positions, widened to every tie of its first value.
    start = max(lo, n - limit - len(gone_at))
    if start < n:
        start = max(lo, int(np.searchsorted(stored, stored[start], side="left")))
    tail: NDArray[Any] = np.arange(start, n)
    tail = tail[~np.isin(tail, gone_at)]
    top_ids, top_u = ids[tail].astype(np.int64), stored[tail]
    return top_ids[np.lexsort((top_ids, -top_u))[:limit]], available


def scores_count_at_least(*, cycle: Cycle, threshold: float | None) -> int:
    """How many of the cycle's scores reach the threshold.

    Scores never change once scoring ends, so a sorted copy of the uncertainties (stored then) answers by binary
    search in microseconds whatever the threshold; before that, the index on (cycle, -uncertainty) answers.
    """
    sorted_scores = scores_sorted(cycle_id=cycle.pk)
    if sorted_scores is not None:
        if threshold is None:
            return len(sorted_scores)
        return int(len(sorted_scores) - np.searchsorted(sorted_scores, threshold, side="left"))
    qs = Score.objects.filter(cycle=cycle)
    if threshold is not None:
        qs = qs.filter(uncertainty__gte=threshold)
    return qs.count()


def scores_sorted_name(cycle_id: int) -> str:
    return f"cycles/{cycle_id}/uncertainty_sorted.npy"


def scores_sorted_ids_name(cycle_id: int) -> str:
    """The item ids aligned with the sorted uncertainties."""
    return f"cycles/{cycle_id}/uncertainty_sorted_ids.npy"


@lru_cache(maxsize=16)
def _load_sorted(name: str) -> NDArray[Any] | None:
    if not default_storage.exists(name):
        return None
    with default_storage.open(name, "rb") as fh:
        return np.load(io.BytesIO(fh.read()))


def scores_sorted(*, cycle_id: int) -> NDArray[np.float64] | None:
    """The cycle's uncertainties in ascending order, once scoring has finished (cached per process)."""
    result = _load_sorted(scores_sorted_name(cycle_id))
    if result is None:
        _load_sorted.cache_clear()  # don't remember "missing": the file appears when scoring ends
    return result


def scores_histogram(*, cycle: Cycle, bins: int = 50) -> dict[str, Any]:
    """The score distribution, re-binned from the fine histogram stored when scoring finished (no table scan)."""
    stats = cycle.score_stats or {}
    fine = stats.get("histogram") or []
    if not fine:
        return {"edges": [], "counts": [], "count": 0, "min": None, "max": None, "mean": None}
    lo, hi = stats["min"], stats["max"]
    group = max(1, len(fine) // bins)
    counts = [sum(fine[i : i + group]) for i in range(0, len(fine), group)]
    width = (hi - lo) / len(counts) if hi > lo else 0.0
    edges = [lo + i * width for i in range(len(counts) + 1)]
    return {"edges": edges, "counts": counts, "count": stats["count"], "min": lo, "max": hi, "mean": stats["mean"]}


FINE_BINS = 200


def scores_stats_compute(*, cycle: Cycle) -> dict[str, Any]:
    """Count, min, max, mean and a fine histogram of the cycle's scores: computed once when scoring ends and
    stored on the cycle, so the dashboard's slider never scans the score table."""

    agg = Score.objects.filter(cycle=cycle).aggregate(
        n=Count("pk"), lo=Min("uncertainty"), hi=Max("uncertainty"), mean=Avg("uncertainty")
    )
    if not agg["n"]:
        return {"count": 0, "histogram": [], "min": None, "max": None, "mean": None}
    lo, hi = float(agg["lo"]), float(agg["hi"])
    counts = [0] * FINE_BINS
    if hi > lo:
        width = (hi - lo) / FINE_BINS

        bucket = Least(Cast(Floor((Cast("uncertainty", FloatField()) - lo) / width), IntegerField()), FINE_BINS - 1)
        for row in Score.objects.filter(cycle=cycle).annotate(b=bucket).values("b").annotate(c=Count("pk")).order_by():
            counts[int(row["b"])] = row["c"]
    else:
        counts[0] = agg["n"]
    return {"count": agg["n"], "histogram": counts, "min": lo, "max": hi, "mean": float(agg["mean"])}


def scores_for_cycle(
    *,
    cycle: Cycle,
    min_uncertainty: float | None = None,
    max_uncertainty: float | None = None,
    predicted_label: str | None = None,
    descending: bool = True,
) -> QuerySet[Score]:
    """A cycle's scores in uncertainty order (most uncertain first by default), with the item key annotated.

    The (cycle, -uncertainty) index serves the filter on cycle and uncertainty and the order, in either direction;
    the item id only breaks ties, so pages are stable (Postgres sorts just the rows that tie).
    """
    qs = Score.objects.filter(cycle=cycle)
    if min_uncertainty is not None:
        qs = qs.filter(uncertainty__gte=min_uncertainty)
    if max_uncertainty is not None:
        qs = qs.filter(uncertainty__lte=max_uncertainty)
    if predicted_label is not None:
        qs = qs.filter(predicted_label=predicted_label)
    order = ("-uncertainty", "item_id") if descending else ("uncertainty", "item_id")
    return qs.annotate(key=F("item__key")).order_by(*order)


def cycle_has_scores(*, cycle: Cycle) -> bool:
    """Scoring finished and stored its statistics: what a preview and a selection rank by."""
    return bool((cycle.score_stats or {}).get("count"))
