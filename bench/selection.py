"""Selection benchmark on Postgres: one cycle with 1,000,000 scored pool items.

Times (a) the top-k selection with a threshold (budget 1000) through `selection_preview`'s query path, (b) the
preview's count + histogram, (c) the one-off score statistics computed when scoring ends. Prints `RESULT {json}` last.
Targets: select_s <= 0.5, histogram_s <= 0.1.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._django import setup_django


def timed(fn: object, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pool", type=int, default=1_000_000)
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--threshold", type=float, default=0.5)
    args = parser.parse_args()
    setup_django()
    from django.contrib.auth import get_user_model
    from django.db import connection

    from campaigns.models import Cycle, Project, Score
    from campaigns.selectors import scores_candidates, scores_count_at_least, scores_histogram
    from campaigns.services.cycles import cycle_create
    from campaigns.services.projects import project_create
    from campaigns.services.score_stats import score_stats_freeze
    from campaigns.states import CycleState

    owner, _ = get_user_model().objects.get_or_create(username="bench")
    with connection.cursor() as cur:
        for pid in Project.objects.filter(owner=owner, name="selection-bench").values_list("pk", flat=True):
            cur.execute(
                "DELETE FROM campaigns_score WHERE cycle_id IN (SELECT id FROM campaigns_cycle WHERE project_id=%s)",
                [pid],
            )
            cur.execute("DELETE FROM campaigns_item WHERE project_id=%s", [pid])
            Project.objects.filter(pk=pid).delete()
    project = project_create(
        owner=owner, name="selection-bench", task_type="text_classification", labels=["a", "b", "c"]
    )
    cycle = cycle_create(project=project, budget=args.budget, threshold=args.threshold)
    start = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO campaigns_item (project_id, key, split, state, text, media, url, metadata, source,"
            " label_source, label_error, created_at) SELECT %s, 'item-' || g, 'pool', 'active', 'text ' || g,"
            " '', '', '{}', '', '', '', now() FROM generate_series(1, %s) g",
            [project.pk, args.pool],
        )
        cur.execute(
            "INSERT INTO campaigns_score"
            " (cycle_id, item_id, uncertainty, heuristic, predicted_label, confidence, chunk)"
            " SELECT %s, id, random() * random(), 'bald', (ARRAY['a','b','c'])[1 + id %% 3], random(), id / 4096"
            " FROM campaigns_item WHERE project_id = %s",
            [cycle.pk, project.pk],
        )
        cur.execute("VACUUM ANALYZE campaigns_score")
        cur.execute("ANALYZE campaigns_item")
    load_s = time.perf_counter() - start
    sql_count_s = timed(lambda: Score.objects.filter(cycle=cycle, uncertainty__gte=args.threshold).count())
    stats_s = timed(lambda: score_stats_freeze(cycle=cycle), repeat=1)
    Cycle.objects.filter(pk=cycle.pk).update(state=CycleState.SCORED)
    cycle.refresh_from_db()

    def select() -> None:
        rows = list(
            scores_candidates(cycle=cycle, threshold=args.threshold).values_list("item_id", "uncertainty")[
                : args.budget
            ]
        )
        assert len(rows) == args.budget

    def preview_count_and_histogram() -> None:
        for t in (0.01, args.threshold, 0.9):  # the slider anywhere: low thresholds count most rows
            scores_count_at_least(cycle=cycle, threshold=t)
        scores_histogram(cycle=Cycle.objects.get(pk=cycle.pk))

    select_s = timed(select)
    histogram_s = timed(preview_count_and_histogram)
    qualifying = scores_count_at_least(cycle=cycle, threshold=args.threshold)
    print(f"loaded {args.pool} items + scores in {load_s:.1f} s; {qualifying} pass threshold {args.threshold}")
    result = {
        "pool_size": args.pool,
        "budget": args.budget,
        "qualifying": qualifying,
        "select_s": round(select_s, 4),
        "histogram_s": round(histogram_s, 4),
        "sql_count_s": round(sql_count_s, 4),
        "score_stats_once_s": round(stats_s, 3),
    }
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
