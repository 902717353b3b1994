"""The cycle state machine: creation, transitions by conditional UPDATE, progress, failure, cancel and retry.

States run created → training → scoring → scored → selected → syncing → labeling → collecting → closed, plus
failed (with a reason, retryable) and cancelled. A transition is one `UPDATE … WHERE state IN (allowed)`: if it
touches no row, another worker (or a person) moved the cycle first, and the caller is told so.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, cast

from django.contrib.auth.models import AbstractBaseUser, User
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from campaigns.models import OPEN_CYCLE_STATES, Cycle, CycleState, Heuristic, Project
from models_registry.ml.heuristics import NEEDS_SAMPLES

S = CycleState
TRANSITIONS: dict[str, set[str]] = {
    S.CREATED: {S.TRAINING, S.SCORING, S.SELECTED, S.CANCELLED, S.FAILED},
    S.TRAINING: {S.SCORING, S.FAILED, S.CANCELLED},
    S.SCORING: {S.SCORED, S.FAILED, S.CANCELLED},
    S.SCORED: {S.SELECTED, S.FAILED, S.CANCELLED},
    S.SELECTED: {S.SYNCING, S.FAILED, S.CANCELLED},
    S.SYNCING: {S.LABELING, S.FAILED, S.CANCELLED},
    S.LABELING: {S.COLLECTING, S.CLOSED, S.FAILED, S.CANCELLED},
    S.COLLECTING: {S.CLOSED, S.LABELING, S.FAILED, S.CANCELLED},
    # A failed cycle is retried from the stage where it failed (kept in progress["stage"]).
    S.FAILED: {S.CREATED, S.TRAINING, S.SCORING, S.SCORED, S.SELECTED, S.SYNCING, S.LABELING, S.CANCELLED},
    S.CLOSED: set(),
    S.CANCELLED: set(),
}
MAX_MC_ITERATIONS = 1000
MAX_BUDGET = 1_000_000


class InvalidTransition(Exception):
    """The cycle is not in a state that allows the requested step."""


class CycleConflict(Exception):
    """The project already has an open cycle."""


def cycle_transition(*, cycle_id: int, to: str, from_states: Iterable[str] | None = None, **fields: Any) -> int:
    """Move the cycle to `to` if it is in one of `from_states` (default: every state that may go to `to`).

    Returns the number of rows moved (1) or raises InvalidTransition naming the current state.
    """
    allowed = {s for s, targets in TRANSITIONS.items() if to in targets}
    sources = allowed if from_states is None else set(from_states) & allowed
    now = timezone.now()
    if to in (S.CLOSED, S.CANCELLED, S.FAILED):
        fields.setdefault("finished_at", now)
    moved = Cycle.objects.filter(pk=cycle_id, state__in=sources).update(state=to, updated_at=now, **fields)
    if moved != 1:
        current = Cycle.objects.filter(pk=cycle_id).values_list("state", flat=True).first()
        if current is None:
            raise InvalidTransition(f"cycle {cycle_id} does not exist")
        raise InvalidTransition(f"cycle {cycle_id} is {current}: it cannot go to {to}")
    return moved


def passes_problem(heuristic: str, mc_iterations: int) -> str | None:
    """Why these MC dropout passes cannot feed this heuristic (found at validation, not after minutes of
    training), or None. BALD and its kin measure disagreement between passes: one pass has none."""
    if heuristic in NEEDS_SAMPLES and mc_iterations < 2:
        return f"{heuristic} needs at least 2 MC dropout passes (it measures how much they disagree)"
    return None


def validate_cycle_params(*, budget: Any, threshold: Any, mc_iterations: Any, heuristic: Any, seed: Any) -> None:
    """Raise django ValidationError {field: reason} for out-of-range, non-finite or wrongly typed parameters."""
    from django.core.exceptions import ValidationError

    errors: dict[str, str] = {}

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if not is_int(budget) or not 1 <= budget <= MAX_BUDGET:
        errors["budget"] = f"must be an integer between 1 and {MAX_BUDGET}"
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, int | float) or threshold != threshold:
            errors["threshold"] = "must be a number (or null for no threshold)"
        elif not 0 <= threshold < float("inf"):
            errors["threshold"] = "must be a finite number >= 0 (a minimum uncertainty)"
    if not is_int(mc_iterations) or not 1 <= mc_iterations <= MAX_MC_ITERATIONS:
        errors["mc_iterations"] = f"must be an integer between 1 and {MAX_MC_ITERATIONS}"
    if heuristic not in Heuristic.values:
        errors["heuristic"] = f"must be one of {', '.join(Heuristic.values)}"
    elif "mc_iterations" not in errors and (reason := passes_problem(heuristic, mc_iterations)):
        errors["mc_iterations"] = reason
    if not is_int(seed) or not 0 <= seed < 2**63:
        errors["seed"] = "must be a non-negative integer"
    if errors:
        raise ValidationError(errors)


def cycle_create(
    *,
    project: Project,
    user: AbstractBaseUser | None = None,
    budget: int | None = None,
    threshold: float | None = None,
    heuristic: str | None = None,
    mc_iterations: int | None = None,
    strategy: str = "topk",
    strategy_params: dict[str, Any] | None = None,
    seed: int = 0,
    auto_advance: bool = True,
) -> Cycle:
    """Create the project's next cycle. Raises CycleConflict if one is open (the database decides, not a read)."""
    from campaigns.services.selection import validate_strategy

    budget = project.default_budget if budget is None else budget
    heuristic = heuristic or project.default_heuristic
    mc_iterations = project.default_mc_iterations if mc_iterations is None else mc_iterations
    validate_cycle_params(
        budget=budget, threshold=threshold, mc_iterations=mc_iterations, heuristic=heuristic, seed=seed
    )
    strategy_params = validate_strategy(strategy, strategy_params or {}, labels=project.labels)
    try:
        with transaction.atomic():
            # Lock the project row so concurrent creations get consecutive numbers instead of a unique violation.
            Project.objects.select_for_update().filter(pk=project.pk).first()
            number = (Cycle.objects.filter(project=project).aggregate(n=Max("number"))["n"] or 0) + 1
            return Cycle.objects.create(
                project=project,
                number=number,
                created_by=cast(User | None, user),
                budget=budget,
                threshold=threshold,
                heuristic=heuristic,
                mc_iterations=mc_iterations,
                strategy=strategy,
                strategy_params=strategy_params,
                seed=seed,
                auto_advance=auto_advance,
                progress={"stage": S.CREATED, "done": 0, "total": 0},
            )
    except IntegrityError as exc:
        open_cycle = Cycle.objects.filter(project=project, state__in=OPEN_CYCLE_STATES).first()
        if open_cycle is not None:
            raise CycleConflict(
                f"project {project.pk} already has an open cycle ({open_cycle.number}, {open_cycle.state})"
            ) from exc
        raise


def cycle_progress(*, cycle_id: int, stage: str, done: int, total: int, started: float | None = None) -> None:
    """Store progress where the dashboard and API read it; ETA from the rate so far when `started` is given."""
    progress: dict[str, Any] = {"stage": stage, "done": done, "total": total, "updated_at": timezone.now().isoformat()}
    if started is not None and done > 0 and total > done:
        progress["eta_s"] = round((time.monotonic() - started) / done * (total - done), 1)
    Cycle.objects.filter(pk=cycle_id).update(progress=progress)


def cycle_fail(*, cycle_id: int, reason: str) -> None:
    """Record a failure with its reason; the stage it failed in stays in progress["stage"] for a retry."""
    Cycle.objects.filter(pk=cycle_id, state__in=OPEN_CYCLE_STATES).update(
        state=S.FAILED, failure_reason=reason[:4000], finished_at=timezone.now(), updated_at=timezone.now()
    )


def cycle_cancel(*, cycle: Cycle) -> None:
    cycle_transition(cycle_id=cycle.pk, to=S.CANCELLED)


def cycle_retry(*, cycle: Cycle) -> str:
    """Put a failed cycle back in the stage it failed in; returns that stage. Refused if another cycle is open."""
    stage = (cycle.progress or {}).get("stage") or S.CREATED
    if stage not in TRANSITIONS[S.FAILED]:
        stage = S.CREATED
    try:
        with transaction.atomic():
            cycle_transition(cycle_id=cycle.pk, to=stage, from_states=[S.FAILED], failure_reason="", finished_at=None)
    except IntegrityError as exc:
        raise CycleConflict(f"project {cycle.project_id} has another open cycle: finish it first") from exc
    return stage
