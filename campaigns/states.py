"""The cycle's state machine in one place: its states, the moves between them, and every named group of states.

A cycle runs created → training → scoring → scored → selected → syncing → labeling → closed, plus failed (with a
reason, retryable from the stage it failed in) and cancelled. A cold start (no label yet) goes created → selected;
a cycle scored by a registered external model goes created → scoring. Each move is one conditional UPDATE
(`campaigns.services.cycles.cycle_transition`), so two workers can never both make it.

Like NetBox's `TERMINAL_STATE_CHOICES` beside its enum, each group lives next to the states it names: a module that
needs "the states where a worker is busy" imports `WORKING_STATES` from here instead of writing its own tuple.
"""

from __future__ import annotations

from django.db import models


class CycleState(models.TextChoices):
    CREATED = "created", "Created"
    TRAINING = "training", "Training"
    SCORING = "scoring", "Scoring"
    SCORED = "scored", "Scored"
    SELECTED = "selected", "Selected"
    SYNCING = "syncing", "Syncing"
    LABELING = "labeling", "Labeling"
    CLOSED = "closed", "Closed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


S = CycleState

TRANSITIONS: dict[str, frozenset[str]] = {
    S.CREATED: frozenset({S.TRAINING, S.SCORING, S.SELECTED, S.CANCELLED, S.FAILED}),
    S.TRAINING: frozenset({S.SCORING, S.FAILED, S.CANCELLED}),
    S.SCORING: frozenset({S.SCORED, S.FAILED, S.CANCELLED}),
    S.SCORED: frozenset({S.SELECTED, S.FAILED, S.CANCELLED}),
    S.SELECTED: frozenset({S.SYNCING, S.FAILED, S.CANCELLED}),
    S.SYNCING: frozenset({S.LABELING, S.FAILED, S.CANCELLED}),
    S.LABELING: frozenset({S.CLOSED, S.FAILED, S.CANCELLED}),
    # A failed cycle is retried from the stage where it failed (kept in progress["stage"]).
    S.FAILED: frozenset({S.CREATED, S.TRAINING, S.SCORING, S.SCORED, S.SELECTED, S.SYNCING, S.LABELING, S.CANCELLED}),
    S.CLOSED: frozenset(),
    S.CANCELLED: frozenset(),
}

# The end of the road: no transition leaves these except a retry of a failed cycle.
TERMINAL_STATES: tuple[str, ...] = (S.CLOSED, S.FAILED, S.CANCELLED)
# At most one cycle per project is open (a database constraint over exactly these states).
OPEN_CYCLE_STATES: list[str] = [s for s in CycleState.values if s not in TERMINAL_STATES]
# A worker is busy (or about to be): the dashboard polls fast, and a requeue may resend the stage's task.
WORKING_STATES: frozenset[str] = frozenset({S.CREATED, S.TRAINING, S.SCORING, S.SELECTED, S.SYNCING})
# Items are out in Label Studio: annotations are pulled, items can be resynced, the cycle closes when all are in.
WAITING_FOR_LABELS: tuple[str, ...] = (S.LABELING,)
# A selection whose cycle is in one of these no longer holds its items: they go back to the pool.
ABANDONED_STATES: tuple[str, ...] = (S.CANCELLED, S.FAILED)
# Where a failed cycle can be put back (the stage it failed in).
RETRY_STAGES: frozenset[str] = TRANSITIONS[S.FAILED] - {S.CANCELLED}
