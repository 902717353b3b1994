"""Ingest benchmark: a generated N-row CSV imported into Postgres through the same service as `import_items`.

Prints `RESULT {"items": N, "seconds": s, "items_per_s": x}` last. Target: >= 20,000 items/s.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._django import setup_django


def generate_csv(path: Path, n: int, labels: list[str]) -> None:
    rng = random.Random(0)
    words = ["fast", "slow", "good", "bad", "cheap", "great", "broken", "fine", "late", "new", "old", "red"]
    with path.open("w", encoding="utf-8") as fh:
        fh.write("key,text,label,ground_truth,source\n")
        for i in range(n):
            text = " ".join(rng.choices(words, k=12))
            label = labels[i % 3] if i % 50 == 0 else ""
            fh.write(f"item-{i:08d},{text},{label},{labels[i % 3]},bench\n")


def drop_bench_projects(owner: object) -> None:
    # Django's cascade collector would load a million rows; the bench database is ours, so delete in SQL.
    from django.db import connection

    from campaigns.models import Project

    ids = list(Project.objects.filter(owner=owner, name="ingest-bench").values_list("pk", flat=True))
    if ids:
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM campaigns_item WHERE project_id = ANY(%s)", [ids])
        Project.objects.filter(pk__in=ids).delete()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="200,000 items")
    args = parser.parse_args()
    n = 200_000 if args.quick else args.items
    setup_django()
    from django.contrib.auth import get_user_model

    from campaigns.services.items import items_import
    from campaigns.services.projects import project_create

    labels = ["positive", "negative", "neutral"]
    owner, _ = get_user_model().objects.get_or_create(username="bench")
    drop_bench_projects(owner)
    project = project_create(owner=owner, name="ingest-bench", task_type="text_classification", labels=labels)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "items.csv"
        generate_csv(path, n, labels)
        size_mb = path.stat().st_size / 1e6
        start = time.perf_counter()
        result = items_import(project=project, path=path)
        seconds = time.perf_counter() - start
    assert result.created == n, result
    count = project.items.count()
    drop_bench_projects(owner)
    print(f"imported {count} items from a {size_mb:.0f} MB CSV in {seconds:.1f} s")
    print("RESULT " + json.dumps({"items": n, "seconds": round(seconds, 2), "items_per_s": round(n / seconds)}))


if __name__ == "__main__":
    main()
