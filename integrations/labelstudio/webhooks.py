"""Label Studio webhooks: which tasks a delivery concerns, and the pull it triggers.

LS signs nothing and never retries: the delivery is authenticated by the secret header alweb set when it
registered the hook, and it only *triggers* a pull of the tasks it names (what is applied comes from LS through
alweb's own key), so a replayed or repeated delivery applies nothing twice. The periodic pull catches what a lost
delivery missed.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

from django.db import transaction

from campaigns.models import Annotation, Project
from campaigns.services import queue

ANNOTATION_ACTIONS = {"ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED"}


def secret_matches(project: Project, presented: str | None) -> bool:
    """Constant-time comparison; a project without a secret accepts nothing."""
    if not project.ls_webhook_secret or not presented:
        return False
    return hmac.compare_digest(presented.encode(), project.ls_webhook_secret.encode())


def _ids(value: Any) -> list[int]:
    out = []
    for obj in value if isinstance(value, list) else [value]:
        raw = obj.get("id") if isinstance(obj, Mapping) else obj
        if isinstance(raw, int) and not isinstance(raw, bool) and raw > 0:
            out.append(raw)
    return out


def webhook_task_ids(*, project: Project, payload: Mapping[str, Any]) -> list[int]:
    """The LS task ids a delivery is about (empty for actions alweb does not follow)."""
    if payload.get("action") not in ANNOTATION_ACTIONS:
        return []
    tasks = set(_ids(payload.get("task")))
    annotations = payload.get("annotations") if "annotations" in payload else payload.get("annotation")
    for obj in annotations if isinstance(annotations, list) else [annotations]:
        if isinstance(obj, Mapping):
            tasks |= set(_ids(obj.get("task")))
    if payload.get("action") == "ANNOTATIONS_DELETED":
        # The payload holds annotation ids only: their tasks are the ones alweb stored them under.
        deleted = _ids(payload.get("annotations"))
        tasks |= set(
            Annotation.objects.filter(project=project, ls_annotation_id__in=deleted).values_list(
                "ls_task_id", flat=True
            )
        )
    return sorted(tasks)


def webhook_receive(*, project: Project, payload: Mapping[str, Any]) -> list[int]:
    """Enqueue a pull of the tasks a delivery names, after commit; returns those task ids."""
    task_ids = webhook_task_ids(project=project, payload=payload)
    if task_ids:
        with transaction.atomic():
            queue.enqueue_on_commit(queue.PROJECT_PULL, project_id=project.pk, task_ids=task_ids)
    return task_ids
