"""A cycle's parameters, validated in one place: the checks every surface shares, and `SelectionParams`, the one
typed value a selection (its preview and the stored one) is made from.

One meaning of a value left out, everywhere (dashboard, API, service): a selection parameter that is not given
keeps the cycle's own value; an explicit `threshold: null` means no threshold. The cycle's strategy options belong
to its strategy: another strategy without options starts from that strategy's defaults.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from django.core.exceptions import ValidationError
from numpy.typing import NDArray

from campaigns.models import ColdStart, Heuristic, Strategy
from campaigns.selectors import scores_sorted
from engine.heuristics import NEEDS_SAMPLES
from engine.multiannotator import DEFAULT_MAX_RELABEL_SHARE

if TYPE_CHECKING:
    from campaigns.models import Cycle

MAX_MC_ITERATIONS = 1000
MAX_BUDGET = 1_000_000
MAX_SEED = 2**63 - 1  # Cycle.seed is a bigint
# `diverse` thins this many times the budget of its most uncertain candidates.
DEFAULT_CANDIDATES_FACTOR = 10
# Coreset and BADGE look at a seeded uniform sample of this many times the budget of the scored pool (all of it
# when smaller): their distance passes cost candidates x budget, and a uniform sample keeps the algorithms' own
# distribution, where a top-uncertainty cut would turn them into something else.
DEFAULT_SAMPLE_FACTOR = 50
# The one re-labeling method: ActiveLab's scores decide how much of the budget goes to labeled items.
RELABEL_ACTIVELAB = "activelab"


class Keep(enum.Enum):
    """ "Not given: keep the cycle's value", where None already means something (no threshold)."""

    CYCLE = "cycle"


KEEP = Keep.CYCLE


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def passes_problem(heuristic: str, mc_iterations: int) -> str | None:
    """Why these MC dropout passes cannot feed this heuristic (found at validation, not after minutes of
    training), or None. BALD and its kin measure disagreement between passes: one pass has none."""
    if heuristic in NEEDS_SAMPLES and mc_iterations < 2:
        return f"{heuristic} needs at least 2 MC dropout passes (it measures how much they disagree)"
    return None


def validate_cycle_params(
    *, budget: Any, threshold: Any, mc_iterations: Any, heuristic: Any, seed: Any, threshold_quantile: Any = None
) -> None:
    """Raise django ValidationError {field: reason} for out-of-range, non-finite or wrongly typed parameters."""
    errors: dict[str, str] = {}
    if threshold_quantile is not None:
        if not _is_number(threshold_quantile) or not 0 < threshold_quantile <= 1:
            errors["threshold_quantile"] = "must be a share of the scored pool in (0, 1] (0.2: the 20% most uncertain)"
        elif threshold is not None:
            errors["threshold_quantile"] = "give threshold or threshold_quantile, not both"
    if not _is_int(budget) or not 1 <= budget <= MAX_BUDGET:
        errors["budget"] = f"must be an integer between 1 and {MAX_BUDGET}"
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, int | float) or threshold != threshold:
            errors["threshold"] = "must be a number (or null for no threshold)"
        elif not 0 <= threshold < float("inf"):
            errors["threshold"] = "must be a finite number >= 0 (a minimum uncertainty)"
    if not _is_int(mc_iterations) or not 1 <= mc_iterations <= MAX_MC_ITERATIONS:
        errors["mc_iterations"] = f"must be an integer between 1 and {MAX_MC_ITERATIONS}"
    if heuristic not in Heuristic.values:
        errors["heuristic"] = f"must be one of {', '.join(Heuristic.values)}"
    elif "mc_iterations" not in errors and (reason := passes_problem(heuristic, mc_iterations)):
        errors["mc_iterations"] = reason
    if not _is_int(seed) or not 0 <= seed <= MAX_SEED:
        errors["seed"] = "must be a non-negative integer"
    if errors:
        raise ValidationError(errors)


def validate_strategy(strategy: Any, params: Any, *, labels: list[str]) -> dict[str, Any]:
    """Check a strategy name and its options; returns the options with defaults filled in."""
    if strategy not in Strategy.values:
        raise ValidationError({"strategy": f"must be one of {', '.join(Strategy.values)}"})
    if not isinstance(params, dict):
        raise ValidationError({"strategy_params": "must be an object"})
    clean = dict(params)
    # Diversity is what the user asked for, so its cold start is diverse too; the others start at random.
    cold = clean.setdefault("cold_start", ColdStart.KMEANS if strategy == Strategy.DIVERSE else ColdStart.RANDOM)
    if cold not in ColdStart.values:
        raise ValidationError({"strategy_params": f"cold_start must be one of {', '.join(ColdStart.values)}"})
    clean["cold_start"] = str(cold)
    if strategy == Strategy.POWER:
        power = clean.setdefault("power", 1.0)
        if not _is_number(power) or power <= 0:
            raise ValidationError({"strategy_params": "power must be a finite number > 0"})
    # PowerBALD samples from the whole scored pool: it has no candidate cut (an old cycle's is ignored).
    if strategy in (Strategy.DIVERSE, Strategy.CORESET, Strategy.BADGE):
        default = DEFAULT_CANDIDATES_FACTOR if strategy == Strategy.DIVERSE else DEFAULT_SAMPLE_FACTOR
        factor = clean.setdefault("candidates_factor", default)
        if not _is_int(factor) or not 1 <= factor <= 1000:
            raise ValidationError({"strategy_params": "candidates_factor must be an integer between 1 and 1000"})
    _validate_relabel(clean)
    if strategy == Strategy.QUOTA:
        quotas = clean.get("quotas")
        if not isinstance(quotas, dict) or not quotas:
            raise ValidationError({"strategy_params": "quota needs quotas: {label: share of the budget}"})
        for label, share in quotas.items():
            if label not in labels:
                raise ValidationError({"strategy_params": f"quotas: unknown label {label!r}"})
            if not _is_number(share) or not 0 <= share <= 1:
                raise ValidationError({"strategy_params": f"quotas: share of {label!r} must be in [0, 1]"})
    return clean


def _validate_relabel(clean: dict[str, Any]) -> None:
    """`relabel: "activelab"` spends part of the budget on labeling labeled items again (campaigns.services.relabel),
    at most `relabel_max_share` of it; any strategy may take it. Left out (or null): new items only."""
    relabel = clean.get("relabel")
    if relabel is None:
        if "relabel_max_share" in clean:
            raise ValidationError({"strategy_params": 'relabel_max_share needs relabel: "activelab"'})
        clean.pop("relabel", None)
        return
    if relabel != RELABEL_ACTIVELAB:
        reason = f'relabel must be "{RELABEL_ACTIVELAB}" (or left out: new items only)'
        raise ValidationError({"strategy_params": reason})
    share = clean.setdefault("relabel_max_share", DEFAULT_MAX_RELABEL_SHARE)
    if not _is_number(share) or not 0 < share <= 1:
        raise ValidationError({"strategy_params": "relabel_max_share must be a share of the budget in (0, 1]"})


@dataclass(frozen=True, slots=True)
class SelectionParams:
    """Everything a selection is made from, validated: build it with `for_cycle`, never field by field."""

    budget: int
    threshold: float | None  # the minimum uncertainty applied: given, or resolved from threshold_quantile
    strategy: str
    options: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    threshold_quantile: float | None = None

    @classmethod
    def for_cycle(
        cls,
        cycle: Cycle,
        *,
        budget: int | None = None,
        threshold: float | Keep | None = KEEP,
        threshold_quantile: float | Keep | None = KEEP,
        strategy: str | None = None,
        options: Mapping[str, Any] | None = None,
        seed: int | None = None,
        sorted_scores: Sequence[float] | None = None,
    ) -> SelectionParams:
        """The cycle's parameters with these overrides; raises ValidationError {field: reason}.

        Giving either threshold kind replaces both of the cycle's. A quantile is resolved against `sorted_scores`
        (the cycle's uncertainties, ascending): without scores yet (a cold start) it selects without a threshold."""
        strategy = strategy or cycle.strategy
        if options is None:
            options = dict(cycle.strategy_params or {}) if strategy == cycle.strategy else {}
        if isinstance(threshold, Keep) and isinstance(threshold_quantile, Keep):
            threshold, threshold_quantile = cycle.threshold, cycle.threshold_quantile
        threshold = None if isinstance(threshold, Keep) else threshold
        threshold_quantile = None if isinstance(threshold_quantile, Keep) else threshold_quantile
        validate_cycle_params(
            budget=cycle.budget if budget is None else budget,
            threshold=threshold,
            threshold_quantile=threshold_quantile,
            mc_iterations=cycle.mc_iterations,
            heuristic=cycle.heuristic,
            seed=cycle.seed if seed is None else seed,
        )
        if threshold_quantile is not None:
            scores = scores_sorted(cycle_id=cycle.pk) if sorted_scores is None else sorted_scores
            threshold = threshold_for_quantile([] if scores is None else scores, threshold_quantile)
        return cls(
            budget=cycle.budget if budget is None else budget,
            threshold=threshold,
            strategy=strategy,
            options=validate_strategy(strategy, dict(options), labels=cycle.project.labels),
            seed=cycle.seed if seed is None else seed,
            threshold_quantile=threshold_quantile,
        )


def threshold_for_quantile(sorted_scores: Sequence[float] | NDArray[np.float64], quantile: float) -> float | None:
    """The minimum uncertainty that lets the `quantile` share of the scores through (ties may let a few more):
    the k-th largest score for k = ceil(quantile * n). None without scores."""
    n = len(sorted_scores)
    if n == 0:
        return None
    k = max(1, math.ceil(quantile * n))
    return float(sorted_scores[n - k])
