"""Applying Label Studio annotations to alweb: keep every annotator's answer, resolve each item's label.

The resolved label follows LS's own precedence: an annotation flagged ground truth wins; otherwise the majority
of live (not deleted, not cancelled, error-free) answers, ties broken by the earliest answer. Agreement is the
majority's share. With several annotators per task (`Project.annotators_per_task`), the project's consensus rule
decides when the majority becomes the label: at once ("majority"), or once more than half of them agree ("quorum");
a label resolved from several answers has the source "consensus" (in the item and its history).
An answer that cannot be mapped (unknown label, malformed shape) is stored with its error and recorded on the item;
the rest of the pull still applies. Applying the same records twice changes nothing.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from campaigns.models import Annotation, ConsensusRule, Item, LabelSource, Project
from campaigns.services.label_history import LabelSet, label_changes_record


@dataclass(frozen=True, slots=True)
class AnnotationRecord:
    """One LS annotation, already converted: `value` is the label / boxes, or None with `error` set."""

    ls_annotation_id: int
    ls_task_id: int
    annotator: str
    result: list[Any]
    value: Any
    error: str = ""
    lead_time: float | None = None
    was_cancelled: bool = False
    ground_truth: bool = False
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ApplyResult:
    created: int
    updated: int
    deleted: int
    errors: int
    items_changed: int


_FIELDS = ("annotator", "result", "value", "error", "lead_time", "was_cancelled", "ground_truth", "ls_updated_at")


def live_answers(annotations: list[Annotation]) -> list[Annotation]:
    """The answers that count: not deleted, not skipped, mapped without error."""
    return [a for a in annotations if a.deleted_at is None and not a.was_cancelled and not a.error]


def resolve(
    annotations: list[Annotation], *, rule: str = ConsensusRule.MAJORITY, overlap: int = 1
) -> tuple[Any, float | None]:
    """(label, agreement) from an item's annotations; (None, None) when none counts. Under the quorum rule the
    label waits (None, with the agreement so far) until more than half of `overlap` annotators give one answer."""
    live = live_answers(annotations)
    if not live:
        return None, None
    flagged = [a for a in live if a.ground_truth]
    if flagged:
        return flagged[-1].value, None
    keys = [json.dumps(a.value, sort_keys=True) for a in live]
    counts = Counter(keys)
    best = max(counts.values())
    # ties: the earliest answer among the most frequent values
    winner = next(k for k in keys if counts[k] == best)
    if rule == ConsensusRule.QUORUM and 2 * best <= overlap:
        return None, best / len(live)
    return json.loads(winner), best / len(live)


@transaction.atomic
def annotations_apply(
    *, project: Project, records: list[AnnotationRecord], deleted_ids: list[int] | None = None
) -> ApplyResult:
    """Upsert annotations, mark deleted ones, and re-resolve the label of every item they touch."""
    task_to_item = dict(
        Item.objects.filter(project=project, ls_task_id__in={r.ls_task_id for r in records}).values_list(
            "ls_task_id", "pk"
        )
    )
    existing = {
        a.ls_annotation_id: a
        for a in Annotation.objects.select_for_update().filter(
            project=project, ls_annotation_id__in=[r.ls_annotation_id for r in records]
        )
    }
    touched: set[int] = set()
    to_create, to_update = [], []
    for r in records:
        item_id = task_to_item.get(r.ls_task_id)
        if item_id is None:
            continue  # a task alweb did not create (added by hand in LS): not ours to learn from
        values = {
            "annotator": r.annotator,
            "result": r.result,
            "value": r.value,
            "error": r.error,
            "lead_time": r.lead_time,
            "was_cancelled": r.was_cancelled,
            "ground_truth": r.ground_truth,
            "ls_updated_at": r.updated_at,
        }
        current = existing.get(r.ls_annotation_id)
        if current is None:
            to_create.append(
                Annotation(
                    project=project,
                    item_id=item_id,
                    ls_annotation_id=r.ls_annotation_id,
                    ls_task_id=r.ls_task_id,
                    ls_created_at=r.created_at,
                    **values,
                )
            )
            touched.add(item_id)
        elif any(getattr(current, k) != v for k, v in values.items()) or current.deleted_at is not None:
            for k, v in values.items():
                setattr(current, k, v)
            current.deleted_at = None
            to_update.append(current)
            touched.add(item_id)
    Annotation.objects.bulk_create(to_create, batch_size=1000, ignore_conflicts=True)
    if to_update:
        Annotation.objects.bulk_update(to_update, [*_FIELDS, "deleted_at", "updated_at"], batch_size=1000)
    deleted = 0
    if deleted_ids:
        gone = Annotation.objects.filter(project=project, ls_annotation_id__in=deleted_ids, deleted_at__isnull=True)
        touched |= set(gone.values_list("item_id", flat=True))
        deleted = gone.update(deleted_at=timezone.now())
    changed = items_resolve_labels(item_ids=touched)
    return ApplyResult(
        created=len(to_create),
        updated=len(to_update),
        deleted=deleted,
        errors=sum(1 for r in records if r.error),
        items_changed=changed,
    )


def items_resolve_labels(*, item_ids: set[int]) -> int:
    """Recompute label, agreement and the last mapping error of these items; returns how many changed."""
    by_item: dict[int, list[Annotation]] = defaultdict(list)
    for a in Annotation.objects.filter(item_id__in=item_ids).order_by("ls_created_at", "ls_annotation_id"):
        by_item[a.item_id].append(a)
    changed = []
    history: dict[str, list[LabelSet]] = defaultdict(list)
    for item in Item.objects.filter(pk__in=item_ids).select_related("project"):
        annotations = by_item.get(item.pk, [])
        label, agreement = resolve(
            annotations, rule=item.project.consensus_rule, overlap=item.project.annotators_per_task
        )
        errors = [a.error for a in annotations if a.error and a.deleted_at is None]
        if item.label_source == "import" and label is None:
            continue  # an imported label stays until an annotator gives another
        live = live_answers(annotations)
        # Several answers resolved by the project's rule: the label is a consensus (a ground-truth answer is not).
        consensus = len(live) > 1 and not any(a.ground_truth for a in live)
        source: str = LabelSource.CONSENSUS if consensus else LabelSource.ANNOTATION
        if item.label_source == LabelSource.REVIEW:
            label, source = item.label, LabelSource.REVIEW  # a reviewer's decision overrides the answers it reviewed
        new = {
            "label": label,
            "label_source": source if label is not None else "",
            "label_error": errors[-1] if errors else "",
            "metadata": {**item.metadata, "agreement": agreement} if agreement is not None else item.metadata,
        }
        if any(getattr(item, k) != v for k, v in new.items()):
            if item.label != new["label"]:
                who = ", ".join(sorted({a.annotator for a in annotations if a.value == label and a.annotator}))
                history[source].append(LabelSet(item.pk, item.label, label, who))
            for k, v in new.items():
                setattr(item, k, v)
            changed.append(item)
    Item.objects.bulk_update(changed, ["label", "label_source", "label_error", "metadata"], batch_size=1000)
    for source, changes in history.items():
        label_changes_record(changes=changes, source=source)
    return len(changed)
