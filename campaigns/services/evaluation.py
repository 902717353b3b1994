"""The evaluation sample: validation and test items that people label, so that model selection and the learning
curve rest on human labels rather than on a hidden answer key (ground truth is for simulation only).

The sample is i.i.d. and no model chooses it. Each split's items are ordered by a keyed hash of their key: a seeded
random order that is stable across cycles and re-imports, independent of the split assignment (another salt) and of
any label. Each cycle tops the sample up to the target in that order: the first cycle sends the whole sample with
its training selection; later ones send only what the target grew by or what annotators skipped.

Evaluation labels count in every label total: they are labels the team paid for.
"""

from __future__ import annotations

import hashlib

from django.db.models import Exists, OuterRef

from campaigns.models import Item, ItemState, Project
from campaigns.selectors import evaluation_status, items_selected_elsewhere


def _order(key: str) -> bytes:
    # A function of the key alone: copies of a project (the arms of a strategy comparison) draw the same sample,
    # so every arm is measured on the same evaluation labels.
    return hashlib.blake2b(key.encode(), digest_size=8, person=b"alweb-eval").digest()


def evaluation_picks(*, project: Project) -> list[int]:
    """Ids of the validation and test items to send now, so each split reaches its target: the next unlabeled,
    unselected items in the sample's fixed random order."""
    picks: list[int] = []
    for status in evaluation_status(project=project):
        if status.missing == 0:
            continue
        live = items_selected_elsewhere(project=project).filter(item=OuterRef("pk"))
        rows = (
            Item.objects.filter(project=project, split=status.split, state=ItemState.ACTIVE, label__isnull=True)
            .exclude(Exists(live))
            .values_list("pk", "key")
        )
        ordered = sorted(rows, key=lambda row: _order(row[1]))
        picks.extend(pk for pk, _ in ordered[: status.missing])
    return picks
