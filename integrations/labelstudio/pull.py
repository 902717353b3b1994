"""Pull: bring Label Studio annotations back into alweb, incrementally, and apply them.

A full pull lists only the tasks LS changed since `Project.ls_pulled_until` (a Data Manager filter on the task's
`updated_at`, which moves when one of its annotations is created, updated or deleted), so its cost follows the
changes, not the project size. The new watermark is LS's own clock read *before* the first page, minus a margin:
a task updated while the pull pages through is seen again next time rather than missed, and applying the same
annotation twice changes nothing. A webhook pulls just the tasks it names and leaves the watermark alone.

Each annotation becomes an AnnotationRecord: a class name, or boxes as fractions of the image ({label, x, y, w, h},
like the importers store), or — for an unknown label or a malformed result — no value and the error, which
`annotations_apply` records on the item while the rest applies. An annotation alweb holds for a pulled task that
LS no longer lists was deleted there.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db.models import Q
from django.utils.dateparse import parse_datetime

from campaigns.models import Annotation, Project, TaskType
from campaigns.services.annotations import AnnotationRecord, annotations_apply
from campaigns.services.reviews import reviews_apply_pulled
from integrations.labelstudio import client as lsc
from integrations.labelstudio import convert
from integrations.labelstudio.connect import (
    labelstudio_client,
    labelstudio_config_info,
    labelstudio_connect_project,
    ls_errors,
)
from integrations.labelstudio.label_config import LabelConfigInfo

log = logging.getLogger(__name__)
PAGE = 200
# LS's clock comes from the HTTP Date header, truncated to the second; a few seconds of overlap cost nothing.
WATERMARK_MARGIN = timedelta(seconds=5)


@dataclass
class PullResult:
    tasks: int = 0
    created: int = 0
    updated: int = 0
    deleted: int = 0
    errors: int = 0


def project_pull_annotations(*, project: Project, task_ids: Sequence[int] | None = None) -> PullResult:
    """Pull the tasks changed since the last pull (or only `task_ids`) and apply their annotations."""
    result = PullResult()
    if project.ls_project_id is None:
        return result
    if not project.ls_linked:  # an LS project id typed in by hand: check it fits before taking labels from it
        project = labelstudio_connect_project(project=project)
    ls_project_id = int(project.ls_project_id or 0)  # set: checked above, and connecting keeps it
    client = labelstudio_client(project)
    info = labelstudio_config_info(client, project)
    with ls_errors():
        watermark = lsc.server_time(client) - WATERMARK_MARGIN if task_ids is None else None
        since = project.ls_pulled_until if task_ids is None else None
        page: list[dict[str, Any]] = []
        tasks = lsc.iter_tasks(
            client,
            project_id=ls_project_id,
            updated_after=since,
            task_ids=[int(t) for t in task_ids] if task_ids is not None else None,
            fields="all",
            page_size=PAGE,
        )
        for task in tasks:
            page.append(task)
            if len(page) >= PAGE:
                _apply(project, info, page, result)
                page = []
        _apply(project, info, page, result)
    if watermark is not None:
        # Only forward: a slow pull finishing after a faster, later one must not move the mark back.
        Project.objects.filter(pk=project.pk).filter(
            Q(ls_pulled_until__isnull=True) | Q(ls_pulled_until__lt=watermark)
        ).update(ls_pulled_until=watermark)
    if result.tasks:
        log.info("project %s: pulled %s tasks from LS: %s", project.pk, result.tasks, result)
    return result


def _apply(project: Project, info: LabelConfigInfo, tasks: list[dict[str, Any]], result: PullResult) -> None:
    if not tasks:
        return
    listed: set[int] = set()
    records: list[AnnotationRecord] = []
    for task in tasks:
        for raw in task.get("annotations") or []:
            if isinstance(raw, Mapping) and raw.get("id") is not None:
                listed.add(int(raw["id"]))
                records.append(annotation_record(raw, task_id=int(task["id"]), project=project, info=info))
    alive = Annotation.objects.filter(
        project=project, ls_task_id__in=[int(t["id"]) for t in tasks], deleted_at__isnull=True
    ).values_list("ls_annotation_id", flat=True)
    deleted = [a for a in alive if a not in listed]
    # Answers on review tasks are decisions on a label under review, not annotations of the item's own task.
    records = reviews_apply_pulled(project=project, records=records)
    applied = annotations_apply(project=project, records=records, deleted_ids=deleted)
    result.tasks += len(tasks)
    result.created += applied.created
    result.updated += applied.updated
    result.deleted += applied.deleted
    result.errors += applied.errors


def annotation_record(
    raw: Mapping[str, Any], *, task_id: int, project: Project, info: LabelConfigInfo
) -> AnnotationRecord:
    """One LS annotation as alweb's record; a result that cannot be mapped gives value None and the error."""
    cancelled = bool(raw.get("was_cancelled"))
    result = raw.get("result")
    value: Any = None
    error = ""
    if not cancelled:  # a skipped task says nothing about its label
        try:
            value = result_to_value(result, project=project, info=info)
        except convert.ConversionError as exc:
            error = str(exc)
    lead_time = raw.get("lead_time")
    return AnnotationRecord(
        ls_annotation_id=int(raw["id"]),
        ls_task_id=task_id,
        annotator=_annotator(raw),
        result=result if isinstance(result, list) else [result],
        value=value,
        error=error,
        lead_time=float(lead_time) if isinstance(lead_time, int | float) else None,
        was_cancelled=cancelled,
        ground_truth=bool(raw.get("ground_truth")),
        created_at=_when(raw.get("created_at")),
        updated_at=_when(raw.get("updated_at")),
    )


def result_to_value(result: Any, *, project: Project, info: LabelConfigInfo) -> Any:
    """A class name (classification) or a list of normalised boxes (detection); raises ConversionError."""
    labels = list(project.labels)
    if project.task_type == TaskType.OBJECT_DETECTION:
        return _boxes(result, labels, info.from_name)
    chosen = convert.result_to_labels(result, known_labels=labels, from_name=info.from_name)
    if len(chosen) != 1:
        raise convert.MalformedResultError(f"expected exactly one label, got {chosen!r}")
    return chosen[0]


def _boxes(result: Any, labels: list[str], from_name: str) -> list[dict[str, Any]]:
    convert.result_to_boxes(result, known_labels=labels, from_name=from_name)  # validates every region first
    boxes = []
    for region in result or []:
        if region.get("from_name") != from_name:
            continue
        (box,) = convert.result_to_boxes([region], known_labels=labels, from_name=from_name)
        w_px, h_px = float(region["original_width"]), float(region["original_height"])
        boxes.append(
            {
                "label": box.label,
                "x": round(box.x / w_px, 6),
                "y": round(box.y / h_px, 6),
                "w": round(box.width / w_px, 6),
                "h": round(box.height / h_px, 6),
            }
        )
    return boxes


def _annotator(raw: Mapping[str, Any]) -> str:
    # LS's list view carries "First Last email, id" in created_username; completed_by is the user id.
    name = str(raw.get("created_username") or "").rsplit(",", 1)[0]
    email = next((part for part in name.split() if "@" in part), "")
    if email:
        return email
    user = raw.get("completed_by")
    if isinstance(user, Mapping):
        return str(user.get("email") or user.get("id") or "")
    return f"ls-user-{user}" if user is not None else ""


def _when(value: Any) -> Any:
    return parse_datetime(value) if isinstance(value, str) else None
