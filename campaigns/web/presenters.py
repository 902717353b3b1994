"""What a template shows for a cycle's progress, in words and numbers; no queries here (callers pass counts in)."""

from __future__ import annotations

from dataclasses import dataclass

from campaigns.models import Cycle
from campaigns.states import OPEN_CYCLE_STATES, WAITING_FOR_LABELS, WORKING_STATES, CycleState

S = CycleState

# In WORKING_STATES (campaigns.states) the page polls every 2 s. In the others a cycle waits for people (a lead
# choosing the threshold, annotators labeling) for minutes or days, so polling slows down to spare the server.
FAST_POLL_S: float = 2
ETA_FROM = 0.05
SLOW_POLL_S: float = 10

STAGE_WORDS: dict[str, str] = {
    S.CREATED: "Waiting for a worker",
    S.TRAINING: "Training the model",
    S.SCORING: "Scoring the unlabeled pool",
    S.SCORED: "Scored: waiting for a selection",
    S.SELECTED: "Selected: waiting to be sent to Label Studio",
    S.SYNCING: "Sending items to Label Studio",
    S.LABELING: "Being labeled in Label Studio",
    S.CLOSED: "Closed",
    S.FAILED: "Failed",
    S.CANCELLED: "Cancelled",
}
UNITS: dict[str, str] = {S.TRAINING: "epochs", S.SCORING: "items", S.SYNCING: "items", S.LABELING: "items labeled"}


@dataclass(frozen=True, slots=True)
class ProgressView:
    words: str
    # "bar": a determinate bar (value of maximum); "busy": something runs, its size unknown; "none": no bar.
    kind: str
    value: int = 0
    maximum: int = 0
    detail: str = ""

    @property
    def percent(self) -> int:
        return round(100 * self.value / self.maximum) if self.maximum else 0


def eta_words(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"about {max(1, round(seconds))} s left"
    if seconds < 3600:
        return f"about {round(seconds / 60)} min left"
    return f"about {seconds / 3600:.1f} h left"


def progress_view(cycle: Cycle, *, labeled: int | None = None, selected: int | None = None) -> ProgressView:
    """The bar for the cycle's state. `labeled`/`selected`: the labeling progress, for a cycle in Label Studio."""
    state = cycle.state
    words = STAGE_WORDS.get(state, state)
    progress = cycle.progress or {}
    if state in (S.TRAINING, S.SCORING, S.SYNCING):
        done, total = int(progress.get("done") or 0), int(progress.get("total") or 0)
        if progress.get("stage") != state or total <= 0:
            return ProgressView(words, "busy", detail="starting")
        detail = f"{done} of {total} {UNITS[state]}"
        # The first chunks pay for loading the model, so an early ETA overstates the wait: give it from 5% on.
        eta = eta_words(progress.get("eta_s")) if done >= ETA_FROM * total else ""
        return ProgressView(words, "bar", min(done, total), total, f"{detail}, {eta}" if eta else detail)
    if state in WAITING_FOR_LABELS and selected:
        value = min(labeled or 0, selected)
        return ProgressView(words, "bar", value, selected, f"{value} of {selected} selected items labeled")
    if state == S.CREATED or (state == S.SELECTED and cycle.auto_advance):
        # Queued for a worker (a selected cycle that advances on its own has its sync queued): it moves soon.
        return ProgressView(words, "busy")
    return ProgressView(words, "none")


def poll_seconds(cycle: Cycle) -> float | None:
    """How often a page showing this cycle asks for news; None once it is finished."""
    if cycle.state not in OPEN_CYCLE_STATES:
        return None
    if cycle.state == S.SELECTED and not cycle.auto_advance:
        return SLOW_POLL_S
    return FAST_POLL_S if cycle.state in WORKING_STATES else SLOW_POLL_S
