"""The evaluation sample's targets and progress: how many validation and test items people should label, how many
are labeled and how many are out in Label Studio. (Which items to send: `campaigns.services.evaluation`.)"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Exists, OuterRef, Q

from campaigns.models import Item, ItemState, Project, Split, TaskType
from campaigns.selectors.items import items_selected_elsewhere

EVAL_SPLITS = (Split.VALID, Split.TEST)
# Defaults (each of validation and test): 5% of the pool, so at most 10% of it goes to evaluation in all; at least
# MIN_PER_CLASS items per class, since a per-class F1 on fewer is noise; capped at EVAL_CAP, past which a tighter
# interval costs more labels than it is worth. Never more than the split holds.
EVAL_SHARE = 0.05
MIN_PER_CLASS = 5
EVAL_CAP = 500


@dataclass(frozen=True, slots=True)
class EvaluationStatus:
    split: str
    target: int
    labeled: int
    pending: int  # out in Label Studio (selected by a live cycle), not labeled yet

    @property
    def missing(self) -> int:
        return max(0, self.target - self.labeled - self.pending)


def _default_target(project: Project, pool: int) -> int:
    classes = len(project.labels) if project.task_type != TaskType.OBJECT_DETECTION else 0
    return min(EVAL_CAP, max(MIN_PER_CLASS * classes, math.ceil(EVAL_SHARE * pool)))


def evaluation_status(*, project: Project) -> list[EvaluationStatus]:
    """Target, labeled and pending evaluation items per split (validation, test): one grouped query."""
    live = items_selected_elsewhere(project=project).filter(item=OuterRef("pk"))
    rows: dict[str, dict[str, Any]] = {
        r["split"]: dict(r)
        for r in Item.objects.filter(project=project, state=ItemState.ACTIVE)
        .values("split")
        .annotate(
            total=Count("pk"),
            labeled=Count("pk", filter=Q(label__isnull=False)),
            pending=Count("pk", filter=Q(label__isnull=True) & Q(Exists(live))),
        )
        .order_by()
    }
    pool = rows.get(Split.POOL, {}).get("total", 0)
    explicit = {Split.VALID: project.eval_valid_target, Split.TEST: project.eval_test_target}
    out = []
    for split in EVAL_SPLITS:
        row = rows.get(split, {"total": 0, "labeled": 0, "pending": 0})
        wanted = explicit[split]
        target = min(row["total"], _default_target(project, pool) if wanted is None else wanted)
        out.append(EvaluationStatus(split=split, target=target, labeled=row["labeled"], pending=row["pending"]))
    return out
