"""Item import: one atomic, streaming, idempotent service behind the `import_items` command and the API."""

from __future__ import annotations

import re
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import connection, transaction

from campaigns.ingest.coco import read_coco, read_coco_zip
from campaigns.ingest.images import read_image_collection
from campaigns.ingest.parquet import read_parquet
from campaigns.ingest.rows import ItemImportError, ItemRow, LabelSpec, check_row
from campaigns.ingest.tabular import RowBuilder, read_csv, read_jsonl
from campaigns.ingest.tiling import tile_rows
from campaigns.ingest.zipped import TABLE_FORMATS, read_table_zip, table_in_zip
from campaigns.models import Project
from campaigns.services.feature_fanout import features_request
from campaigns.services.item_writer import ItemWriter

FORMATS = ("csv", "jsonl", "parquet", "images", "coco")


@dataclass(frozen=True, slots=True)
class ImportResult:
    rows: int
    created: int  # new items
    unchanged: int  # rows for items already there that changed nothing (conflicts included)
    labeled: int  # labels applied: new items with a label, and existing unlabeled items given one
    files_stored: int
    conflicts: int = 0  # rows whose label or split differs from the existing item's: reported, not applied
    conflict_rows: list[dict[str, Any]] = field(default_factory=list)  # the first MAX_CONFLICT_ROWS of them


def detect_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if path.is_dir() or suffix == ".zip":
        return "images"
    suffixes = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".json": "coco"}
    return suffixes.get(suffix, "")


def label_spec_for(project: Project) -> LabelSpec:
    return LabelSpec(task_type=project.task_type, labels=tuple(project.labels))


def _label_as_ground_truth(rows: Iterator[ItemRow]) -> Iterator[ItemRow]:
    """CSV and JSONL name both columns; asked to import labels as ground truth, the label column becomes it."""
    for row in rows:
        if row.label is not None:
            row.ground_truth, row.label = row.label, None
        yield row


def _table_rows(spec: LabelSpec, path: Path, fmt: str, *, file: str, labels_as: str) -> Iterator[ItemRow]:
    builder = RowBuilder(
        spec=spec,
        base_dir=path.parent,  # image paths are relative to the table
        file=file,
        max_chars=settings.ALWEB_IMPORT_MAX_FIELD_CHARS,
        max_pixels=settings.ALWEB_IMPORT_MAX_IMAGE_PIXELS,
    )
    rows = {"csv": read_csv, "jsonl": read_jsonl, "parquet": read_parquet}[fmt](path, builder)
    return _label_as_ground_truth(rows) if labels_as == "ground_truth" else rows


def _zipped_table_rows(spec: LabelSpec, path: Path, fmt: str, *, labels_as: str) -> Iterator[ItemRow] | None:
    """A zip holding a table and its images, read as that table; None for a zip without a table (images)."""
    max_zip_bytes = settings.ALWEB_IMPORT_MAX_ZIP_BYTES
    found = table_in_zip(path, max_zip_bytes=max_zip_bytes)
    if found is None:
        if fmt in TABLE_FORMATS.values():
            raise ItemImportError(path.name, None, f"format {fmt} was asked for, but the zip holds no table")
        return None
    member, table_fmt = found
    if fmt in TABLE_FORMATS.values() and fmt != table_fmt:
        raise ItemImportError(path.name, None, f"format {fmt} was asked for, but the zip's table is {member}")
    return read_table_zip(
        path,
        member,
        max_zip_bytes=max_zip_bytes,
        read=lambda table, file: _table_rows(spec, table, table_fmt, file=file, labels_as=labels_as),
    )


def _rows(project: Project, path: Path, fmt: str, *, label_from_dir: bool, labels_as: str) -> Iterator[ItemRow]:
    spec = label_spec_for(project)
    max_pixels = settings.ALWEB_IMPORT_MAX_IMAGE_PIXELS
    if fmt in ("csv", "jsonl", "parquet", "images") and path.is_file() and zipfile.is_zipfile(path):
        zipped = _zipped_table_rows(spec, path, fmt, labels_as=labels_as)
        if zipped is not None:
            return zipped
    if fmt in ("csv", "jsonl", "parquet"):
        return _table_rows(spec, path, fmt, file=path.name, labels_as=labels_as)
    if project.task_type == "text_classification":
        raise ItemImportError(path.name, None, f"a text project cannot import {fmt}: use csv or jsonl")
    if fmt == "coco":
        return read_coco(path, spec=spec, max_pixels=max_pixels, labels_as=labels_as)
    if spec.is_detection and zipfile.is_zipfile(path):
        max_zip_bytes = settings.ALWEB_IMPORT_MAX_ZIP_BYTES
        coco = read_coco_zip(path, spec=spec, max_pixels=max_pixels, max_zip_bytes=max_zip_bytes, labels_as=labels_as)
        if coco is not None:
            return coco
    return read_image_collection(
        path,
        spec=spec,
        max_pixels=max_pixels,
        max_zip_bytes=settings.ALWEB_IMPORT_MAX_ZIP_BYTES,
        label_from_dir=label_from_dir,
        labels_as=labels_as,
    )


def _locked_for_import(project: Project) -> Project:
    """The project as it is now, share-locked until the import commits: a settings change (labels, split ratios,
    task type) waits for the import and then sees its items, instead of changing what the rows are being checked
    against halfway. Imports do not block each other. SQLite (make run) serialises writers anyway."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT 1 FROM {Project._meta.db_table} WHERE id = %s FOR SHARE", [project.pk])
    return Project.objects.get(pk=project.pk)


def items_import(
    *,
    project: Project,
    path: Path,
    fmt: str | None = None,
    tile: tuple[int, int] | None = None,
    label_from_dir: bool = False,
    labels_as_ground_truth: bool = False,
    batch_size: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Import items from a CSV, JSONL, Parquet or COCO JSON file, a folder or zip of images, or a zip holding one
    table and the images it names (relative to the table), into `project`.

    All or nothing: the first bad row raises ItemImportError (file, line, reason), the transaction rolls back and
    the media files this import stored are deleted. Keys already in the project are left unchanged.
    `progress(n)` is called with the number of rows read so far after each batch.
    """
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise ItemImportError(path.name, None, f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    if not path.exists():
        raise ItemImportError(path.name, None, "no such file or folder")
    labels_as = "ground_truth" if labels_as_ground_truth else "label"
    size = batch_size or settings.ALWEB_IMPORT_BATCH_SIZE
    total = 0
    with transaction.atomic():
        project = _locked_for_import(project)
        writer = ItemWriter(project_id=project.pk, split_ratios=project.split_ratios)
        try:
            rows = _rows(project, path, fmt, label_from_dir=label_from_dir, labels_as=labels_as)
            if tile is not None:
                rows = tile_rows(rows, *tile)
            rows = map(check_row, rows)
            while batch := list(islice(rows, size)):
                writer.write(batch)
                total += len(batch)
                if progress is not None:
                    progress(total)
            if total == 0:
                raise ItemImportError(path.name, None, "no rows to import")
            if writer.created:
                features_request(project=project)  # the new items' embeddings, on the scoring workers
        except BaseException:
            writer.discard_files()
            raise
    return ImportResult(
        rows=total,
        created=writer.created,
        unchanged=total - writer.created - writer.labeled_existing,
        labeled=writer.labeled_new + writer.labeled_existing,
        files_stored=len(writer.stored_files),
        conflicts=writer.conflicts,
        conflict_rows=writer.conflict_rows,
    )


def items_import_upload(*, project: Project, upload: UploadedFile, **options: Any) -> ImportResult:
    """`items_import` for an uploaded file (API, dashboard): saved under a safe version of its own name in a
    temporary folder — the importer reads the format from the suffix and names the file in its errors."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", Path(upload.name or "").name)[-120:].lstrip(".") or "upload"
    with tempfile.TemporaryDirectory(prefix="alweb-import-") as tmp:
        path = Path(tmp) / name
        with path.open("wb") as fh:
            for chunk in upload.chunks():
                fh.write(chunk)
        return items_import(project=project, path=path, **options)
