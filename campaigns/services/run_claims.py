"""Claiming a background run (a strategy comparison, a backbone pretraining) for one worker, under at-least-once
delivery: the first delivery takes a queued run, a delivery of a run still marked running means its worker was lost
and takes it over. Each claim bumps the run's `attempt`; the worker then writes only while the attempt is still its
own, so a superseded worker stops instead of finishing twice.

The row is locked while its state and attempt are read and bumped: two deliveries racing each get an attempt of
their own (an UPDATE followed by a read could hand both the same number).

When a task gives up, its error says which attempt raised it (`attempt_errors`, `failed_attempt`): the run is failed
only while it is still that attempt's, so a stale worker's late error never fails a run a newer attempt holds."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import models, transaction
from django.utils import timezone

log = logging.getLogger(__name__)


def run_claim(model: type[models.Model], *, run_id: int, queued: str, running: str, **fields: Any) -> int | None:
    """The attempt this worker now holds on run `run_id` of `model`, or None when there is nothing to do (finished,
    failed, cancelled or deleted). `fields` are set with the claim (e.g. a failure reason cleared)."""
    with transaction.atomic():
        run = model._default_manager.select_for_update().filter(pk=run_id).values("state", "attempt").first()
        if run is None or run["state"] not in (queued, running):
            return None
        if run["state"] == running:
            lost = run["attempt"]
            log.warning("%s %s: taking over from attempt %s (its worker was lost)", model.__name__, run_id, lost)
        attempt = int(run["attempt"]) + 1
        model._default_manager.filter(pk=run_id).update(
            state=running, attempt=attempt, started_at=timezone.now(), **fields
        )
    return attempt


_ATTEMPT_ATTR = "alweb_run_attempt"


@contextmanager
def attempt_errors(attempt: int) -> Iterator[None]:
    """Errors escaping the block carry `attempt` (read back by `failed_attempt`), unchanged otherwise: the task's
    retry policy still sees the original exception."""
    try:
        yield
    except Exception as exc:
        setattr(exc, _ATTEMPT_ATTR, attempt)
        raise


def failed_attempt(exc: BaseException) -> int | None:
    """The attempt whose work raised `exc`, or None when it was raised outside one (e.g. before the claim)."""
    attempt = getattr(exc, _ATTEMPT_ATTR, None)
    return attempt if isinstance(attempt, int) else None
