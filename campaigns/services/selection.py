"""Selection: which items a cycle sends to annotators, under a budget (max items) and threshold (min uncertainty).

The preview answers the same question without writing anything (the dashboard's slider calls it on every move);
`selection_make` stores the answer immutably with its parameters, model version, and each item's rank and score.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from numpy.typing import NDArray

from campaigns.models import ColdStart, Cycle, Purpose, Score, SelectedItem, Selection, Strategy, TaskType
from campaigns.selectors import (
    items_labeled,
    items_pool,
    scores_candidate_arrays,
    scores_candidates,
    scores_count_at_least,
    scores_histogram,
    scores_top_candidates,
)
from campaigns.services.cycles import InvalidTransition, cycle_transition
from campaigns.services.embeddings import embeddings_for, embeddings_labeled, probabilities_for
from campaigns.services.evaluation import evaluation_picks
from campaigns.services.features import FeatureError, raw_features
from campaigns.services.params import DEFAULT_CANDIDATES_FACTOR, RELABEL_ACTIVELAB, SelectionParams
from campaigns.services.relabel import relabel_split
from campaigns.services.reviews import reviews_request
from campaigns.states import CycleState
from engine import selection as strategies

log = logging.getLogger(__name__)

# k-means cold starts cluster a seeded sample of at most this many pool items: reading every image of a million-item
# pool to choose a few dozen would take longer than labeling them, and a sample this size already shows the modes.
COLD_START_SAMPLE = 5000


@dataclass(frozen=True, slots=True)
class Pick:
    item_id: int
    uncertainty: float | None
    predicted_label: str
    confidence: float | None


def _pick(cycle: Cycle, params: SelectionParams, *, notes: dict[str, Any] | None = None) -> list[Pick]:
    """The picks in rank order; `notes` receives anything the stored selection should explain (e.g. a fallback)."""
    has_scores = Score.objects.filter(cycle=cycle).exists()
    budget, options, seed = params.budget, params.options, params.seed
    notes = {} if notes is None else notes
    if not has_scores:
        method = options.get("cold_start", ColdStart.RANDOM)
        return _cold_start(cycle, budget=budget, method=method, seed=seed, notes=notes)
    qs = scores_candidates(cycle=cycle, threshold=params.threshold)
    strategy = params.strategy
    if strategy == Strategy.TOPK:
        top = scores_top_candidates(cycle=cycle, threshold=params.threshold, limit=budget)
        if top is not None:  # scoring done: the sorted copy, not a sort of the pool's rows
            return _rows_of(cycle, top[0])
        return [Pick(*r[:4]) for r in qs.values_list(*_FIELDS)[:budget]]
    if strategy in (Strategy.POWER, Strategy.RANDOM, Strategy.CORESET, Strategy.BADGE):
        return _pick_from_all(cycle, params, notes)
    if strategy == Strategy.DIVERSE:
        limit = budget * options.get("candidates_factor", DEFAULT_CANDIDATES_FACTOR)
        rows = _rows_of(cycle, _most_uncertain(cycle, params.threshold, limit), with_chunk=True)
    else:
        rows = list(qs.values_list(*_FIELDS))
    u = np.asarray([r[1] for r in rows], dtype=np.float64)
    if strategy == Strategy.QUOTA:
        order = strategies.class_quota(u, [r[2] for r in rows], budget, options["quotas"])
    else:  # diverse: the most uncertain candidate first, then k-center over the rest and the labeled set
        emb = _embeddings(cycle, rows, strategy)
        order = strategies.k_center_greedy(emb, budget, labeled=_labeled(cycle, notes), start=0)
    return [Pick(*rows[int(p)][:4]) for p in order]


_FIELDS = ("item_id", "uncertainty", "predicted_label", "confidence", "chunk")


def _pick_from_all(cycle: Cycle, params: SelectionParams, notes: dict[str, Any]) -> list[Pick]:
    """Strategies over the whole scored pool: PowerBALD and random draw from all of it, Coreset and BADGE from a
    seeded uniform sample of candidates_factor x budget. Every candidate's (item id, uncertainty) comes from the
    sorted copy stored when scoring ended; the other fields are read only for the rows used. Measured at a million
    scored items on a 2-core machine under a load of 6: power 1.0 s, random 0.7 s (top-k's own query: 3.2 s);
    reading the million rows instead took about 4 s."""
    budget, options, seed = params.budget, params.options, params.seed
    ids, u = scores_candidate_arrays(cycle=cycle, threshold=params.threshold)
    if params.strategy == Strategy.POWER:
        return _rows_of(cycle, ids[strategies.power_sample(u, budget, seed=seed, power=options["power"])])
    if params.strategy == Strategy.RANDOM:
        return _rows_of(cycle, ids[strategies.random_sample(len(ids), budget, seed=seed)])
    limit = budget * options["candidates_factor"]
    if len(ids) > limit:
        # A different stream from the strategies' own draws (BADGE samples with `seed` too).
        sample = np.random.default_rng([seed, 1]).choice(len(ids), limit, replace=False)
        ids = ids[np.sort(sample)]
        notes["candidates_sampled"] = int(limit)
    rows = _rows_of(cycle, ids, with_chunk=True)
    emb = _embeddings(cycle, rows, params.strategy)
    if params.strategy == Strategy.CORESET:
        order = strategies.k_center_greedy(emb, budget, labeled=_labeled(cycle, notes))
    else:
        chunk_of = {r[0]: r[4] for r in rows}
        probs = probabilities_for(cycle_id=cycle.pk, item_ids=[r[0] for r in rows], chunk_of=chunk_of)
        if probs is None:
            raise ValidationError({"strategy": "badge needs the class probabilities stored when scoring; rescore"})
        order = strategies.badge(probs, emb, budget, seed=seed)
    return [Pick(*rows[int(p)][:4]) for p in order]


def qs_top(cycle: Cycle, threshold: float | None, limit: int) -> list[tuple[Any, ...]]:
    """The `limit` most uncertain candidates' score rows, by the index on (cycle, -uncertainty)."""
    return list(scores_candidates(cycle=cycle, threshold=threshold).values_list(*_FIELDS)[:limit])


def _most_uncertain(cycle: Cycle, threshold: float | None, limit: int) -> NDArray[np.int64]:
    """The ids of the `limit` most uncertain candidates, most uncertain first and ties by item id (the order of
    `scores_candidates`), taken from the sorted copy when scoring has frozen it: at a million scores the database's
    own sort of the pool took 1.7 s of the diverse strategy's 10 s."""
    top = scores_top_candidates(cycle=cycle, threshold=threshold, limit=limit)
    return top[0] if top is not None else _top_of(*scores_candidate_arrays(cycle=cycle, threshold=threshold), limit)


def _top_of(ids: NDArray[np.int64], u: NDArray[np.float64], limit: int) -> NDArray[np.int64]:
    """The `limit` most uncertain of candidates given in ascending (uncertainty, item id) order, most uncertain first
    and ties by item id."""
    if len(ids) > limit:
        lo = int(np.searchsorted(u, u[len(u) - limit], side="left"))  # every tie of the last one kept is a candidate
        ids, u = ids[lo:], u[lo:]
    return ids[np.lexsort((ids, -u))[:limit]]


def _rows_of(cycle: Cycle, item_ids: NDArray[np.int64], *, with_chunk: bool = False) -> Any:
    """The score rows of these items, in this order (Picks, or full rows with the chunk when `with_chunk`)."""
    wanted = [int(i) for i in item_ids]
    found = {r[0]: r for r in Score.objects.filter(cycle=cycle, item_id__in=wanted).values_list(*_FIELDS)}
    rows = [found[i] for i in wanted]
    return rows if with_chunk else [Pick(*r[:4]) for r in rows]


def _embeddings(cycle: Cycle, rows: list[tuple[Any, ...]], strategy: str) -> NDArray[np.float32]:
    emb = embeddings_for(cycle_id=cycle.pk, item_ids=[r[0] for r in rows], chunk_of={r[0]: r[4] for r in rows})
    if emb is None:
        raise ValidationError({"strategy": f"{strategy} needs the model's embeddings, which this cycle does not have"})
    return emb


def _labeled(cycle: Cycle, notes: dict[str, Any]) -> NDArray[np.float32] | None:
    """The labeled set's embeddings that k-center starts from (none stored: an older cycle, or nothing labeled)."""
    labeled = embeddings_labeled(cycle_id=cycle.pk)
    notes["labeled_embeddings"] = 0 if labeled is None else len(labeled)
    return labeled


def _cold_start(cycle: Cycle, *, budget: int, method: str, seed: int, notes: dict[str, Any]) -> list[Pick]:
    """No model yet, so nothing to rank by: a seeded random sample of the pool, or one pick per k-means cluster
    (the item nearest the centre, or TypiClust's most typical item).

    Clustering needs every sampled item's content (pixels or text); a pool of remote image URLs has none, so the
    cold start falls back to the random sample and says why in `notes` (stored with the selection)."""
    pool = list(items_pool(project=cycle.project).values_list("pk", flat=True))
    if method in (ColdStart.KMEANS, ColdStart.TYPICLUST) and len(pool) > budget:
        ids = pool
        if len(ids) > COLD_START_SAMPLE:
            sample = np.sort(np.random.default_rng(seed).choice(len(ids), COLD_START_SAMPLE, replace=False))
            ids = [pool[int(p)] for p in sample]
        try:
            x = raw_features(cycle.project, ids)
        except FeatureError as exc:
            notes["cold_start_fallback"] = f"random sample: k-means needs every item's content ({exc})"
            log.warning("cycle %s: %s cold start not possible, random sample instead: %s", cycle.pk, method, exc)
        else:
            notes["cold_start"] = str(method)
            pick = strategies.typiclust if method == ColdStart.TYPICLUST else strategies.kmeans_diverse
            return [Pick(ids[int(p)], None, "", None) for p in pick(x, budget, seed=seed)]
    notes["cold_start"] = (
        ColdStart.RANDOM.value
    )  # asked for, fallen back to, or a pool no larger than the budget (all of it)
    return [Pick(pool[p], None, "", None) for p in strategies.random_sample(len(pool), budget, seed=seed)]


def selection_warnings(*, params: SelectionParams, qualifying: int, histogram: dict[str, Any]) -> list[str]:
    """What a person should know before selecting: a threshold that lets fewer items through than the budget (raw
    uncertainty scales differ by heuristic, class count and model, so an absolute threshold is easy to misjudge), and
    that re-labels (ActiveLab) may take part of the budget."""
    notes = []
    if params.options.get("relabel") == RELABEL_ACTIVELAB:
        most = int(float(params.options["relabel_max_share"]) * params.budget)
        notes.append(
            f"up to {most} of the budget may go to re-labels (ActiveLab decides when selecting): the items listed "
            "here are the new ones the strategy would take, and the last ones give way to re-labels"
        )
    if params.threshold is None or qualifying >= params.budget:
        return notes
    scale = ""
    if histogram.get("min") is not None:
        scale = f" (this cycle's scores range from {histogram['min']:.4g} to {histogram['max']:.4g})"
    return [
        *notes,
        f"only {qualifying} scored items reach the threshold {params.threshold:.4g}, fewer than the budget of "
        f"{params.budget}: the selection will be smaller{scale}; a threshold_quantile (a share of the pool) "
        "does not depend on the scores' scale",
    ]


def selection_preview(*, cycle: Cycle, params: SelectionParams, show: int = 20) -> dict[str, Any]:
    """How many items pass the threshold, the score histogram, and what the budget would select. Writes nothing."""
    qualifying = scores_count_at_least(cycle=cycle, threshold=params.threshold)
    if params.strategy == Strategy.TOPK and Score.objects.filter(cycle=cycle).exists():
        # The slider's common case: read only the rows shown; the count of what the budget takes needs no rows.
        # Two index-ordered, LIMITed queries. Not the sorted copy: read on every slider move by 50 users, its
        # per-request work (the items labeled since scoring, the copy itself) cost more than these at p95.
        picks = [Pick(*r[:4]) for r in qs_top(cycle, params.threshold, min(params.budget, show))]
        would_select = min(
            params.budget, scores_candidates(cycle=cycle, threshold=params.threshold)[: params.budget].count()
        )
    else:
        picks = _pick(cycle, params)
        would_select = len(picks)
    histogram = scores_histogram(cycle=cycle)
    return {
        # Scored items at or above the threshold; items labeled or set aside since scoring are skipped when
        # selecting, so would_select may be smaller than both the budget and this count.
        "qualifying": qualifying,
        "would_select": would_select,
        "histogram": histogram,
        "threshold": params.threshold,
        "threshold_quantile": params.threshold_quantile,
        "warnings": selection_warnings(params=params, qualifying=qualifying, histogram=histogram),
        "budget": params.budget,
        "strategy": params.strategy,
        "items": [asdict(p) for p in picks[:show]],
    }


def _boxes_of(cycle: Cycle, picks: list[Pick]) -> dict[int, Any]:
    """The predicted boxes of the picked items (detection), read only for the picks: a pool's boxes are far bigger
    than its scores, and every strategy reads scores without them."""
    ids = [p.item_id for p in picks if p.uncertainty is not None]
    if not ids or cycle.project.task_type != TaskType.OBJECT_DETECTION:
        return {}
    return dict(Score.objects.filter(cycle=cycle, item_id__in=ids, boxes__isnull=False).values_list("item_id", "boxes"))


def selection_make(*, cycle: Cycle, params: SelectionParams | None = None) -> Selection:
    """Select and store, once (with the cycle's own parameters when `params` is None). A second call (a redelivered
    task, a double click) returns the existing selection if the cycle already selected, and raises
    InvalidTransition if the cycle is elsewhere."""
    existing = Selection.objects.filter(cycle=cycle).first()
    if existing is not None:
        return existing
    if params is None:
        params = SelectionParams.for_cycle(cycle)
    # The stored selection is reproducible from the cycle: its seed is the cycle's.
    params = replace(params, seed=cycle.seed)
    cold_start = not Score.objects.filter(cycle=cycle).exists() and not items_labeled(project=cycle.project).exists()
    # The (possibly slow) choice runs outside the transaction; the claim and the write are one atomic step.
    notes: dict[str, Any] = {}
    picks = _pick(cycle, params, notes=notes)
    relabels: list[int] = []
    if params.options.get("relabel") == RELABEL_ACTIVELAB and not cold_start:
        # Part of the budget may go to labeled items again (ActiveLab): the strategy's picks keep the rest.
        split = relabel_split(
            cycle=cycle,
            new_item_ids=[p.item_id for p in picks],
            budget=params.budget,
            max_share=float(params.options["relabel_max_share"]),
        )
        picks, relabels = picks[: split.new], split.item_ids
        notes.update(split.notes)
    # The evaluation sample rides along (validation/test items no model chose), on top of the budget.
    evaluation = evaluation_picks(project=cycle.project)
    boxes = _boxes_of(cycle, picks)
    try:
        with transaction.atomic():
            cycle_transition(
                cycle_id=cycle.pk,
                to=CycleState.SELECTED,
                # "created" only for a true cold start: with labels, the cycle must train and score first.
                from_states=[CycleState.SCORED, *([CycleState.CREATED] if cold_start else [])],
                budget=params.budget,
                # A quantile stays the cycle's setting (the absolute value it resolved to is in the selection).
                threshold=params.threshold if params.threshold_quantile is None else None,
                threshold_quantile=params.threshold_quantile,
                strategy=params.strategy,
                strategy_params=dict(params.options),
            )
            selection = Selection.objects.create(
                cycle=cycle,
                model_version=cycle.model_version,
                strategy=params.strategy,
                params={
                    "budget": params.budget,
                    "threshold": params.threshold,
                    "threshold_quantile": params.threshold_quantile,
                    "seed": cycle.seed,
                    "heuristic": cycle.heuristic,
                    # The cold-start option is recorded only where a cold start happened (via notes, as done).
                    **{k: v for k, v in params.options.items() if k != "cold_start"},
                    **notes,
                    "evaluation": len(evaluation),
                },
                size=len(picks) + len(evaluation),
            )
            SelectedItem.objects.bulk_create(
                [
                    SelectedItem(
                        selection=selection,
                        item_id=p.item_id,
                        rank=rank,
                        uncertainty=p.uncertainty,
                        predicted_label=p.predicted_label,
                        confidence=p.confidence,
                        boxes=boxes.get(p.item_id),
                    )
                    for rank, p in enumerate(picks)
                ]
                + [
                    SelectedItem(selection=selection, item_id=item_id, rank=rank, purpose=Purpose.EVALUATION)
                    for rank, item_id in enumerate(evaluation, start=len(picks))
                ],
                batch_size=5000,
            )
            if relabels:  # review tasks in Label Studio, their sync sent once this commits
                reviews_request(project=cycle.project, item_ids=relabels)
    except (InvalidTransition, IntegrityError):
        existing = Selection.objects.filter(cycle=cycle).first()
        if existing is not None:
            return existing
        raise
    cycle.refresh_from_db()
    return selection
