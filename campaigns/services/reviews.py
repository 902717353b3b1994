"""Re-labeling: send suspected label errors back to people, and apply their decisions with the history kept.

`reviews_request` opens one review per chosen item (at most one open per item, a database rule) and queues the
sync that puts each in Label Studio as a review task (`integrations.labelstudio.review_sync`). The decision is the
first answer on that task, brought back by the ordinary pull (`reviews_apply_pulled` takes those annotations out
before the rest are applied), or one given through the API (`review_decide`). Either replaces the item's label
through the history service, source "review". A decision for a review that is no longer open is refused
(`ReviewClosed`: the API's 409); the pull logs and skips it, since Label Studio may hold late answers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from campaigns.models import Item, LabelReview, LabelSource, LabelSuspect, Project, ReviewState, TaskType
from campaigns.services import queue
from campaigns.services.annotations import AnnotationRecord
from campaigns.services.label_history import item_labels_set

log = logging.getLogger(__name__)
MAX_REVIEWS_PER_REQUEST = 1000


class ReviewClosed(Exception):
    """The review was decided or cancelled already: its item is no longer in review."""


def reviews_request(
    *, project: Project, item_ids: Sequence[int], user: AbstractBaseUser | None = None
) -> list[LabelReview]:
    """Open a review for each item (an item already in review keeps its open one) and queue their sync to Label
    Studio. Raises ValidationError naming `item_ids` for items that are not labeled classification items of the
    project. Returns the open reviews of these items."""
    ids = list(dict.fromkeys(int(i) for i in item_ids))
    if not ids:
        raise ValidationError({"item_ids": "name at least one item"})
    if len(ids) > MAX_REVIEWS_PER_REQUEST:
        raise ValidationError({"item_ids": f"at most {MAX_REVIEWS_PER_REQUEST} items per request"})
    if project.task_type == TaskType.OBJECT_DETECTION:
        raise ValidationError({"item_ids": "reviews of detection labels (boxes) are not supported"})
    items = {i.pk: i for i in Item.objects.filter(project=project, pk__in=ids, label__isnull=False)}
    if missing := [i for i in ids if i not in items]:
        raise ValidationError({"item_ids": f"not labeled items of this project: {missing[:20]}"})
    # The latest suspicion of each item gives the suggestion shown to the reviewer.
    suspects: dict[int, LabelSuspect] = {}
    for s in LabelSuspect.objects.filter(item_id__in=ids, run__state="done").order_by("run_id"):
        suspects[s.item_id] = s
    with transaction.atomic():
        LabelReview.objects.bulk_create(
            [
                LabelReview(
                    project=project,
                    item_id=pk,
                    suspect=suspects.get(pk),
                    label_before=items[pk].label,
                    suggested_label=suspects[pk].suggested_label if pk in suspects else "",
                    requested_by_id=user.pk if user is not None else None,
                )
                for pk in ids
            ],
            ignore_conflicts=True,  # an item already in review (the partial unique constraint) keeps its review
        )
        # Read now, not from the caller's copy: a sync may have connected the project since it was loaded.
        if Project.objects.filter(pk=project.pk, ls_project_id__isnull=False).exists():
            queue.enqueue_on_commit(queue.REVIEW_SYNC, project_id=project.pk)
    return list(LabelReview.objects.filter(item_id__in=ids, state=ReviewState.OPEN).order_by("item_id"))


@transaction.atomic
def review_decide(
    *,
    review: LabelReview,
    label: Any,
    user: AbstractBaseUser | None = None,
    annotator: str = "",
    ls_annotation_id: int | None = None,
) -> LabelReview:
    """The reviewer's decision: the item's label becomes `label` (source "review", history kept) and the review is
    closed. Raises ReviewClosed if it is not open any more, ValidationError naming `label` for an unknown class."""
    locked = LabelReview.objects.select_for_update().select_related("project").get(pk=review.pk)
    if locked.state != ReviewState.OPEN:
        raise ReviewClosed(f"review {locked.pk} is {locked.state}: item {locked.item_id} is no longer in review")
    labels = list(locked.project.labels)
    if not isinstance(label, str) or label not in labels:
        raise ValidationError({"label": f"must be one of the project's labels: {', '.join(labels)}"})
    before = Item.objects.values_list("label", flat=True).get(pk=locked.item_id)
    suggestion = f", model suggested {locked.suggested_label!r}" if locked.suggested_label else ""
    item_labels_set(
        labels={locked.item_id: label},
        source=LabelSource.REVIEW,
        user=user,
        annotator=annotator,
        reason=f"review {locked.pk}: was {before!r}{suggestion}",
    )
    # Unchanged labels are confirmed ones: the item still takes the review's source, so that later answers on its
    # old task do not override the reviewer (campaigns.services.annotations).
    Item.objects.filter(pk=locked.item_id).update(label_source=LabelSource.REVIEW)
    locked.state, locked.decision, locked.decided_at = ReviewState.DECIDED, label, timezone.now()
    locked.decided_by = user  # type: ignore[assignment]
    locked.decided_annotator, locked.ls_annotation_id = annotator[:254], ls_annotation_id
    locked.save(
        update_fields=["state", "decision", "decided_at", "decided_by", "decided_annotator", "ls_annotation_id"]
    )
    return locked


def review_cancel(*, review: LabelReview) -> bool:
    """Take an item out of review without a decision (its label stays); False if it was not open."""
    return LabelReview.objects.filter(pk=review.pk, state=ReviewState.OPEN).update(state=ReviewState.CANCELLED) == 1


def reviews_apply_pulled(*, project: Project, records: list[AnnotationRecord]) -> list[AnnotationRecord]:
    """Apply the answers on review tasks as decisions (the earliest usable answer of each review); return the other
    records, for the ordinary annotation apply. A late answer on a closed review is skipped (logged)."""
    if not records:
        return records
    reviews = {
        r.ls_task_id: r
        for r in LabelReview.objects.filter(project=project, ls_task_id__in={rec.ls_task_id for rec in records})
    }
    if not reviews:
        return records
    rest = [rec for rec in records if rec.ls_task_id not in reviews]
    answers = sorted(
        (rec for rec in records if rec.ls_task_id in reviews and rec.value is not None and not rec.was_cancelled),
        key=lambda rec: (rec.created_at is None, rec.created_at, rec.ls_annotation_id),
    )
    for rec in answers:
        review = reviews[rec.ls_task_id]
        if review.state != ReviewState.OPEN:
            if review.ls_annotation_id != rec.ls_annotation_id:
                log.info("review %s is %s: answer %s not applied", review.pk, review.state, rec.ls_annotation_id)
            continue
        try:
            reviews[rec.ls_task_id] = review_decide(
                review=review, label=rec.value, annotator=rec.annotator, ls_annotation_id=rec.ls_annotation_id
            )
        except (ReviewClosed, ValidationError) as exc:
            log.info("review %s: answer %s not applied (%s)", review.pk, rec.ls_annotation_id, exc)
    return rest
