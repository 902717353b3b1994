"""Review tasks: each open `LabelReview` becomes a Label Studio task of its own, idempotently.

The task shows the item (text or image), its current label and the model's suggestion in the task data (columns
of the Data Manager, and `$alweb_review_note` for a labeling config that wants to show it), with the suggestion as
a pre-annotation (a prediction) the reviewer accepts or changes. The item's own task, with the annotations that
gave the label under review, is left as it is.

Same discipline as the cycle sync (`sync.py`): a token is written on the reviews (and committed) before the import
and travels in each task's data; a run that finds reviews with a token and no task id looks them up in LS by that
token (one task kept per review, extras deleted) before anything is imported again.
"""

from __future__ import annotations

import logging
import secrets
from collections import defaultdict
from typing import Any

from campaigns.models import LabelReview, Project, ReviewState, ReviewSync, TaskType
from campaigns.services.media import item_media_url
from integrations.labelstudio import client as lsc
from integrations.labelstudio import convert
from integrations.labelstudio.connect import labelstudio_client, labelstudio_config_info, ls_errors
from integrations.labelstudio.label_config import LabelConfigInfo

log = logging.getLogger(__name__)
BATCH_KEY = "alweb_review_batch"
REVIEW_KEY = "alweb_review"
MODEL_VERSION = "alweb-review"
BATCH = 500


def reviews_run_sync(*, project_id: int) -> int:
    """Put the project's open reviews that have no task yet in Label Studio; returns how many tasks were created."""
    project = Project.objects.filter(pk=project_id, ls_project_id__isnull=False).first()
    if project is None:
        return 0
    client = labelstudio_client(project)
    info = labelstudio_config_info(client, project)
    created = 0
    with ls_errors():
        _recover(client, project)
        while batch := list(_pending(project).filter(sync_batch="")[:BATCH]):
            token = secrets.token_hex(8)
            LabelReview.objects.filter(pk__in=[r.pk for r in batch], sync_batch="").update(sync_batch=token)
            for review in batch:
                review.sync_batch = token
            ids = lsc.import_tasks(
                client, project_id=int(project.ls_project_id or 0), tasks=[_task(project, info, r) for r in batch]
            )
            _save(dict(zip([r.pk for r in batch], ids, strict=True)))
            created += len(ids)
    if created:
        log.info("project %s: %s review tasks sent to Label Studio", project.pk, created)
    return created


def _pending(project: Project) -> Any:
    return (
        LabelReview.objects.filter(project=project, state=ReviewState.OPEN, ls_task_id__isnull=True)
        .select_related("item")
        .order_by("pk")
    )


def _recover(client: lsc.LabelStudio, project: Project) -> None:
    """Reviews marked by an earlier run that never saved their task: find their tasks in LS by the token; keep one
    per review, delete the rest; a review LS does not hold loses its token and is imported again."""
    marked = list(_pending(project).exclude(sync_batch=""))
    if not marked:
        return
    found: dict[int, list[int]] = defaultdict(list)
    for token in sorted({r.sync_batch for r in marked}):
        for task in lsc.iter_tasks(
            client, project_id=int(project.ls_project_id or 0), data_equals=(BATCH_KEY, token), fields="task_only"
        ):
            review_id = (task.get("data") or {}).get(REVIEW_KEY)
            if review_id is not None:
                found[int(review_id)].append(int(task["id"]))
    extra = [t for tasks in found.values() for t in sorted(tasks)[1:]]
    if extra:
        lsc.delete_tasks(client, project_id=int(project.ls_project_id or 0), task_ids=extra)
    _save({r.pk: min(found[r.pk]) for r in marked if found.get(r.pk)})
    LabelReview.objects.filter(pk__in=[r.pk for r in marked if not found.get(r.pk)]).update(sync_batch="")


def _save(task_ids: dict[int, int]) -> None:
    """The reviews' task ids, one UPDATE per batch (not one per review)."""
    rows = [
        LabelReview(pk=review_id, ls_task_id=task_id, sync_state=ReviewSync.SYNCED, sync_batch="", sync_error="")
        for review_id, task_id in task_ids.items()
    ]
    LabelReview.objects.bulk_update(rows, ["ls_task_id", "sync_state", "sync_batch", "sync_error"], batch_size=BATCH)


def _task(project: Project, info: LabelConfigInfo, review: LabelReview) -> convert.TaskPayload:
    item = review.item
    value = item.text if project.task_type == TaskType.TEXT_CLASSIFICATION else item_media_url(item, project=project)
    current, suggested = item.label, review.suggested_label
    note = f"Review: labeled {current!r}" + (f", the model suggests {suggested!r}" if suggested else "")
    data: dict[str, Any] = {
        info.data_key: value,
        "alweb_key": item.key,
        REVIEW_KEY: review.pk,
        BATCH_KEY: review.sync_batch,
        "alweb_current_label": current,
        "alweb_suggested_label": suggested,
        "alweb_review_note": note,
    }
    task: convert.TaskPayload = {"data": data}
    if suggested in info.labels:
        quality = review.suspect.quality if review.suspect is not None else 0.5
        result = convert.choice_result(suggested, from_name=info.from_name, to_name=info.to_name)
        # LS's score orders its queue: the least trusted labels (lowest quality) are served first.
        task["predictions"] = [convert.prediction(result, uncertainty=1.0 - quality, model_version=MODEL_VERSION)]
    return task
