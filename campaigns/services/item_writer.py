"""Bulk writing of imported items: COPY through a temp table on Postgres, bulk_create elsewhere.

Both paths insert with "on conflict do nothing" on (project, key): re-importing a key leaves the item as it is,
which makes an import idempotent. Media bytes are stored content-addressed, so re-imports don't duplicate files.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.utils import timezone

from campaigns.ingest.rows import ItemRow, split_for_key
from campaigns.models import Item

_COLUMNS = (
    "project_id, key, split, state, text, media, url, media_width, media_height, label, label_source, "
    "ground_truth, metadata, source, label_error, created_at"
)
_TEMP = "alweb_item_import"


class ItemWriter:
    def __init__(self, *, project_id: int, split_ratios: dict[str, float]) -> None:
        self.project_id = project_id
        self.split_ratios = split_ratios
        self.stored_files: list[str] = []  # written by this import: deleted again if it fails
        self.created = 0
        self._postgres = connection.vendor == "postgresql"
        self._temp_ready = False

    def store_media(self, row: ItemRow) -> str:
        assert row.media is not None
        digest = row.media.digest
        name = f"items/{self.project_id}/{digest[:2]}/{digest}.{row.media.extension}"
        if not default_storage.exists(name):
            saved = default_storage.save(name, ContentFile(row.media.data))
            self.stored_files.append(saved)
            return saved
        return name

    def _values(self, row: ItemRow, now: Any) -> tuple[Any, ...]:
        media = self.store_media(row) if row.media is not None else ""
        width = row.media.width if row.media is not None else None
        height = row.media.height if row.media is not None else None
        return (
            self.project_id,
            row.key,
            split_for_key(row.key, self.split_ratios),
            "active",
            row.text,
            media,
            row.url,
            width,
            height,
            row.label,
            "import" if row.label is not None else "",
            row.ground_truth,
            row.metadata,
            row.source,
            "",
            now,
        )

    def write(self, rows: Sequence[ItemRow]) -> int:
        """Insert a batch; returns how many rows were new."""
        now = timezone.now()
        values = [self._values(r, now) for r in rows]
        created = self._copy(values) if self._postgres else self._bulk_create(values)
        self.created += created
        return created

    def _copy(self, values: list[tuple[Any, ...]]) -> int:
        with connection.cursor() as cursor:
            if not self._temp_ready:
                cursor.execute(
                    f"CREATE TEMP TABLE IF NOT EXISTS {_TEMP} (project_id bigint, key varchar(512), split varchar(8),"
                    " state varchar(8), text text, media varchar(512), url varchar(2048), media_width integer,"
                    " media_height integer, label jsonb, label_source varchar(16), ground_truth jsonb,"
                    " metadata jsonb, source varchar(512), label_error text, created_at timestamptz)"
                    " ON COMMIT DROP"
                )
                self._temp_ready = True
            raw = cursor.cursor  # the psycopg 3 cursor: COPY is ~10x faster than INSERT for large batches
            with raw.copy(f"COPY {_TEMP} ({_COLUMNS}) FROM STDIN") as copy:
                for v in values:
                    copy.write_row((*v[:9], _json(v[9]), v[10], _json(v[11]), json.dumps(v[12]), *v[13:]))
            cursor.execute(
                f"INSERT INTO {Item._meta.db_table} ({_COLUMNS}) SELECT {_COLUMNS} FROM {_TEMP}"
                " ON CONFLICT (project_id, key) DO NOTHING"
            )
            created = cursor.rowcount
            cursor.execute(f"TRUNCATE {_TEMP}")
        return created

    def _bulk_create(self, values: list[tuple[Any, ...]]) -> int:
        names = [c.strip() for c in _COLUMNS.split(",")]
        before = Item.objects.filter(project_id=self.project_id).count()
        Item.objects.bulk_create(
            [Item(**dict(zip(names, v, strict=True))) for v in values], batch_size=1000, ignore_conflicts=True
        )
        return Item.objects.filter(project_id=self.project_id).count() - before

    def discard_files(self) -> None:
        for name in self.stored_files:
            default_storage.delete(name)
        self.stored_files.clear()


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)
