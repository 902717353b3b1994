"""Applying a project's overlap and consensus rule once they change: the labels its annotators gave are resolved
again under the rule, and its Label Studio project is told how many annotators label each task.

One Celery task runs this (`campaigns.tasks.project_overlap`, sent by `projects.project_update` after commit). Both
steps set values rather than add to them, so a redelivered task does the same again; the Label Studio call runs
after the labels are written, outside their transactions, and its connection errors are the task's to retry.
"""

from __future__ import annotations

import logging

from django.db import transaction

from campaigns.models import Annotation, Project
from campaigns.services.annotations import items_resolve_labels
from integrations.labelstudio.connect import labelstudio_push_overlap

log = logging.getLogger(__name__)
BATCH = 1000


def project_run_overlap(*, project_id: int) -> int:
    """Re-resolve every annotated item's label of the project, then push its annotators per task to Label Studio.
    Returns how many items' labels (or agreement) changed; 0 for a project deleted meanwhile."""
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return 0
    ids = list(Annotation.objects.filter(project=project).values_list("item_id", flat=True).distinct().order_by())
    ids.sort()
    changed = 0
    for start in range(0, len(ids), BATCH):
        with transaction.atomic():
            changed += items_resolve_labels(item_ids=set(ids[start : start + BATCH]))
    pushed = labelstudio_push_overlap(project=project)
    log.info(
        "project %s: overlap %s (%s), %s labels changed, Label Studio %s",
        project.pk,
        project.annotators_per_task,
        project.consensus_rule,
        changed,
        "set" if pushed else "not linked yet",
    )
    return changed
