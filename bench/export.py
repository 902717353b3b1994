"""Export benchmark: N labeled items (imported through the fast path `bench/ingest.py` uses) exported to Parquet and
to CSV through the same service as `export_items`, then checked: the Parquet file against the database row by row,
and the CSV imported into a new project and compared in SQL (same keys, splits and labels both ways).

Prints `RESULT {"items": n, "parquet_items_per_s": p, "csv_items_per_s": c, "roundtrip_equal": true}` last.
Target: >= 20,000 items/s each. `--quick`: 100,000 items.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._django import setup_django

NAMES = ("export-bench", "export-bench-roundtrip")
LABELS = ["positive", "negative", "neutral"]


def generate_csv(path: Path, n: int) -> None:
    rng = random.Random(0)
    words = ["fast", "slow", "good", "bad", "cheap", "great", "broken", "fine", "late", "new", "old", "red"]
    with path.open("w", encoding="utf-8") as fh:
        fh.write("key,text,label,source\n")
        for i in range(n):
            fh.write(f"item-{i:08d},{' '.join(rng.choices(words, k=12))},{LABELS[i % 3]},bench\n")


def drop_bench_projects(owner: Any) -> None:
    # Django's cascade collector would load a million rows; the bench database is ours, so delete in SQL.
    from django.db import connection

    from campaigns.models import Item, Project

    ids = list(Project.objects.filter(owner=owner, name__in=NAMES).values_list("pk", flat=True))
    if ids:
        # Rows that point at the items first (label history, embeddings, ...), each table in one DELETE.
        for rel in Item._meta.related_objects:
            rows = rel.related_model._base_manager.filter(**{f"{rel.field.name}__project_id__in": ids})
            rows._raw_delete(connection.alias)
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM campaigns_item WHERE project_id = ANY(%s)", [ids])
        Project.objects.filter(pk__in=ids).delete()


def parquet_equal(path: Path, project: Any) -> bool:
    """The Parquet rows are the project's labeled items in id order: compared page by page, never all in memory."""
    import pyarrow.parquet as pq

    from campaigns.models import Item

    rows = Item.objects.filter(project=project, label__isnull=False).order_by("pk").values_list("key", "split", "label")
    db = rows.iterator(chunk_size=20_000)
    for batch in pq.ParquetFile(path).iter_batches(batch_size=20_000, columns=["key", "split", "label"]):
        for exported in zip(*(batch.column(i).to_pylist() for i in range(3)), strict=True):
            if next(db, None) != exported:
                return False
    return next(db, None) is None


def sql_equal(a: Any, b: Any) -> bool:
    """Same (key, split, label) in both projects, both ways."""
    from django.db import connection

    query = (
        "SELECT count(*) FROM (SELECT key, split, label FROM campaigns_item WHERE project_id = %s"
        " EXCEPT SELECT key, split, label FROM campaigns_item WHERE project_id = %s) d"
    )
    with connection.cursor() as cursor:
        diffs = []
        for x, y in ((a, b), (b, a)):
            cursor.execute(query, [x.pk, y.pk])
            diffs.append(cursor.fetchone()[0])
    return diffs == [0, 0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="100,000 items")
    args = parser.parse_args()
    n = 100_000 if args.quick else args.items
    setup_django()
    from django.contrib.auth import get_user_model

    from campaigns.services.exports import project_export
    from campaigns.services.items import items_import
    from campaigns.services.projects import project_create

    owner, _ = get_user_model().objects.get_or_create(username="bench")
    drop_bench_projects(owner)
    project = project_create(owner=owner, name=NAMES[0], task_type="text_classification", labels=LABELS)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "items.csv"
        generate_csv(source, n)
        start = time.perf_counter()
        items_import(project=project, path=source)
        print(f"imported {n} labeled items in {time.perf_counter() - start:.1f} s")
        seconds = {}
        for fmt in ("parquet", "csv"):
            out = Path(tmp) / f"export.{fmt}"
            start = time.perf_counter()
            outcome = project_export(project=project, out=out, fmt=fmt)
            seconds[fmt] = time.perf_counter() - start
            assert outcome.rows == n, outcome
            print(f"{fmt}: {n} items in {seconds[fmt]:.1f} s, {out.stat().st_size / 1e6:.0f} MB")
        equal = parquet_equal(Path(tmp) / "export.parquet", project)
        again = project_create(owner=owner, name=NAMES[1], task_type="text_classification", labels=LABELS)
        items_import(project=again, path=Path(tmp) / "export.csv")
        equal = equal and sql_equal(project, again)
    drop_bench_projects(owner)
    result = {
        "items": n,
        "parquet_items_per_s": round(n / seconds["parquet"]),
        "csv_items_per_s": round(n / seconds["csv"]),
        "roundtrip_equal": equal,
    }
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
