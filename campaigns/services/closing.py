"""Closing cycles whose selected items have all been answered."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q

from campaigns.models import Cycle, ItemState, Project, SelectedItem
from campaigns.services import queue
from campaigns.services.cycles import InvalidTransition, cycle_progress, cycle_transition
from campaigns.states import WAITING_FOR_LABELS, CycleState


def cycles_close_if_labeled(*, project: Project) -> list[int]:
    """Close the project's labeling cycles with no selected item left unanswered; update their progress."""
    closed = []
    for cycle in Cycle.objects.filter(project=project, state__in=WAITING_FOR_LABELS):
        items = SelectedItem.objects.filter(selection__cycle=cycle)
        total = items.count()
        waiting = items.filter(Q(item__label__isnull=True) & Q(item__state=ItemState.ACTIVE)).count()
        cycle_progress(cycle_id=cycle.pk, stage=CycleState.LABELING, done=total - waiting, total=total)
        if waiting == 0:
            try:
                with transaction.atomic():
                    cycle_transition(cycle_id=cycle.pk, to=CycleState.CLOSED)
                    if project.train_on_close:
                        queue.enqueue_on_commit(queue.CYCLE_TRAIN_CLOSING, cycle_id=cycle.pk)
                closed.append(cycle.pk)
            except InvalidTransition:
                pass  # closed or cancelled meanwhile by someone else
    return closed
