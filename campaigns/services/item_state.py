"""Item state writes: mark items active, invalid or skipped (admin actions, API)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from campaigns.models import Item, ItemState


def items_set_state(*, items: QuerySet[Item], state: str) -> int:
    """Set `state` on every item of `items` not already in it; return how many changed.

    One UPDATE whatever the size of the selection, so an admin action over a whole filtered pool stays cheap.
    Invalid and skipped items leave the unlabeled pool (`pool_for_cycle` reads only active items); what was already
    sent to Label Studio is left there: resync is a separate, explicit step.
    """
    if state not in ItemState.values:
        raise ValidationError({"state": f"must be one of {', '.join(ItemState.values)}"})
    return items.exclude(state=state).update(state=state)
