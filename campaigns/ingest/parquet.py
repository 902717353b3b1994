"""Parquet reader: the rows of alweb's own Parquet export (or any Parquet file with the same columns), one record
batch at a time, through the CSV/JSONL row builder. `metadata` is a JSON string column (free-form objects do not
fit one Parquet type); detection labels are lists of {label, x, y, w, h} structs, or JSON text."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .rows import ItemImportError, ItemRow
from .tabular import RowBuilder

_BATCH_ROWS = 10_000


def read_parquet(path: Path, builder: RowBuilder) -> Iterator[ItemRow]:
    file = builder.file
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise ItemImportError(file, None, f"not a readable Parquet file: {exc}") from exc
    line = 0
    for batch in parquet.iter_batches(batch_size=_BATCH_ROWS):
        for raw in batch.to_pylist():
            line += 1
            metadata = raw.get("metadata")
            if isinstance(metadata, str):
                try:
                    raw["metadata"] = json.loads(metadata) if metadata else {}
                except json.JSONDecodeError as exc:
                    raise ItemImportError(file, line, f"must be a JSON object: {exc.msg}", "metadata") from exc
            yield builder.build(raw, line, parse_json_labels=True)
