"""The row every reader yields, the error every reader raises, and label validation shared by all formats."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SPLITS = ("train", "valid", "test", "pool")


class ItemImportError(Exception):
    """A bad row: names the file, the line (or entry) and the reason, so the user can fix it."""

    def __init__(self, file: str, line: int | str | None, reason: str, field: str | None = None) -> None:
        self.file = file
        self.line = line
        self.reason = reason
        self.field = field
        where = f"{file}:{line}" if line not in (None, "") else file
        super().__init__(f"{where}: {f'{field}: ' if field else ''}{reason}")

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "field": self.field, "reason": self.reason}


@dataclass(slots=True)
class Media:
    """Image bytes read from the import (a file, a zip member, a tile), stored content-addressed on write."""

    data: bytes
    extension: str
    width: int
    height: int

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(slots=True)
class ItemRow:
    key: str
    file: str
    line: int | str
    text: str = ""
    url: str = ""
    media: Media | None = None
    label: Any = None
    ground_truth: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    # The team's own split (a `split` column or field); None: the key's hash decides (`split_for_key`).
    split: str | None = None


# The columns' sizes in the database: a longer value must be a bad row here, not a database error at COPY time.
COLUMN_LIMITS = {"key": 512, "source": 512, "url": 2048}


def check_row(row: ItemRow) -> ItemRow:
    """What every reader's rows must satisfy to be stored: the column limits, and no NUL character anywhere
    (Postgres text and jsonb cannot hold one). Runs once per row of every import, so it stays cheap."""
    key, source, url = row.key, row.source, row.url
    if not key:
        raise ItemImportError(row.file, row.line, "must not be empty", "key")
    if len(key) > COLUMN_LIMITS["key"] or len(source) > COLUMN_LIMITS["source"] or len(url) > COLUMN_LIMITS["url"]:
        name = next(n for n, limit in COLUMN_LIMITS.items() if len(getattr(row, n)) > limit)
        raise ItemImportError(row.file, row.line, f"longer than {COLUMN_LIMITS[name]} characters", name)
    if "\x00" in key or "\x00" in row.text or "\x00" in url or "\x00" in source:
        name = next(n for n in ("key", "text", "url", "source") if "\x00" in getattr(row, n))
        raise ItemImportError(row.file, row.line, "contains a NUL character", name)
    if row.metadata and has_nul(row.metadata):
        raise ItemImportError(row.file, row.line, "contains a NUL character", "metadata")
    return row


def has_nul(value: Any) -> bool:
    """Whether a JSON-like value holds U+0000 anywhere: Postgres text and jsonb cannot store it."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_nul(v) for v in value)
    return False


@dataclass(frozen=True, slots=True)
class LabelSpec:
    """What a project accepts as a label: one class name, or (detection) a list of normalised boxes."""

    task_type: str
    labels: tuple[str, ...]

    @property
    def is_detection(self) -> bool:
        return self.task_type == "object_detection"

    def validate(self, value: Any, *, file: str, line: int | str, field: str) -> Any:
        """Return the canonical form of `value` or raise ItemImportError naming the field."""
        if value is None or value == "":
            return None
        if self.is_detection:
            return self._validate_boxes(value, file=file, line=line, field=field)
        if not isinstance(value, str):
            raise ItemImportError(file, line, f"expected a label name, got {type(value).__name__}", field)
        if value not in self.labels:
            raise ItemImportError(file, line, f"unknown label {value!r} (known: {', '.join(self.labels)})", field)
        return value

    def _validate_boxes(self, value: Any, *, file: str, line: int | str, field: str) -> list[dict[str, Any]]:
        if not isinstance(value, Sequence) or isinstance(value, str):
            raise ItemImportError(file, line, "expected a list of boxes {label, x, y, w, h}", field)
        boxes = []
        for i, box in enumerate(value):
            if not isinstance(box, Mapping):
                raise ItemImportError(file, line, f"box {i} is not an object", field)
            label = box.get("label")
            if label not in self.labels:
                raise ItemImportError(file, line, f"box {i}: unknown label {label!r}", field)
            coords = {}
            for name in ("x", "y", "w", "h"):
                v = box.get(name)
                if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                    raise ItemImportError(file, line, f"box {i}: {name} must be a finite number", field)
                coords[name] = float(v)
            if not (0 <= coords["x"] <= 1 and 0 <= coords["y"] <= 1 and 0 < coords["w"] <= 1 and 0 < coords["h"] <= 1):
                raise ItemImportError(
                    file, line, f"box {i}: coordinates must be fractions of the image in [0, 1]", field
                )
            if coords["x"] + coords["w"] > 1 + 1e-6 or coords["y"] + coords["h"] > 1 + 1e-6:
                raise ItemImportError(file, line, f"box {i}: extends beyond the image", field)
            boxes.append({"label": label, **coords})
        return boxes


def validate_split(value: Any, *, file: str, line: int | str) -> str | None:
    """A team's own split for a row: one of SPLITS, or empty for "let the key's hash decide"."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or value.strip() not in SPLITS:
        raise ItemImportError(file, line, f"must be one of {', '.join(SPLITS)} (or empty), got {value!r}", "split")
    return value.strip()


def split_for_key(key: str, ratios: Mapping[str, float]) -> str:
    """Assign a split from the key alone, so a re-import (or a reordered file) never moves an item.

    The key's hash is a uniform number in [0, 1); the cumulative ratios (in SPLITS order) cut it into splits.
    """
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    u = int.from_bytes(digest, "big") / 2**64
    total = sum(float(ratios.get(s, 0.0)) for s in SPLITS)
    acc = 0.0
    for split in SPLITS:
        acc += float(ratios.get(split, 0.0)) / total
        if u < acc:
            return split
    return "pool"


def validate_split_ratios(ratios: Any) -> dict[str, float]:
    """Ratios per split, non-negative, summing to 1 (within rounding); raises ValueError with the reason."""
    if not isinstance(ratios, Mapping):
        raise ValueError("must be an object mapping split name to ratio")
    unknown = set(ratios) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown split(s): {', '.join(sorted(unknown))}")
    clean: dict[str, float] = {}
    for split in SPLITS:
        v = ratios.get(split, 0.0)
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
            raise ValueError(f"{split}: must be a non-negative number")
        clean[split] = float(v)
    if abs(sum(clean.values()) - 1.0) > 1e-6:
        raise ValueError(f"ratios must sum to 1, got {sum(clean.values()):.4f}")
    return clean
