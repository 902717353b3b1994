"""Selection: which items a cycle sends to annotators, under a budget (max items) and threshold (min uncertainty).

The preview answers the same question without writing anything (the dashboard's slider calls it on every move);
`selection_make` stores the answer immutably with its parameters, model version, and each item's rank and score.
"""

from __future__ import annotations

import enum
import logging
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from campaigns import strategies
from campaigns.models import Cycle, CycleState, Score, SelectedItem, Selection
from campaigns.selectors import candidates, labeled_items, pool_for_cycle, score_histogram, threshold_count
from campaigns.services.cycles import InvalidTransition, cycle_transition, validate_cycle_params
from campaigns.services.embeddings import embeddings_for
from campaigns.services.features import FeatureError, raw_features

log = logging.getLogger(__name__)

STRATEGIES = ("topk", "power", "diverse", "quota", "random")
# Diversity and stochastic sampling look at this many times the budget of top candidates.
DEFAULT_CANDIDATES_FACTOR = 10
# How a cycle without a model picks: a seeded random sample, or one item per k-means cluster of the pool's raw
# features (pixels, or the frozen text encoder's embeddings) so the first labels cover the data's main modes.
COLD_STARTS = ("random", "kmeans")
# k-means cold starts cluster a seeded sample of at most this many pool items: reading every image of a million-item
# pool to choose a few dozen would take longer than labeling them, and a sample this size already shows the modes.
COLD_START_SAMPLE = 5000


def validate_strategy(strategy: str, params: dict[str, Any], *, labels: list[str]) -> dict[str, Any]:
    """Check a strategy name and its options; returns the options with defaults filled in."""
    if strategy not in STRATEGIES:
        raise ValidationError({"strategy": f"must be one of {', '.join(STRATEGIES)}"})
    if not isinstance(params, dict):
        raise ValidationError({"strategy_params": "must be an object"})
    clean = dict(params)
    # Diversity is what the user asked for, so its cold start is diverse too; the others start at random.
    cold = clean.setdefault("cold_start", "kmeans" if strategy == "diverse" else "random")
    if cold not in COLD_STARTS:
        raise ValidationError({"strategy_params": f"cold_start must be one of {', '.join(COLD_STARTS)}"})
    if strategy == "power":
        power = clean.setdefault("power", 1.0)
        if isinstance(power, bool) or not isinstance(power, int | float) or not math.isfinite(power) or power <= 0:
            raise ValidationError({"strategy_params": "power must be a finite number > 0"})
    if strategy in ("diverse", "power"):
        factor = clean.setdefault("candidates_factor", DEFAULT_CANDIDATES_FACTOR)
        if isinstance(factor, bool) or not isinstance(factor, int) or not 1 <= factor <= 1000:
            raise ValidationError({"strategy_params": "candidates_factor must be an integer between 1 and 1000"})
    if strategy == "quota":
        quotas = clean.get("quotas")
        if not isinstance(quotas, dict) or not quotas:
            raise ValidationError({"strategy_params": "quota needs quotas: {label: share of the budget}"})
        for label, share in quotas.items():
            if label not in labels:
                raise ValidationError({"strategy_params": f"quotas: unknown label {label!r}"})
            if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
                raise ValidationError({"strategy_params": f"quotas: share of {label!r} must be in [0, 1]"})
    return clean


@dataclass(frozen=True, slots=True)
class Pick:
    item_id: int
    uncertainty: float | None
    predicted_label: str
    confidence: float | None


def _pick(
    cycle: Cycle,
    *,
    budget: int,
    threshold: float | None,
    strategy: str,
    params: dict[str, Any],
    seed: int,
    notes: dict[str, Any] | None = None,
) -> list[Pick]:
    """The picks in rank order; `notes` receives anything the stored selection should explain (e.g. a fallback)."""
    has_scores = Score.objects.filter(cycle=cycle).exists()
    if not has_scores:
        method = params.get("cold_start", "random")
        return _cold_start(cycle, budget=budget, method=method, seed=seed, notes={} if notes is None else notes)
    qs = candidates(cycle=cycle, threshold=threshold)
    fields = ("item_id", "uncertainty", "predicted_label", "confidence", "chunk")
    if strategy == "topk":
        return [Pick(*r[:4]) for r in qs.values_list(*fields)[:budget]]
    limit = budget * params.get("candidates_factor", DEFAULT_CANDIDATES_FACTOR)
    rows = list(qs.values_list(*fields)[: limit if strategy in ("diverse", "power") else None])
    u = np.asarray([r[1] for r in rows], dtype=np.float64)
    if strategy == "power":
        order = strategies.power_sample(u, budget, seed=seed, power=params["power"])
    elif strategy == "quota":
        order = strategies.class_quota(u, [r[2] for r in rows], budget, params["quotas"])
    elif strategy == "random":
        order = strategies.random_sample(len(rows), budget, seed=seed)
    else:
        emb = embeddings_for(cycle_id=cycle.pk, item_ids=[r[0] for r in rows], chunk_of={r[0]: r[4] for r in rows})
        if emb is None:
            raise ValidationError({"strategy": "diverse needs the model's embeddings, which this cycle does not have"})
        order = strategies.k_center_greedy(emb, budget)
    return [Pick(*rows[int(p)][:4]) for p in order]


def _cold_start(cycle: Cycle, *, budget: int, method: str, seed: int, notes: dict[str, Any]) -> list[Pick]:
    """No model yet, so nothing to rank by: a seeded random sample of the pool, or k-means-diverse picks.

    k-means needs every sampled item's content (pixels or text); a pool of remote image URLs has none, so the
    cold start falls back to the random sample and says why in `notes` (stored with the selection)."""
    pool = list(pool_for_cycle(project=cycle.project).values_list("pk", flat=True))
    if method == "kmeans" and len(pool) > budget:
        ids = pool
        if len(ids) > COLD_START_SAMPLE:
            sample = np.sort(np.random.default_rng(seed).choice(len(ids), COLD_START_SAMPLE, replace=False))
            ids = [pool[int(p)] for p in sample]
        try:
            x = raw_features(cycle.project, ids)
        except FeatureError as exc:
            notes["cold_start_fallback"] = f"random sample: k-means needs every item's content ({exc})"
            log.warning("cycle %s: k-means cold start not possible, random sample instead: %s", cycle.pk, exc)
        else:
            notes["cold_start"] = "kmeans"
            return [Pick(ids[int(p)], None, "", None) for p in strategies.kmeans_diverse(x, budget, seed=seed)]
    notes["cold_start"] = "random"  # asked for, fallen back to, or a pool no larger than the budget (all of it)
    return [Pick(pool[p], None, "", None) for p in strategies.random_sample(len(pool), budget, seed=seed)]


def selection_preview(
    *,
    cycle: Cycle,
    budget: int,
    threshold: float | None,
    strategy: str | None = None,
    params: dict[str, Any] | None = None,
    seed: int | None = None,
    show: int = 20,
) -> dict[str, Any]:
    """How many items pass the threshold, the score histogram, and what the budget would select. Writes nothing."""
    validate_cycle_params(
        budget=budget, threshold=threshold, mc_iterations=cycle.mc_iterations, heuristic=cycle.heuristic, seed=seed or 0
    )
    strategy = strategy or cycle.strategy
    params = validate_strategy(
        strategy, params if params is not None else cycle.strategy_params, labels=cycle.project.labels
    )
    qualifying = threshold_count(cycle=cycle, threshold=threshold)
    if strategy == "topk" and Score.objects.filter(cycle=cycle).exists():
        # The slider's common case: read only the rows shown; the count of what the budget takes needs no rows.
        picks = _pick(cycle, budget=min(budget, show), threshold=threshold, strategy=strategy, params=params, seed=0)
        would_select = min(budget, candidates(cycle=cycle, threshold=threshold)[:budget].count())
    else:
        picks = _pick(
            cycle,
            budget=budget,
            threshold=threshold,
            strategy=strategy,
            params=params,
            seed=cycle.seed if seed is None else seed,
        )
        would_select = len(picks)
    return {
        # Scored items at or above the threshold; items labeled or set aside since scoring are skipped when
        # selecting, so would_select may be smaller than both the budget and this count.
        "qualifying": qualifying,
        "would_select": would_select,
        "histogram": score_histogram(cycle=cycle),
        "threshold": threshold,
        "budget": budget,
        "strategy": strategy,
        "items": [asdict(p) for p in picks[:show]],
    }


class _CycleValue(enum.Enum):
    """ "Not given: use the cycle's", where None already means something (no threshold)."""

    CYCLE = "cycle"


CYCLE_VALUE = _CycleValue.CYCLE


def selection_make(
    *,
    cycle: Cycle,
    budget: int | None = None,
    threshold: float | _CycleValue | None = CYCLE_VALUE,
    strategy: str | None = None,
    params: dict[str, Any] | None = None,
) -> Selection:
    """Select and store, once. A second call (a redelivered task, a double click) returns the existing selection
    if the cycle already selected, and raises InvalidTransition if the cycle is elsewhere.

    `threshold=None` selects without a threshold, as the preview does; leaving it out keeps the cycle's."""
    existing = Selection.objects.filter(cycle=cycle).first()
    if existing is not None:
        return existing
    budget = cycle.budget if budget is None else budget
    threshold = cycle.threshold if isinstance(threshold, _CycleValue) else threshold
    strategy = strategy or cycle.strategy
    params = validate_strategy(
        strategy, params if params is not None else cycle.strategy_params, labels=cycle.project.labels
    )
    validate_cycle_params(
        budget=budget,
        threshold=threshold,
        mc_iterations=cycle.mc_iterations,
        heuristic=cycle.heuristic,
        seed=cycle.seed,
    )
    cold_start = not Score.objects.filter(cycle=cycle).exists() and not labeled_items(project=cycle.project).exists()
    # The (possibly slow) choice runs outside the transaction; the claim and the write are one atomic step.
    notes: dict[str, Any] = {}
    picks = _pick(
        cycle, budget=budget, threshold=threshold, strategy=strategy, params=params, seed=cycle.seed, notes=notes
    )
    try:
        with transaction.atomic():
            cycle_transition(
                cycle_id=cycle.pk,
                to=CycleState.SELECTED,
                # "created" only for a true cold start: with labels, the cycle must train and score first.
                from_states=[CycleState.SCORED, *([CycleState.CREATED] if cold_start else [])],
                budget=budget,
                threshold=threshold,
                strategy=strategy,
                strategy_params=params,
            )
            selection = Selection.objects.create(
                cycle=cycle,
                model_version=cycle.model_version,
                strategy=strategy,
                params={
                    "budget": budget,
                    "threshold": threshold,
                    "seed": cycle.seed,
                    "heuristic": cycle.heuristic,
                    # The cold-start option is recorded only where a cold start happened (via notes, as done).
                    **{k: v for k, v in params.items() if k != "cold_start"},
                    **notes,
                },
                size=len(picks),
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
                    )
                    for rank, p in enumerate(picks)
                ],
                batch_size=5000,
            )
    except (InvalidTransition, IntegrityError):
        existing = Selection.objects.filter(cycle=cycle).first()
        if existing is not None:
            return existing
        raise
    cycle.refresh_from_db()
    return selection
