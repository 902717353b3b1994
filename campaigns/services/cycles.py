"""The cycle's writes: creation, transitions by conditional UPDATE, progress, failure, cancel and retry.

The states, their transitions and named groups are in `campaigns.states`. A transition is one
`UPDATE … WHERE state IN (allowed)`: if it
touches no row, another worker (or a person) moved the cycle first, and the caller is told so.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, cast

from django.contrib.auth.models import AbstractBaseUser, User
from django.db import IntegrityError, transaction
from django.db.models import DateTimeField, F, Max, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from campaigns.models import Cycle, Project, Strategy
from campaigns.services.params import validate_cycle_params, validate_strategy
from campaigns.states import OPEN_CYCLE_STATES, RETRY_STAGES, TERMINAL_STATES, TRANSITIONS, WORKING_STATES, CycleState

S = CycleState


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
    if to in TERMINAL_STATES:
        fields.setdefault("finished_at", now)
    elif to in WORKING_STATES or to == S.SCORED:
        # The first move into work stamps started_at (a retry keeps the first stamp).
        fields.setdefault("started_at", Coalesce(F("started_at"), Value(now, output_field=DateTimeField())))
    moved = Cycle.objects.filter(pk=cycle_id, state__in=sources).update(state=to, updated_at=now, **fields)
    if moved != 1:
        current = Cycle.objects.filter(pk=cycle_id).values_list("state", flat=True).first()
        if current is None:
            raise InvalidTransition(f"cycle {cycle_id} does not exist")
        raise InvalidTransition(f"cycle {cycle_id} is {current}: it cannot go to {to}")
    return moved


def cycle_create(
    *,
    project: Project,
    user: AbstractBaseUser | None = None,
    budget: int | None = None,
    threshold: float | None = None,
    threshold_quantile: float | None = None,
    heuristic: str | None = None,
    mc_iterations: int | None = None,
    strategy: str = Strategy.TOPK,
    strategy_params: dict[str, Any] | None = None,
    seed: int = 0,
    auto_advance: bool = True,
) -> Cycle:
    """Create the project's next cycle. Raises CycleConflict if one is open (the database decides, not a read)."""
    budget = project.default_budget if budget is None else budget
    heuristic = heuristic or project.default_heuristic
    mc_iterations = project.default_mc_iterations if mc_iterations is None else mc_iterations
    validate_cycle_params(
        budget=budget,
        threshold=threshold,
        threshold_quantile=threshold_quantile,
        mc_iterations=mc_iterations,
        heuristic=heuristic,
        seed=seed,
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
                threshold_quantile=threshold_quantile,
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
    if stage not in RETRY_STAGES:
        stage = S.CREATED
    try:
        with transaction.atomic():
            cycle_transition(cycle_id=cycle.pk, to=stage, from_states=[S.FAILED], failure_reason="", finished_at=None)
    except IntegrityError as exc:
        raise CycleConflict(f"project {cycle.project_id} has another open cycle: finish it first") from exc
    return stage
