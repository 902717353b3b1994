"""Bulk writing of imported items: COPY through a temp table on Postgres, bulk_create elsewhere.

Both paths insert with "on conflict do nothing" on (project, key), which makes an import idempotent. A key already
in the project is never moved and never relabeled behind anyone's back: a label for an item without one is applied
(label source "import"); a different label for a labeled item, or another split for an item, is a conflict reported
with its row and left as it is. Media bytes are stored content-addressed, so re-imports don't duplicate files.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.utils import timezone

from campaigns.ingest.rows import ItemRow, split_for_key
from campaigns.models import Item, LabelSource
from campaigns.services.label_history import LabelSet, label_changes_record

_COLUMNS = (
    "project_id, key, split, state, text, media, url, media_width, media_height, label, label_source, "
    "ground_truth, metadata, source, label_error, created_at"
)
_TEMP = "alweb_item_import"
# Conflicts reported row by row (all are counted): enough to fix a file, bounded for a million-row import.
MAX_CONFLICT_ROWS = 100


class ItemWriter:
    def __init__(self, *, project_id: int, split_ratios: dict[str, float]) -> None:
        self.project_id = project_id
        self.split_ratios = split_ratios
        self.stored_files: list[str] = []  # written by this import: deleted again if it fails
        self.created = 0
        self.labeled_new = 0  # new items that came with a label
        self.labeled_existing = 0  # items already in the project that this import gave their first label
        self.conflicts = 0
        self.conflict_rows: list[dict[str, Any]] = []
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
            row.split or split_for_key(row.key, self.split_ratios),
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
        """Insert a batch (labels for existing unlabeled items applied, conflicts recorded); returns how many rows
        were new."""
        existing = {
            key: (pk, label, split)
            for key, pk, label, split in Item.objects.filter(
                project_id=self.project_id, key__in={r.key for r in rows}
            ).values_list("key", "pk", "label", "split")
        }
        self._update_existing([r for r in rows if r.key in existing], existing)
        new: dict[str, ItemRow] = {}
        for row in rows:
            if row.key in existing:
                continue
            first = new.setdefault(row.key, row)
            if first is not row and (row.label, row.split) != (first.label, first.split):
                self._conflict(row, "key", f"repeats line {first.line} with another label or split (the first is kept)")
        self.labeled_new += sum(1 for r in new.values() if r.label is not None)
        now = timezone.now()
        values = [self._values(r, now) for r in new.values()]
        created = self._copy(values) if self._postgres else self._bulk_create(values)
        self.created += created
        return created

    def _conflict(self, row: ItemRow, field: str, reason: str) -> None:
        self.conflicts += 1
        if len(self.conflict_rows) < MAX_CONFLICT_ROWS:
            self.conflict_rows.append(
                {"file": row.file, "line": row.line, "key": row.key, "field": field, "reason": reason}
            )

    def _update_existing(self, rows: Sequence[ItemRow], existing: dict[str, tuple[int, Any, str]]) -> None:
        to_label: dict[int, Any] = {}
        for row in rows:
            pk, label, split = existing[row.key]
            if row.split is not None and row.split != split:
                self._conflict(row, "split", f"the item is in {split}: a re-import never moves an item (not changed)")
            if row.label is None or row.label == label or pk in to_label:
                continue
            if label is None:
                to_label[pk] = row.label
            else:
                self._conflict(row, "label", f"the item is labeled {label!r} already (not changed)")
        if to_label:
            Item.objects.bulk_update(
                [Item(pk=pk, label=value, label_source="import") for pk, value in to_label.items()],
                ["label", "label_source"],
                batch_size=1000,
            )
            label_changes_record(
                changes=[LabelSet(pk, None, value) for pk, value in to_label.items()], source=LabelSource.IMPORT
            )
            self.labeled_existing += len(to_label)

    def _copy(self, values: list[tuple[Any, ...]]) -> int:
        if not values:
            return 0
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
            # Its errors wrapped as Django's (a dropped connection: OperationalError), like every other query's.
            with connection.wrap_database_errors, raw.copy(f"COPY {_TEMP} ({_COLUMNS}) FROM STDIN") as copy:
                for v in values:
                    copy.write_row((*v[:9], _json(v[9]), v[10], _json(v[11]), json.dumps(v[12]), *v[13:]))
            # RETURNING what was inserted: the labeled rows among them get their history rows next.
            cursor.execute(
                f"INSERT INTO {Item._meta.db_table} ({_COLUMNS}) SELECT {_COLUMNS} FROM {_TEMP}"
                " ON CONFLICT (project_id, key) DO NOTHING RETURNING id, label::text"
            )
            rows = cursor.fetchall()
            cursor.execute(f"TRUNCATE {_TEMP}")
        # As text: Django's Postgres backend hands raw jsonb back undecoded, so decode it here, the same way always.
        _record_imported((pk, json.loads(label)) for pk, label in rows if label is not None)
        return len(rows)

    def _bulk_create(self, values: list[tuple[Any, ...]]) -> int:
        if not values:
            return 0
        names = [c.strip() for c in _COLUMNS.split(",")]
        before = Item.objects.filter(project_id=self.project_id).count()
        Item.objects.bulk_create(
            [Item(**dict(zip(names, v, strict=True))) for v in values], batch_size=1000, ignore_conflicts=True
        )
        # ignore_conflicts gives no ids back: the rows inserted now are the labeled ones stamped with this batch's
        # created_at (every value of a batch carries the same one).
        labeled = [v[1] for v in values if v[9] is not None]
        if labeled:
            _record_imported(
                Item.objects.filter(project_id=self.project_id, key__in=labeled, created_at=values[0][15])
                .exclude(label__isnull=True)
                .values_list("pk", "label")
            )
        return Item.objects.filter(project_id=self.project_id).count() - before

    def discard_files(self) -> None:
        for name in self.stored_files:
            default_storage.delete(name)
        self.stored_files.clear()


def _record_imported(rows: Iterable[tuple[int, Any]]) -> None:
    """History of the labels new items came with: each goes from nothing to its imported label."""
    label_changes_record(changes=(LabelSet(pk, None, label) for pk, label in rows), source=LabelSource.IMPORT)


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)
