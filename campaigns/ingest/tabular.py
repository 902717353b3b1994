"""CSV and JSONL readers: one item per row, streamed line by line so a 1M-row file never sits in memory.

Known fields: key, text, image (a path relative to the file, or an http(s) URL), url, label, ground_truth,
source, split (train, valid, test or pool: the team's own split; empty lets the key's hash decide); in CSV every
other column goes to metadata, in JSONL an object `metadata`. A missing key is derived
from the payload (the image path, the URL, or a hash of the text) so re-importing the same file is idempotent.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .images import read_local_image
from .jsonlimits import JSONLimitError, check_json_text
from .rows import ItemImportError, ItemRow, LabelSpec, validate_split

KNOWN_FIELDS = {"key", "text", "image", "url", "label", "ground_truth", "source", "metadata", "split"}


class _Lines:
    """The file's lines decoded one at a time, so a bad byte is reported on its own physical line (a text stream
    decodes 8 KB blocks ahead of the reader and would blame an earlier line). Strict: never silently replaced."""

    def __init__(self, path: Path, file: str) -> None:
        self.path, self.file, self.number = path, file, 0

    def __iter__(self) -> Iterator[str]:
        with self.path.open("rb") as fh:
            for raw in fh:
                self.number += 1
                if self.number == 1:
                    raw = raw.removeprefix(codecs.BOM_UTF8)
                try:
                    yield raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise ItemImportError(
                        self.file, self.number, f"not valid UTF-8 ({exc.reason} at byte {exc.start} of the line)"
                    ) from exc


def _payload_key(row: dict[str, Any]) -> str:
    for name in ("image", "url"):
        if row.get(name):
            return str(row[name])
    text = row.get("text") or ""
    return "sha1:" + hashlib.sha1(text.encode("utf-8")).hexdigest()


class RowBuilder:
    """Turns a dict of fields into a validated ItemRow; shared by the CSV and JSONL readers."""

    def __init__(self, *, spec: LabelSpec, base_dir: Path, file: str, max_chars: int, max_pixels: int) -> None:
        self.spec = spec
        self.base_dir = base_dir.resolve()
        self.file = file
        self.max_chars = max_chars
        self.max_pixels = max_pixels

    def build(self, raw: dict[str, Any], line: int, *, parse_json_labels: bool) -> ItemRow:
        f, sp = self.file, self.spec
        for name, value in raw.items():
            if isinstance(value, str) and len(value) > self.max_chars:
                raise ItemImportError(f, line, f"field longer than {self.max_chars} characters", name)
        text = raw.get("text") or ""
        image = raw.get("image") or ""
        url = raw.get("url") or ""
        for name, value in (("text", text), ("image", image), ("url", url), ("key", raw.get("key") or "")):
            if not isinstance(value, str):
                raise ItemImportError(f, line, f"must be a string, got {type(value).__name__}", name)
        if not (text or image or url):
            raise ItemImportError(f, line, "row has no payload: give text, image or url", "text")
        if sp.task_type == "text_classification" and not text:
            raise ItemImportError(f, line, "text projects need a text field", "text")
        if sp.task_type != "text_classification" and not (image or url):
            raise ItemImportError(f, line, "image projects need an image or url field", "image")
        key = str(raw.get("key") or _payload_key(raw)).strip()  # lengths and NULs: rows.check_row, for every reader
        label = self._label(raw.get("label"), line, "label", parse_json_labels)
        truth = self._label(raw.get("ground_truth"), line, "ground_truth", parse_json_labels)
        metadata = raw.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise ItemImportError(f, line, "must be an object", "metadata")
        metadata = {**metadata, **{k: v for k, v in raw.items() if k not in KNOWN_FIELDS and v not in (None, "")}}
        row = ItemRow(key=key, file=f, line=line, text=text, label=label, ground_truth=truth, metadata=metadata)
        row.source = str(raw.get("source") or "")
        row.split = validate_split(raw.get("split"), file=f, line=line)
        if image.startswith(("http://", "https://")):
            row.url = image
        elif image:
            row.media = read_local_image(self.base_dir, image, file=f, line=line, max_pixels=self.max_pixels)
        else:
            if url and not url.startswith(("http://", "https://")):
                raise ItemImportError(f, line, "must be an http(s) URL", "url")
            row.url = url
        return row

    def _label(self, value: Any, line: int, name: str, parse_json: bool) -> Any:
        # CSV cells are strings: detection boxes come as a JSON list in the cell.
        if parse_json and self.spec.is_detection and isinstance(value, str) and value.strip():
            try:
                check_json_text(value, max_bytes=len(value))
                value = json.loads(value)
            except JSONLimitError as exc:
                raise ItemImportError(self.file, line, f"boxes {exc.reason}", name) from None
            except json.JSONDecodeError as exc:
                raise ItemImportError(self.file, line, f"boxes must be a JSON list: {exc.msg}", name) from exc
        return self.spec.validate(value, file=self.file, line=line, field=name)


def read_csv(path: Path, builder: RowBuilder) -> Iterator[ItemRow]:
    csv.field_size_limit(builder.max_chars + 1)
    line = 1
    reader = csv.DictReader(_Lines(path, builder.file), strict=True)
    try:
        if not reader.fieldnames:
            raise ItemImportError(builder.file, 1, "empty file: expected a header row")
        names = [n.strip() for n in reader.fieldnames]
        if len(set(names)) != len(names):
            raise ItemImportError(builder.file, 1, "duplicate column names in the header")
        reader.fieldnames = names
        for raw in reader:
            line = reader.line_num
            if None in raw:
                raise ItemImportError(builder.file, line, "more cells than header columns")
            if any(v is None for v in raw.values()):
                raise ItemImportError(builder.file, line, "fewer cells than header columns")
            yield builder.build(raw, line, parse_json_labels=True)
    except csv.Error as exc:
        raise ItemImportError(builder.file, line + 1, f"malformed CSV: {exc}") from exc


def read_jsonl(path: Path, builder: RowBuilder) -> Iterator[ItemRow]:
    for line, text in enumerate(_Lines(path, builder.file), start=1):
        if not text.strip():
            continue
        if len(text) > builder.max_chars * 4:
            raise ItemImportError(builder.file, line, "line too long")
        try:
            check_json_text(text, max_bytes=len(text))  # the length is bounded above; the depth is checked here
            raw = json.loads(text)
        except JSONLimitError as exc:
            raise ItemImportError(builder.file, line, exc.reason, exc.key) from None
        except json.JSONDecodeError as exc:
            raise ItemImportError(builder.file, line, f"invalid JSON: {exc.msg} (column {exc.colno})") from exc
        if not isinstance(raw, dict):
            raise ItemImportError(builder.file, line, "each line must be a JSON object")
        yield builder.build(raw, line, parse_json_labels=False)


TabularReader = Callable[[Path, RowBuilder], Iterator[ItemRow]]
