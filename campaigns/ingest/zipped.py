"""A table and its images in one zip: the upload form of an image-classification CSV (issue 17 item 8).

An upload is one file, so a team with `data.csv` naming `images/cat1.png` sends both as a zip. The zip is checked
like any other (traversal, entry count, total size, compression ratio), unpacked into a temporary folder, and its one
table (CSV, JSON Lines or Parquet) is read with that folder as its base: the table's relative image paths resolve
inside the zip and nowhere else.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

from .images import _check_zip, archive_errors, safe_join
from .rows import ItemImportError, ItemRow

TABLE_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}


def _members(archive: zipfile.ZipFile, file: str, max_zip_bytes: int) -> list[zipfile.ZipInfo]:
    return [
        info
        for info in _check_zip(archive, file, max_zip_bytes)
        if not info.is_dir() and "__MACOSX" not in info.filename
    ]


def table_in_zip(path: Path, *, max_zip_bytes: int) -> tuple[str, str] | None:
    """(member name, format) of the zip's table, None for a zip without one; more than one is an error."""
    with archive_errors(path.name, None), zipfile.ZipFile(path) as archive:
        members = _members(archive, path.name, max_zip_bytes)
    found = [
        (info.filename, TABLE_FORMATS[PurePosixPath(info.filename).suffix.lower()])
        for info in members
        if PurePosixPath(info.filename).suffix.lower() in TABLE_FORMATS
    ]
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
