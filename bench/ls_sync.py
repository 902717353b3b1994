"""Label Studio sync benchmark: alweb's idempotent sync against the raw SDK bulk import and the one-by-one loop.

Against a real local Label Studio 1.23 (started from var/ls-venv with its own data dir, var/bench-labelstudio) and
alweb's own Postgres database (bench/_django.py). N text items with predictions (`--quick`: 2000). In one run:

(a) the raw SDK bulk import of N tasks with inline predictions, one request, into a fresh LS project (the ceiling);
(b) alweb's `cycle_sync_to_labelstudio` of a cycle selecting the same N items into another fresh LS project
    (batches of ALWEB_LS_SYNC_BATCH with a token each, ids saved per batch, LS's counts checked per pass);
(c) the older tutorials' loop, one `predictions.create` per item, on a sample, counted per item;
then two more syncs of the same cycle: a plain retry, and a retry from the state a crash between LS's import and
alweb's save leaves (rows pending, no ids, batch tokens kept), for every batch at once; then the duplicate tasks
and predictions in LS, and the items without a task, counted from LS's own listing. Timings are best-of-k over
repetitions of (a) and (b), each into fresh LS projects, (a) first in even repetitions and (b) first in odd ones;
`ratio_to_raw_bulk` is the **median** over repetitions of each pair's ratio (a repetition's alweb rate over the
raw rate measured next to it), so one lucky or unlucky run moves it little. Last line: RESULT {json}; targets
ratio_to_raw_bulk >= 0.9, speedup_vs_loop >= 50, duplicates 0.

    .venv/bin/python bench/ls_sync.py --quick
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._django import ROOT, setup_django

LABELS = ["positive", "negative", "neutral"]


def make_cycle(owner: Any, n: int, tag: str) -> Any:
    """A project with n items, a model version and a cycle whose selection holds all n, scored and ranked."""
    from campaigns.models import Cycle, Item, Score
    from campaigns.services.cycles import cycle_create, cycle_transition
    from campaigns.services.projects import project_create
    from campaigns.services.selection import selection_make
    from campaigns.states import CycleState
    from models_registry.models import ModelVersion

    rng = random.Random(0)
    project = project_create(owner=owner, name=f"ls-sync-bench {tag}", task_type="text_classification", labels=LABELS)
    words = ["fast", "slow", "good", "bad", "cheap", "great", "broken", "fine", "late", "new", "old", "red"]
    Item.objects.bulk_create(
        [
            Item(project=project, key=f"item-{i:07d}", split="pool", text=" ".join(rng.choices(words, k=12)))
            for i in range(n)
        ],
        batch_size=5000,
    )
    mv = ModelVersion.objects.create(project=project, version=1, status="ready")
    cycle = cycle_create(project=project, budget=n, auto_advance=False)
    Cycle.objects.filter(pk=cycle.pk).update(model_version=mv)
    cycle_transition(cycle_id=cycle.pk, to=CycleState.SCORING)
    Score.objects.bulk_create(
        [
            Score(
                cycle=cycle,
                item_id=pk,
                uncertainty=rng.uniform(0.0, 1.1),
                heuristic="bald",
                predicted_label=LABELS[pk % 3],
                confidence=0.5,
            )
            for pk in Item.objects.filter(project=project).values_list("pk", flat=True)
        ],
        batch_size=5000,
    )
    cycle_transition(cycle_id=cycle.pk, to=CycleState.SCORED)
    selection_make(cycle=Cycle.objects.get(pk=cycle.pk))
    return Cycle.objects.select_related("project").get(pk=cycle.pk)


def raw_payloads(cycle: Any) -> list[Any]:
    """What a hand-written script would send: the same data and predictions as alweb's, in one list."""
    from campaigns.models import SelectedItem
    from integrations.labelstudio import convert

    rows = SelectedItem.objects.filter(selection__cycle=cycle).select_related("item").order_by("rank")
    return [
        {
            "data": {"text": si.item.text, "alweb_key": si.item.key, "alweb_item": si.item.pk},
            "predictions": [
                convert.prediction(
                    convert.choice_result(si.predicted_label, to_name="text"),
                    uncertainty=si.uncertainty,
                    model_version="alweb-v1",
                )
            ],
        }
        for si in rows
    ]


def lose_saved_ids(cycle: Any, client: Any, ls_project_id: int) -> None:
    """Put alweb's rows back in the state a crash right after each LS import (before alweb's save) leaves: pending,
    no task ids, each row still holding the batch token its task carries in LS."""
    from django.db import connection

    from campaigns.models import Item, SelectedItem
    from integrations.labelstudio import client as lsc

    token_of = {
        int(t["data"]["alweb_item"]): str(t["data"]["alweb_batch"])
        for t in lsc.iter_tasks(client, project_id=ls_project_id, fields="task_only", page_size=1000)
    }
    SelectedItem.objects.filter(selection__cycle=cycle).update(sync_state="pending", ls_task_id=None, synced_at=None)
    Item.objects.filter(project=cycle.project).update(ls_task_id=None)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE campaigns_selecteditem AS s SET sync_batch = v.token FROM unnest(%s::bigint[], %s::text[]) "
            "AS v(item, token) WHERE s.item_id = v.item AND s.selection_id = %s",
            [list(token_of), list(token_of.values()), cycle.selection.pk],
        )


def count_duplicates(client: Any, ls_project_id: int, n: int) -> dict[str, int]:
    from integrations.labelstudio import client as lsc

    tasks = list(lsc.iter_tasks(client, project_id=ls_project_id, fields="all", page_size=500))
    per_item = Counter(t["data"].get("alweb_item") for t in tasks)
    per_prediction = Counter((t["id"], p["model_version"]) for t in tasks for p in t.get("predictions") or [])
    return {
        "tasks": len(tasks),
        "duplicate_tasks": sum(c - 1 for c in per_item.values()),
        "duplicate_predictions": sum(c - 1 for c in per_prediction.values()),
        "items_without_task": n - len(per_item),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="N = 2000")
    parser.add_argument("--n", type=int, default=None, help="items (default 10000, --quick 2000)")
    parser.add_argument("--loop-sample", type=int, default=60, help="items timed for the one-by-one loop")
    parser.add_argument("--repeats", type=int, default=5, help="alternating repetitions of (a) and (b)")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "var" / "bench-labelstudio")
    args = parser.parse_args()
    n = args.n or (2000 if args.quick else 10_000)

    setup_django()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    from django.conf import settings
    from django.contrib.auth import get_user_model

    from campaigns.models import Project
    from devtools.labelstudio import server as lss
    from integrations.labelstudio import client as lsc
    from integrations.labelstudio import convert
    from integrations.labelstudio.connect import labelstudio_connect_project
    from integrations.labelstudio.label_config import build_label_config
    from integrations.labelstudio.sync import _batch_size as ls_sync_batch
    from integrations.labelstudio.sync import cycle_sync_to_labelstudio

    lss.ensure_venv()
    t0 = time.monotonic()
    server = lss.start(data_dir=args.data_dir, port=lss.free_port())
    print(f"Label Studio up in {time.monotonic() - t0:.1f} s at {server.url}", file=sys.stderr)
    settings.LABEL_STUDIO_URL, settings.LABEL_STUDIO_API_KEY = server.url, server.pat
    settings.ALWEB_BASE_URL = "http://127.0.0.1:9"  # webhooks registered here go nowhere
    client = lsc.make_client(server.url, server.pat)
    owner, _ = get_user_model().objects.get_or_create(username="bench")
    config = build_label_config("text_classification", LABELS)
    created_ls: list[int] = []
    try:
        raw_s, sync_s = [], []
        last_cycle = None
        for r in range(args.repeats):
            tag = f"{time.strftime('%H%M%S')}-{r}"
            cycle = make_cycle(owner, n, tag)
            payloads = raw_payloads(cycle)
            raw = lsc.create_project(client, title=f"bench raw {tag}", label_config=config)
            created_ls.append(raw.id)
            project = labelstudio_connect_project(project=cycle.project)
            created_ls.append(project.ls_project_id or 0)

            def time_raw(raw_id: int = raw.id, payloads: list[Any] = payloads) -> None:
                t = time.perf_counter()
                # The plain SDK call a hand-written script makes: one request, predictions inline.
                response = client.projects.import_tasks(
                    id=raw_id,
                    request=payloads,
                    return_task_ids=True,
                    commit_to_project=True,
                    request_options={"max_retries": 0, "timeout": 600},
                )
                raw_s.append(time.perf_counter() - t)
                assert len(response.task_ids or []) == n

            def time_sync(cycle: Any = cycle) -> None:
                t = time.perf_counter()
                result = cycle_sync_to_labelstudio(cycle=cycle)
                sync_s.append(time.perf_counter() - t)
                assert result.tasks_created == n, result

            # Which goes first alternates: Label Studio may still be settling the previous import (its database,
            # its caches) when the next one starts, and that must not always fall on the same side.
            for timed in (time_raw, time_sync) if r % 2 == 0 else (time_sync, time_raw):
                timed()
            first = "raw" if r % 2 == 0 else "alweb"
            print(f"repeat {r} ({first} first): raw {raw_s[-1]:.2f} s, alweb {sync_s[-1]:.2f} s", file=sys.stderr)
            last_cycle, last_raw = cycle, raw.id

        # (c) one predictions.create per item, on tasks of the last raw project
        task_ids = [
            int(t["id"]) for t in lsc.iter_tasks(client, project_id=last_raw, fields="task_only", page_size=500)
        ]
        sample = task_ids[: args.loop_sample]
        t = time.perf_counter()
        for task_id in sample:
            client.predictions.create(
                task=task_id, result=convert.choice_result("positive", to_name="text"), score=0.5, model_version="loop"
            )
        loop_s = time.perf_counter() - t

        # Two more syncs of the same cycle: a plain retry, then one after alweb lost every saved id.
        assert last_cycle is not None
        t = time.perf_counter()
        again = cycle_sync_to_labelstudio(cycle=last_cycle)
        retry_plain_s = time.perf_counter() - t
        ls_project_id = Project.objects.get(pk=last_cycle.project_id).ls_project_id or 0
        lose_saved_ids(last_cycle, client, ls_project_id)
        t = time.perf_counter()
        recovered = cycle_sync_to_labelstudio(cycle=last_cycle)
        retry_recover_s = time.perf_counter() - t
        dups = count_duplicates(client, ls_project_id, n)
    finally:
        for pid in created_ls:  # keep the bench's LS data dir small between runs
            try:
                lsc._request(client, "DELETE", f"api/projects/{pid}/")
            except Exception as exc:  # cleanup only
                print(f"could not delete LS project {pid}: {exc}", file=sys.stderr)
        server.stop()

    rate_a, rate_b, rate_c = n / statistics.median(raw_s), n / statistics.median(sync_s), len(sample) / loop_s
    ratios = [a / b for a, b in zip(raw_s, sync_s, strict=True)]  # per repetition: alweb's rate / raw rate
    out = {
        "ratio_to_raw_bulk": round(statistics.median(ratios), 3),
        "ratio_to_raw_bulk_runs": [round(r, 3) for r in ratios],
        "ratio_of_best_runs": round(min(raw_s) / min(sync_s), 3),
        "speedup_vs_loop": round(rate_b / rate_c, 1),
        "duplicates_after_retry": dups["duplicate_tasks"] + dups["duplicate_predictions"] + dups["items_without_task"],
        "n": n,
        "raw_bulk_items_per_s": round(rate_a, 1),
        "alweb_sync_items_per_s": round(rate_b, 1),
        "loop_items_per_s": round(rate_c, 2),
        "loop_sample": len(sample),
        "raw_s": [round(s, 3) for s in raw_s],
        "sync_s": [round(s, 3) for s in sync_s],
        "retry_plain_s": round(retry_plain_s, 3),
        "retry_plain_created": again.tasks_created,
        "retry_after_lost_ids_s": round(retry_recover_s, 3),
        "retry_after_lost_ids_found": recovered.already_there,
        "retry_after_lost_ids_created": recovered.tasks_created,
        "ls_tasks": dups["tasks"],
        "batch": ls_sync_batch(),
    }
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    main()
