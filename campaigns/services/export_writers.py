"""Export writers for the tabular formats (CSV, JSON Lines, Parquet) and the bundle every writer writes into: one
plain file, or a zip when media are included or the format is a folder (COCO with images, YOLO, ImageFolder).

Every writer takes pages of `ExportRow`s and writes them as they come: nothing holds more than one page. Parquet
writes one row group per page through `pyarrow.parquet.ParquetWriter`, with a schema fixed up front (a label is a
string, or for detection a list of boxes), so an export of nothing is still a valid file with its columns.
The columns are the importers' own (key, split, text, image, url, label, source, metadata): an export imports
back as it is; the other columns (label_source, annotators, ...) land in the new items' metadata.
"""

from __future__ import annotations

import csv
import json
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import IO, Any, Protocol

import pyarrow as pa
import pyarrow.parquet as pq
from django.core.files.storage import default_storage

from campaigns.selectors.exports import ExportRow

COLUMNS = (
    "key",
    "split",
    "text",
    "image",
    "url",
    "label",
    "label_source",
    "annotators",
    "agreement",
    "selected_cycle",
    "selection_score",
    "predicted_label",
    "confidence",
    "source",
)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"}


class Bundle:
    """The export's output: `path` itself (one file), or a zip at `path` holding the data file and the media.

    Media are copied from storage into the zip as rows arrive (stored, not deflated: images are compressed
    already), each file once."""

    def __init__(self, path: Path, *, archive: bool) -> None:
        self.path = path
        self.archive = zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) if archive else None
        self._added: set[str] = set()

    def add_media(self, storage_name: str, arcname: str) -> str:
        """Copy one stored file into the zip under `arcname` (once); returns `arcname`."""
        assert self.archive is not None
        if arcname not in self._added:
            self._added.add(arcname)
            with (
                default_storage.open(storage_name, "rb") as src,
                self.archive.open(
                    zipfile.ZipInfo(arcname, date_time=(1980, 1, 1, 0, 0, 0)), "w", force_zip64=True
                ) as dst,
            ):
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
        return arcname

    def add_file(self, path: Path, arcname: str) -> None:
        assert self.archive is not None
        self.archive.write(path, arcname)

    def add_text(self, text: str, arcname: str) -> None:
        assert self.archive is not None
        self.archive.writestr(arcname, text)

    def close(self) -> None:
        if self.archive is not None:
            self.archive.close()


def safe_archive_name(key: str, storage_name: str) -> str:
    """The name an item's image gets in an archive: its key when that is a safe relative path with an image suffix
    (so importing the archive gives the same key), else the key made safe plus the stored file's suffix."""
    path = PurePosixPath(key)
    safe = (
        key
        and not key.startswith("/")
        and "\\" not in key
        and "\x00" not in key
        and ".." not in path.parts
        and ":" not in (path.parts[0] if path.parts else "")
    )
    if safe and path.suffix.lower() in IMAGE_SUFFIXES:
        return key
    cleaned = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in key).strip(".") or "item"
    return f"{cleaned}{PurePosixPath(storage_name).suffix.lower()}"


def media_path(bundle: Bundle, row: ExportRow, *, include: bool) -> str:
    """What the `image` column says: the file in the archive (media included) or its storage name."""
    if not row.media:
        return ""
    if not include:
        return row.media
    return bundle.add_media(row.media, f"media/{PurePosixPath(row.media).name}")


def history_fields(row: ExportRow) -> dict[str, Any]:
    """What the item's history adds to a row, in every format: how it got its label and what the model made of it."""
    return {
        "label_source": row.label_source,
        "annotators": row.annotators,
        "agreement": row.agreement,
        "selected_cycle": row.selected_cycle,
        "selection_score": row.selection_score,
        "predicted_label": row.predicted_label,
        "confidence": row.confidence,
    }


def _flat(row: ExportRow, image: str) -> dict[str, Any]:
    """One row in COLUMNS order."""
    payload = {"key": row.key, "split": row.split, "text": row.text, "image": image, "url": row.url}
    return {**payload, "label": row.label, **history_fields(row), "source": row.source}


class Writer(Protocol):
    def write(self, rows: Sequence[ExportRow]) -> None: ...

    def close(self) -> None: ...


class _DataFile:
    """A tabular writer's data file: the bundle itself, or a file beside it that goes into the zip at the end."""

    def __init__(self, bundle: Bundle, name: str, include_media: bool) -> None:
        self.bundle, self.name, self.include_media = bundle, name, include_media
        self.path = bundle.path.with_name(bundle.path.name + "." + name) if bundle.archive else bundle.path

    def finish(self) -> None:
        if self.bundle.archive is not None:
            self.bundle.add_file(self.path, self.name)
            self.path.unlink()
        self.bundle.close()


class CsvWriter(_DataFile):
    """Detection boxes as a JSON list in the cell and annotators joined by ";" (the CSV importer's forms). No
    metadata column: the importer reads every unknown column into metadata, which a JSON cell would not be."""

    def __init__(self, bundle: Bundle, *, include_media: bool) -> None:
        super().__init__(bundle, "items.csv", include_media)
        self._fh: IO[str] = self.path.open("w", encoding="utf-8", newline="")
        self._csv = csv.writer(self._fh)
        self._csv.writerow(COLUMNS)

    def write(self, rows: Sequence[ExportRow]) -> None:
        out = []
        for row in rows:
            flat = _flat(row, media_path(self.bundle, row, include=self.include_media))
            label = flat["label"]
            flat["label"] = "" if label is None else label if isinstance(label, str) else json.dumps(label)
            flat["annotators"] = ";".join(flat["annotators"])
            out.append(["" if v is None else v for v in flat.values()])
        self._csv.writerows(out)

    def close(self) -> None:
        self._fh.close()
        self.finish()


class JsonlWriter(_DataFile):
    def __init__(self, bundle: Bundle, *, include_media: bool) -> None:
        super().__init__(bundle, "items.jsonl", include_media)
        self._fh: IO[str] = self.path.open("w", encoding="utf-8")

    def write(self, rows: Sequence[ExportRow]) -> None:
        lines = []
        for row in rows:
            flat = _flat(row, media_path(self.bundle, row, include=self.include_media))
            flat["metadata"] = row.metadata
            lines.append(json.dumps(flat, ensure_ascii=False) + "\n")
        self._fh.writelines(lines)

    def close(self) -> None:
        self._fh.close()
        self.finish()


BOX = pa.struct([("label", pa.string()), *((name, pa.float64()) for name in ("x", "y", "w", "h"))])


def parquet_schema(*, detection: bool) -> pa.Schema:
    """Plain columns Hugging Face `datasets` and pandas load as they are; metadata (free-form) as a JSON string."""
    return pa.schema(
        [
            ("key", pa.string()),
            ("split", pa.string()),
            ("text", pa.string()),
            ("image", pa.string()),
            ("url", pa.string()),
            ("label", pa.list_(BOX) if detection else pa.string()),
            ("label_source", pa.string()),
            ("annotators", pa.list_(pa.string())),
            ("agreement", pa.float64()),
            ("selected_cycle", pa.int64()),
            ("selection_score", pa.float64()),
            ("predicted_label", pa.string()),
            ("confidence", pa.float64()),
            ("source", pa.string()),
            ("metadata", pa.string()),
        ]
    )


class ParquetWriter(_DataFile):
    def __init__(self, bundle: Bundle, *, include_media: bool, detection: bool) -> None:
        super().__init__(bundle, "items.parquet", include_media)
        self.schema = parquet_schema(detection=detection)
        self._writer = pq.ParquetWriter(self.path, self.schema, compression="zstd")

    def write(self, rows: Sequence[ExportRow]) -> None:
        if not rows:
            return
        columns: dict[str, list[Any]] = {name: [] for name in self.schema.names}
        for row in rows:
            flat = _flat(row, media_path(self.bundle, row, include=self.include_media))
            flat["metadata"] = json.dumps(row.metadata, ensure_ascii=False) if row.metadata else None
            for name, values in columns.items():
                values.append(flat[name])
        self._writer.write_table(pa.table(columns, schema=self.schema))  # one row group per page

    def close(self) -> None:
        self._writer.close()
        self.finish()
