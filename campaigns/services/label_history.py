"""Label history: the one writer of `LabelChange` rows. Every code path that changes `Item.label` (imports, the
annotation pull, consensus, reviews, the simulation oracle) calls `label_changes_record` in the same transaction
as its write, so no label is ever overwritten without the old value and who changed it on record.

Writers that only set the label (the oracle, a review decision) use `item_labels_set`, which does both in bulk;
writers that write more (the annotation pull also sets agreement and errors, imports insert rows with COPY) keep
their own bulk write and record through `label_changes_record`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from campaigns.models import Item, LabelChange, LabelSource

BATCH = 5000


@dataclass(frozen=True, slots=True)
class LabelSet:
    """One item's label going from `old` to `new`; `annotator` overrides the call's (the pull: one per item)."""

    item_id: int
    old: Any
    new: Any
    annotator: str = ""


def label_changes_record(
    *,
    changes: Iterable[LabelSet],
    source: str,
    user: AbstractBaseUser | None = None,
    annotator: str = "",
    reason: str = "",
) -> int:
    """Write one history row per real change (old != new), in bulk; returns how many were written."""
    if source not in LabelSource.values:
        raise ValueError(f"unknown label source {source!r}")
    now = timezone.now()
    user_id = user.pk if user is not None else None
    written = 0
    batch: list[LabelChange] = []
    for change in changes:
        if change.old == change.new:
            continue
        batch.append(
            LabelChange(
                item_id=change.item_id,
                old_value=change.old,
                new_value=change.new,
                source=source,
                user_id=user_id,
                annotator=(change.annotator or annotator)[:254],
                reason=reason,
                created_at=now,
            )
        )
        if len(batch) >= BATCH:
            written += len(LabelChange.objects.bulk_create(batch, batch_size=BATCH))
            batch = []
    written += len(LabelChange.objects.bulk_create(batch, batch_size=BATCH))
    return written


@transaction.atomic
def item_labels_set(
    *,
    labels: dict[int, Any],
    source: str,
    user: AbstractBaseUser | None = None,
    annotator: str = "",
    reason: str = "",
) -> int:
    """Set these items' labels (item id -> new label) with `label_source = source`, and record each change.
    Items whose label is already the new one are left alone. Returns how many changed."""
    items = list(Item.objects.select_for_update().filter(pk__in=labels).only("pk", "label", "label_source"))
    changes = [LabelSet(i.pk, i.label, labels[i.pk]) for i in items if i.label != labels[i.pk]]
    if not changes:
        return 0
    Item.objects.bulk_update(
        [Item(pk=c.item_id, label=c.new, label_source=source) for c in changes],
        ["label", "label_source"],
        batch_size=1000,
    )
    label_changes_record(changes=changes, source=source, user=user, annotator=annotator, reason=reason)
    return len(changes)
