"""A table and its images in one zip: the upload form of an image-classification CSV (issue 17 item 8).

An upload is one file, so a team with `data.csv` naming `images/cat1.png` sends both as a zip. The zip is checked
like any other (traversal, entry count, total size, compression ratio), unpacked into a temporary folder, and its one
table (CSV, JSON Lines or Parquet) is read with that folder as its base: the table's relative image paths resolve
inside the zip and nowhere else.
"""

from __future__ import annotations

import csv
import json
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

import pyarrow as pa
import pyarrow.parquet as pq

from .images import _check_zip, archive_errors, safe_join
from .rows import ItemImportError, ItemRow

TABLE_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
PAYLOAD_COLUMNS = {"image", "url", "text"}


def _members(archive: zipfile.ZipFile, file: str, max_zip_bytes: int) -> list[zipfile.ZipInfo]:
    return [
        info
        for info in _check_zip(archive, file, max_zip_bytes)
        if not info.is_dir() and "__MACOSX" not in info.filename
    ]


def _columns(archive: zipfile.ZipFile, info: zipfile.ZipInfo, fmt: str) -> set[str]:
    """The column names of a table member, read from its first line (CSV, JSONL) or its schema (Parquet)."""
    with archive.open(info) as fh:
        if fmt == "parquet":
            try:
                return set(pq.ParquetFile(fh).schema_arrow.names)  # the footer only: the member is seekable
            except (pa.ArrowException, OSError):
                return set()  # not a readable Parquet file: not a table of items
        first = b""
        for raw in fh:
            if raw.strip():
                first = raw
                break
    text = first.decode("utf-8-sig", errors="replace")
    if fmt == "csv":
        return {c.strip() for c in next(csv.reader([text]), [])}
    try:
        row = json.loads(text)
    except json.JSONDecodeError:
        return set()
    return set(row) if isinstance(row, dict) else set()


def table_in_zip(path: Path, *, max_zip_bytes: int) -> tuple[str, str] | None:
    """(member name, format) of the zip's table, None for a zip without one; more than one is an error.

    A table counts only if it names a payload column (image, url or text) and is not a Hugging Face ImageFolder
    metadata file (keyed by `file_name`): the companion files of image archives (that metadata.csv, the YOLO export's
    alweb_items.csv) describe the images, and such a zip is imported as images, as before."""
    with archive_errors(path.name, None), zipfile.ZipFile(path) as archive:
        members = _members(archive, path.name, max_zip_bytes)
        found = []
        for info in members:
            fmt = TABLE_FORMATS.get(PurePosixPath(info.filename).suffix.lower())
            if fmt is None:
                continue
            with archive_errors(path.name, info.filename):
                columns = _columns(archive, info, fmt)
            if columns & PAYLOAD_COLUMNS and "file_name" not in columns:
                found.append((info.filename, fmt))
    if len(found) > 1:
        names = ", ".join(sorted(name for name, _ in found))
        raise ItemImportError(path.name, None, f"more than one table in the zip ({names}): send one per import")
    return found[0] if found else None


def read_table_zip(
    path: Path,
    member: str,
    *,
    max_zip_bytes: int,
    read: Callable[[Path, str], Iterator[ItemRow]],
) -> Iterator[ItemRow]:
    """Rows of the zip's table `member`: `read(table path, name for errors)` runs with the zip unpacked beside it.
    Errors name the zip and the member (`cls.zip/data.csv`, line 3)."""
    with tempfile.TemporaryDirectory(prefix="alweb-zip-") as tmp:
        root = Path(tmp).resolve()
        with archive_errors(path.name, None), zipfile.ZipFile(path) as archive:
            for info in _members(archive, path.name, max_zip_bytes):
                target = safe_join(root, info.filename, file=path.name, line=info.filename)
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive_errors(path.name, info.filename), archive.open(info) as src, target.open("wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
        yield from read(root / member, f"{path.name}/{member}")
