"""Dataset export: a project's labeled items (or a cycle's training snapshot) to CSV, JSONL, Parquet, COCO, YOLO or
an ImageFolder zip, streamed page by page; run synchronously (`export_items`) or as a Celery task that lands the
file in default storage under exports/ with a signed, expiring download link.

A snapshot (`as_of_cycle=N`) exports the training set recorded with cycle N's model version, with the labels the
model saw, and recomputes the version's training-set hash over the rows it writes: `matches` is the proof.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, User
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from campaigns.models import Export, ExportFormat, ExportState, Project, TaskType
from campaigns.selectors.exports import (
    export_count,
    export_pages,
    snapshot_count,
    snapshot_is_recorded,
    snapshot_model_version,
    snapshot_pages,
)
from campaigns.services import queue
from campaigns.services.export_archives import CocoWriter, ImageFolderWriter, YoloWriter
from campaigns.services.export_writers import Bundle, CsvWriter, JsonlWriter, ParquetWriter, Writer
from campaigns.services.media import signed_storage_url
from campaigns.services.training_sets import HASH_PARAM, TrainingSetHasher
from models_registry.models import ModelVersion

PAGE_SIZE = 5000
# Which formats fit which task: COCO and YOLO carry boxes, ImageFolder one class per image.
FORMAT_TASKS: dict[str, tuple[str, ...]] = {
    ExportFormat.CSV: tuple(TaskType.values),
    ExportFormat.JSONL: tuple(TaskType.values),
    ExportFormat.PARQUET: tuple(TaskType.values),
    ExportFormat.COCO: (TaskType.OBJECT_DETECTION,),
    ExportFormat.YOLO: (TaskType.OBJECT_DETECTION,),
    ExportFormat.IMAGEFOLDER: (TaskType.IMAGE_CLASSIFICATION,),
}
# Folder formats are always zips; ImageFolder is its images, so they are always in it.
ALWAYS_ZIP = (ExportFormat.YOLO, ExportFormat.IMAGEFOLDER)
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class ExportOutcome:
    rows: int
    training_set_hash: str = ""
    expected_hash: str = ""

    @property
    def matches(self) -> bool | None:
        """Snapshots: whether the rows written are exactly the training set the model version recorded."""
        return self.training_set_hash == self.expected_hash if self.expected_hash else None

    def as_result(self) -> dict[str, Any]:
        if not self.expected_hash:
            return {}
        return {HASH_PARAM: self.training_set_hash, "expected_hash": self.expected_hash, "matches": self.matches}


def export_extension(*, fmt: str, include_media: bool) -> str:
    if fmt in ALWAYS_ZIP or include_media:
        return ".zip"
    return ".json" if fmt == ExportFormat.COCO else f".{fmt}"


def export_validate(
    *, project: Project, fmt: str, as_of_cycle: int | None = None, include_media: bool = False
) -> ModelVersion | None:
    """Refuse what cannot be exported, naming the field; returns the snapshot's model version, if any."""
    if fmt not in FORMAT_TASKS:
        raise ValidationError({"format": f"unknown format {fmt!r}: use one of {', '.join(FORMAT_TASKS)}"})
    if project.task_type not in FORMAT_TASKS[fmt]:
        raise ValidationError({"format": f"{fmt} does not fit a {project.get_task_type_display().lower()} project"})
    if include_media and project.task_type == TaskType.TEXT_CLASSIFICATION:
        raise ValidationError({"include_media": "a text project has no media to include"})
    if as_of_cycle is None:
        return None
    if isinstance(as_of_cycle, bool) or not isinstance(as_of_cycle, int) or as_of_cycle < 1:
        raise ValidationError({"as_of_cycle": "must be a cycle number (1 or more)"})
    cycle, version = snapshot_model_version(project=project, cycle_number=as_of_cycle)
    if cycle is None:
        raise ValidationError({"as_of_cycle": f"this project has no cycle {as_of_cycle}"})
    if version is None:
        raise ValidationError({"as_of_cycle": f"cycle {as_of_cycle} trained no model (a cold start, an external one)"})
    if not snapshot_is_recorded(model_version=version):
        raise ValidationError(
            {"as_of_cycle": f"cycle {as_of_cycle}'s model was trained before alweb recorded training sets"}
        )
    return version


def _writer(bundle: Bundle, project: Project, fmt: str, include_media: bool) -> Writer:
    labels = list(project.labels)
    detection = project.task_type == TaskType.OBJECT_DETECTION
    if fmt == ExportFormat.CSV:
        return CsvWriter(bundle, include_media=include_media)
    if fmt == ExportFormat.JSONL:
        return JsonlWriter(bundle, include_media=include_media)
    if fmt == ExportFormat.PARQUET:
        return ParquetWriter(bundle, include_media=include_media, detection=detection)
    if fmt == ExportFormat.COCO:
        return CocoWriter(bundle, include_media=include_media, labels=labels)
    if fmt == ExportFormat.YOLO:
        return YoloWriter(bundle, include_media=include_media, labels=labels)
    return ImageFolderWriter(bundle)


def project_export(
    *,
    project: Project,
    out: Path,
    fmt: str,
    as_of_cycle: int | None = None,
    include_media: bool = False,
    include_unlabeled: bool = False,
    progress: Progress | None = None,
    page_size: int = PAGE_SIZE,
) -> ExportOutcome:
    """Write the export to `out` (a local path; `export_extension` says what it should end in), streaming.

    Without `as_of_cycle`: the project's labeled active items (every active item with `include_unlabeled`), in id
    order. With it: cycle N's recorded training set, by key. Nothing to export is an empty file with its header
    (or schema), not an error."""
    version = export_validate(project=project, fmt=fmt, as_of_cycle=as_of_cycle, include_media=include_media)
    include_media = include_media or fmt == ExportFormat.IMAGEFOLDER
    bundle = Bundle(out, archive=export_extension(fmt=fmt, include_media=include_media) == ".zip")
    writer = _writer(bundle, project, fmt, include_media)
    hasher = TrainingSetHasher() if version is not None else None
    if version is not None and as_of_cycle is not None:
        total = snapshot_count(model_version=version)
        pages = snapshot_pages(model_version=version, cycle_number=as_of_cycle, page_size=page_size)
    else:
        total = export_count(project=project, labeled_only=not include_unlabeled)
        pages = export_pages(project=project, page_size=page_size, labeled_only=not include_unlabeled)
    done = 0
    try:
        for rows in pages:
            writer.write(rows)
            if hasher is not None:
                for row in rows:
                    hasher.update(row.key, row.label)
            done += len(rows)
            if progress is not None:
                progress(done, total)
    finally:
        writer.close()
    if hasher is None or version is None:
        return ExportOutcome(rows=done)
    return ExportOutcome(
        rows=done, training_set_hash=hasher.hexdigest(), expected_hash=str(version.params.get(HASH_PARAM, ""))
    )


def export_create(
    *,
    project: Project,
    user: AbstractBaseUser | None,
    fmt: str,
    as_of_cycle: int | None = None,
    include_media: bool = False,
    include_unlabeled: bool = False,
) -> Export:
    """Check the request, record the export and queue its task (after commit). The file comes later."""
    export_validate(project=project, fmt=fmt, as_of_cycle=as_of_cycle, include_media=include_media)
    with transaction.atomic():
        export = Export.objects.create(
            project=project,
            format=fmt,
            as_of_cycle=as_of_cycle,
            include_media=include_media,
            include_unlabeled=include_unlabeled,
            created_by=cast(User | None, user),
            progress={"done": 0, "total": 0},
        )
        queue.enqueue_on_commit(queue.PROJECT_EXPORT, export_id=export.pk)
    return export


def export_storage_name(export: Export) -> str:
    """One name per export: a redelivered task rewrites the same file, never a second one beside it."""
    ext = export_extension(fmt=export.format, include_media=export.include_media)
    return f"exports/{export.project_id}/export-{export.pk}{ext}"


def export_run(*, export_id: int) -> Export:
    """The task's work, idempotent: a finished export whose file exists is left alone; otherwise the export is
    written again from the start into a temporary folder and saved under its one name in default storage."""
    export = Export.objects.select_related("project").get(pk=export_id)
    if export.state == ExportState.DONE and export.file and default_storage.exists(str(export.file.name)):
        return export
    Export.objects.filter(pk=export.pk).update(state=ExportState.RUNNING, failure_reason="")

    def progress(done: int, total: int) -> None:
        at = timezone.now().isoformat()
        Export.objects.filter(pk=export.pk).update(progress={"done": done, "total": total, "updated_at": at})

    name = export_storage_name(export)
    with tempfile.TemporaryDirectory(prefix="alweb-export-") as tmp:
        path = Path(tmp) / Path(name).name
        outcome = project_export(
            project=export.project,
            out=path,
            fmt=export.format,
            as_of_cycle=export.as_of_cycle,
            include_media=export.include_media,
            include_unlabeled=export.include_unlabeled,
            progress=progress,
        )
        if default_storage.exists(name):
            default_storage.delete(name)  # else the storage would save beside it under another name
        with path.open("rb") as fh:
            saved = default_storage.save(name, File(fh))
    Export.objects.filter(pk=export.pk).update(
        state=ExportState.DONE,
        file=saved,
        rows=outcome.rows,
        result=outcome.as_result(),
        progress={"done": outcome.rows, "total": outcome.rows, "updated_at": timezone.now().isoformat()},
        finished_at=timezone.now(),
    )
    export.refresh_from_db()
    return export


def export_fail(*, export_id: int, reason: str) -> None:
    Export.objects.filter(pk=export_id).exclude(state=ExportState.DONE).update(
        state=ExportState.FAILED, failure_reason=reason[:2000], finished_at=timezone.now()
    )


def export_download_url(*, export: Export) -> str:
    """The signed, expiring link to a finished export's file ("" until it is done)."""
    if export.state != ExportState.DONE or not export.file:
        return ""
    return signed_storage_url(str(export.file.name), e=export.pk)


def exports_prune(*, older_than: timedelta | None = None) -> int:
    """Delete finished and failed exports older than ALWEB_EXPORT_RETENTION_DAYS (0: keep them all), the file before
    the row: every export is a full copy of the dataset, and storage would otherwise only grow. Running and queued
    exports are left alone. Idempotent (a file already gone is fine). Returns how many were deleted."""
    if older_than is None:
        if settings.ALWEB_EXPORT_RETENTION_DAYS <= 0:
            return 0
        older_than = timedelta(days=settings.ALWEB_EXPORT_RETENTION_DAYS)
    cutoff = timezone.now() - older_than
    old = Export.objects.filter(state__in=[ExportState.DONE, ExportState.FAILED], created_at__lt=cutoff)
    deleted = 0
    for export in old.only("pk", "file").iterator():
        if export.file and default_storage.exists(str(export.file.name)):
            default_storage.delete(str(export.file.name))
        export.delete()
        deleted += 1
    return deleted
