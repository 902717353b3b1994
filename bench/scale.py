"""Scoring one cycle on 1 and then 2 real Celery worker processes: the fan-out's speedup, rate and memory (issue 20).

Against the real stack: Postgres (a database of its own, bench/_django.py), Redis (a key prefix of its own), real
`celery worker` processes (`--pool solo`, one process each, the scoring queue), MLflow on a sqlite store under a
temporary folder. The pool is text items with **cached features**: each item's 384-float MiniLM-sized vector is
already stored (ItemEmbedding), as after a project's first cycle, so the figure is the scoring fan-out's (read the
chunk's features, MC dropout over the text head, write scores and embeddings) and not the sentence encoder's, which
runs once per item per project. The vectors are synthetic (one Gaussian cluster per label, seeded): the encoder
costs ~5 ms an item on these cores, two hours for a million. The head is trained by alweb's own training step on
300 labeled items plus the evaluation splits.

Stages: import (bulk rows), training (in this process), scoring on 1 worker process, then the same cycle reset and
scored again on 2, each twice: cold (fresh workers, each loads the model on its first chunk) and warm (the model
already in each worker's cache: a running cluster, and the steady state of a large pool, where one load per worker
is spread over hundreds of chunks); `workers_speedup` is the warm ratio, `workers_speedup_cold` the other. Then the
selection of the budget with the project's default strategy (margin top-k, chosen by bench/learning.py), and, timed
beside it, with the diversity strategy (`diverse`) the issue names; then the rest of the cycle against a real Label
Studio started from var/ls-venv: the selection synced (tasks with predictions), answered by the oracle annotator
(one annotation per task, as people would: ground truth from the synthetic clusters) and pulled back into alweb.
Each worker's peak resident memory is sampled (psutil) while it scores. At a million items the cold pass is left
out by default (`--cold`): one model load per worker is nothing against 500 chunks, and each pass is long.

    .venv/bin/python bench/scale.py --quick     # 20,000 pool items: a few minutes
    .venv/bin/python bench/scale.py             # 1,000,000 pool items (a long run: not on a shared machine)

Last line: RESULT {"pool_size", "workers_speedup", "score_items_per_s", "select_s", ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("ALWEB_BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/alweb_bench_scale")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._django import BENCH_DB, ROOT

LABELS = ["alpha", "beta", "gamma", "delta"]
DIM = 384
LABELED = 300


def configure(tmp: Path, broker: str, prefix: str, chunk_ids: int) -> dict[str, str]:
    """One environment for this process and the workers: same database, broker keys, MLflow store and media."""
    env = {
        "DJANGO_SETTINGS_MODULE": "alweb.settings.local",
        "DATABASE_URL": BENCH_DB,
        "CELERY_BROKER_URL": broker,
        "CELERY_KEY_PREFIX": prefix,
        "ALWEB_VAR_DIR": str(tmp / "var"),
        "ALWEB_MEDIA_ROOT": str(tmp / "media"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}",
        "MLFLOW_ARTIFACT_ROOT": str(tmp / "mlartifacts"),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "ALWEB_SCORING_CHUNK_IDS": str(chunk_ids),
        "ALWEB_LOG_LEVEL": "WARNING",
        "HF_HUB_OFFLINE": "1",
        # One thread per process: two processes on two cores, not two processes fighting over four threads.
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    os.environ.update(env)
    return {**os.environ, **env}


def make_pool(n: int, seed: int) -> Any:
    """A text project: n pool items plus 10% validation and 10% test, every item with its cached features; the
    first LABELED pool items and the evaluation splits labeled (what annotators would have answered)."""
    from django.contrib.auth.models import User

    from campaigns.models import Item, ItemEmbedding
    from campaigns.services.features import TEXT_ENCODER
    from campaigns.services.projects import project_create

    rng = np.random.default_rng(seed)
    owner, _ = User.objects.get_or_create(username="bench-scale")
    project = project_create(
        owner=owner,
        name=f"scale bench {uuid.uuid4().hex[:6]}",
        task_type="text_classification",
        labels=LABELS,
        model_config={"epochs": 10},
    )
    centers = rng.normal(size=(len(LABELS), DIM)).astype(np.float32)
    n_eval = max(200, n // 10)
    splits = ["valid"] * n_eval + ["test"] * n_eval + ["pool"] * n
    step = 20_000
    for lo in range(0, len(splits), step):
        part = splits[lo : lo + step]
        truth = rng.integers(0, len(LABELS), size=len(part))
        items = Item.objects.bulk_create(
            [
                Item(
                    project=project,
                    key=f"t{lo + i:08d}",
                    split=split,
                    text=f"synthetic item {lo + i}",
                    ground_truth=LABELS[int(t)],
                    label=LABELS[int(t)] if split != "pool" or lo + i - 2 * n_eval < LABELED else None,
                    label_source="annotation" if split != "pool" or lo + i - 2 * n_eval < LABELED else "",
                )
                for i, (split, t) in enumerate(zip(part, truth, strict=True))
            ],
            batch_size=5000,
        )
        vectors = centers[truth] + rng.normal(scale=1.6, size=(len(part), DIM)).astype(np.float32)
        ItemEmbedding.objects.bulk_create(
            [
                ItemEmbedding(item=item, encoder=TEXT_ENCODER, vector=v.astype(np.float32).tobytes())
                for item, v in zip(items, vectors, strict=True)
            ],
            batch_size=5000,
        )
    return project


def start_workers(count: int, env: dict[str, str], tmp: Path) -> list[subprocess.Popen[bytes]]:
    """`count` worker processes on a scoring queue of their own (`bench<count>`, through ALWEB_QUEUE_SCORING, as a
    deployment would send scoring to GPU hosts): both sets start at once, while the pool is imported and the model
    trained, and the idle set takes nothing of the other's cycle."""
    procs = []
    queue = f"bench{count}"
    for k in range(count):
        log = (tmp / f"worker-{count}-{k}.log").open("ab")
        procs.append(
            subprocess.Popen(
                [
                    *(sys.executable, "-m", "celery", "-A", "alweb", "worker", "-Q", queue, "--pool", "solo"),
                    *("--hostname", f"bench{count}-{k}@%h", "--loglevel", "INFO"),
                    *("--without-heartbeat", "--without-gossip", "--without-mingle"),
                ],
                cwd=ROOT,
                env={**env, "ALWEB_QUEUE_SCORING": queue},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    return procs


def wait_ready(procs: list[subprocess.Popen[bytes]], count: int, tmp: Path) -> None:
    logs = [tmp / f"worker-{count}-{k}.log" for k in range(count)]
    deadline = time.monotonic() + 300
    while not all(" ready." in log.read_text(errors="replace") for log in logs):
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            raise SystemExit(f"workers did not start: see {tmp}")
        time.sleep(0.5)


def stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()


class PeakMemory(threading.Thread):
    """Samples each process's resident memory (with its children) until stopped; keeps the peak of each."""

    def __init__(self, pids: list[int]) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.peak = dict.fromkeys(pids, 0)
        self.stop = threading.Event()

    def run(self) -> None:
        import psutil

        while not self.stop.is_set():
            for pid in self.pids:
                try:
                    proc = psutil.Process(pid)
                    rss = proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))
                except psutil.Error:
                    continue
                self.peak[pid] = max(self.peak[pid], rss)
            time.sleep(0.2)


def cpu_seconds(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def reset_scoring(cycle_id: int) -> None:
    """The same cycle, unscored again: its scores, plan, chunks and frozen statistics gone, back in `scoring` with
    the same model version (after training it is already in `scoring`: nothing to remove)."""
    from campaigns.models import Cycle, Score, ScoringChunk, ScoringPlan
    from campaigns.states import CycleState

    Score.objects.filter(cycle_id=cycle_id).delete()
    ScoringChunk.objects.filter(cycle_id=cycle_id).delete()
    ScoringPlan.objects.filter(cycle_id=cycle_id).delete()
    Cycle.objects.filter(pk=cycle_id).update(state=CycleState.SCORING, score_stats={}, progress={})
    settle_tables()


def settle_tables() -> None:
    """VACUUM ANALYZE the tables a pass reads and writes, before it is timed. A pass deletes the last one's million
    score rows (and the import wrote 1.2 M items and vectors): left alone, autovacuum cleans them up *during* the
    next pass, on the same two cores, and which pass it lands in decided a 1-vs-2-worker comparison (measured: one
    run's 2-worker passes took 143 s and 83 s)."""
    from django.db import connection

    from campaigns.models import Item, ItemEmbedding, Score, ScoringChunk

    with connection.cursor() as cursor:
        for model in (Score, ScoringChunk, Item, ItemEmbedding):
            cursor.execute(f"VACUUM ANALYZE {model._meta.db_table}")


def timed_scoring(cycle_id: int, timeout: float, what: str, on: str) -> float:
    """Send the cycle's scoring task and wait for `scored`: the stage as a user sees it, plan to frozen stats. The
    end is the plan's completion time written by the completing worker (same host clock), not when this loop next
    looks: a poll's granularity would be a tenth of a 2-second pass."""
    from campaigns.models import Cycle, ScoringPlan
    from campaigns.services import queue
    from campaigns.states import CycleState

    started, wall = time.monotonic(), time.time()
    queue.registered_task(queue.CYCLE_SCORE).apply_async(kwargs={"cycle_id": cycle_id}, queue=on)
    while True:
        state = Cycle.objects.filter(pk=cycle_id).values_list("state", flat=True).get()
        if state == CycleState.SCORED:
            done = ScoringPlan.objects.filter(cycle_id=cycle_id).values_list("completed_at", flat=True).get()
            return done.timestamp() - wall if done is not None else time.monotonic() - started
        if state == CycleState.FAILED or time.monotonic() - started > timeout:
            reason = Cycle.objects.get(pk=cycle_id).failure_reason
            raise SystemExit(f"scoring with {what} did not finish: {state} {reason}")
        time.sleep(0.2)


def score_with(
    procs: list[subprocess.Popen[bytes]], cycle_id: int, tmp: Path, timeout: float, *, cold_pass: bool = True
) -> dict[str, Any]:
    """Score the cycle twice on these worker processes: cold (each loads the model on its first chunk) and warm (the
    model already in each worker's cache, as in a cluster that has been running)."""
    from campaigns.models import ScoringChunk

    workers = len(procs)
    on = f"bench{workers}"
    wait_ready(procs, workers, tmp)  # a worker's start-up (imports) is not scoring
    sampler = PeakMemory([p.pid for p in procs])
    sampler.start()
    cold = None
    if cold_pass:
        reset_scoring(cycle_id)
        cold = timed_scoring(cycle_id, timeout, f"{workers} cold worker(s)", on)
    reset_scoring(cycle_id)
    cpu_before = [cpu_seconds(p.pid) for p in procs]
    warm = timed_scoring(cycle_id, timeout, f"{workers} warm worker(s)", on)
    cpu = [round(cpu_seconds(p.pid) - b, 2) for p, b in zip(procs, cpu_before, strict=True)]
    sampler.stop.set()
    sampler.join()
    chunks = ScoringChunk.objects.filter(cycle_id=cycle_id, chunk__gte=0)
    per_worker: dict[str, int] = {}
    for w in chunks.values_list("worker", flat=True):
        per_worker[w] = per_worker.get(w, 0) + 1
    chunk_s = sorted(s for s in chunks.values_list("seconds", flat=True) if s is not None)
    return {
        "cold_s": round(cold, 2) if cold is not None else None,
        "warm_s": round(warm, 2),
        "peak_rss_mb": [round(sampler.peak[p.pid] / 2**20, 1) for p in procs],
        # CPU seconds each worker spent on the warm run: their sum against one worker's says whether two workers do
        # the same work (no chunk twice, nothing serial) even when the host has no core to spare.
        "cpu_s": cpu,
        "chunks_per_worker": sorted(per_worker.values()),
        "chunk_s_median": round(float(np.median(chunk_s)), 3) if chunk_s else None,
    }


def time_diverse_selection(cycle_id: int, budget: int) -> float:
    """The diversity strategy's pick over the scored pool, timed and not kept (the cycle selects with its default
    next): what a person waits for when they choose it."""
    from campaigns.models import Cycle
    from campaigns.services.params import SelectionParams
    from campaigns.services.selection import selection_preview

    cycle = Cycle.objects.select_related("project", "model_version").get(pk=cycle_id)
    params = SelectionParams.for_cycle(cycle, budget=budget, strategy="diverse")
    t = time.monotonic()
    preview = selection_preview(cycle=cycle, params=params)
    seconds = time.monotonic() - t
    print(f"diverse selection of {preview['would_select']} items in {seconds:.2f} s", flush=True)
    return seconds


def label_selection(cycle_id: int, tmp: Path) -> dict[str, Any]:
    """The selection through a real Label Studio: synced, answered by the oracle, pulled back; seconds of each."""
    from django.conf import settings

    from campaigns.models import Cycle, Item, Project
    from devtools.labelstudio import server as lss
    from integrations.labelstudio.oracle import oracle_annotate
    from integrations.labelstudio.pull import project_pull_annotations
    from integrations.labelstudio.sync import cycle_sync_to_labelstudio

    lss.ensure_venv()
    server = lss.start(data_dir=tmp / "labelstudio", port=lss.free_port())
    out: dict[str, Any] = {}
    try:
        settings.LABEL_STUDIO_URL, settings.LABEL_STUDIO_API_KEY = server.url, server.pat
        settings.ALWEB_BASE_URL = "http://127.0.0.1:9"  # webhooks registered here go nowhere: the pull brings labels
        cycle = Cycle.objects.select_related("project").get(pk=cycle_id)
        t = time.monotonic()
        synced = cycle_sync_to_labelstudio(cycle=cycle)
        out["sync_s"] = round(time.monotonic() - t, 2)
        t = time.monotonic()
        out["annotated"] = oracle_annotate(cycle=cycle)
        out["annotate_s"] = round(time.monotonic() - t, 2)
        before = Item.objects.filter(project_id=cycle.project_id, label__isnull=False).count()
        t = time.monotonic()
        project_pull_annotations(project=Project.objects.get(pk=cycle.project_id))  # as the sync left it
        out["pull_s"] = round(time.monotonic() - t, 2)
        out["labels_pulled"] = Item.objects.filter(project_id=cycle.project_id, label__isnull=False).count() - before
        out["tasks_synced"] = synced.tasks_created
    finally:
        server.stop()
    print(f"Label Studio: {out}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 pool items instead of 1,000,000")
    parser.add_argument("--pool", type=int, default=None, help="pool size (overrides --quick)")
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--mc-iterations", type=int, default=20)
    parser.add_argument("--chunk-ids", type=int, default=None, help="ALWEB_SCORING_CHUNK_IDS (default 1024 / 2048)")
    parser.add_argument("--broker", default=os.environ.get("ALWEB_BENCH_BROKER_URL", "redis://127.0.0.1:6379/6"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cold", action=argparse.BooleanOptionalAction, default=None, help="also a cold pass each")
    parser.add_argument("--ls", action=argparse.BooleanOptionalAction, default=True, help="sync, annotate, pull")
    args = parser.parse_args()
    n = args.pool or (20_000 if args.quick else 1_000_000)
    chunk_ids = args.chunk_ids or (1024 if args.quick else 2048)
    tmp = Path(tempfile.mkdtemp(prefix="alweb-scale-"))
    env = configure(tmp, args.broker, f"alweb-bench-{uuid.uuid4().hex[:8]}:", chunk_ids)
    from bench._django import setup_django

    setup_django()
    stages: dict[str, float] = {}
    one_set, two_set = start_workers(1, env, tmp), start_workers(2, env, tmp)
    try:
        result = run(args, n, chunk_ids, tmp, stages, one_set, two_set)
    finally:
        stop_workers(one_set + two_set)  # again: a no-op unless the run stopped early
    print("RESULT " + json.dumps(result), flush=True)


def run(
    args: argparse.Namespace,
    n: int,
    chunk_ids: int,
    tmp: Path,
    stages: dict[str, float],
    one_set: list[subprocess.Popen[bytes]],
    two_set: list[subprocess.Popen[bytes]],
) -> dict[str, Any]:
    from campaigns.models import Cycle
    from campaigns.services.cycles import cycle_create
    from campaigns.services.pipeline import cycle_run_training
    from campaigns.services.selection import selection_make

    t = time.monotonic()
    project = make_pool(n, args.seed)
    stages["import_s"] = round(time.monotonic() - t, 2)
    cycle = cycle_create(project=project, budget=args.budget, mc_iterations=args.mc_iterations, auto_advance=False)
    t = time.monotonic()
    cycle_run_training(cycle_id=cycle.pk, chain=False)
    stages["train_s"] = round(time.monotonic() - t, 2)
    timeout = max(600.0, n / 20)
    cold_pass = args.cold if args.cold is not None else n <= 100_000
    one = score_with(one_set, cycle.pk, tmp, timeout, cold_pass=cold_pass)
    print(f"1 worker: {one}", flush=True)
    two = score_with(two_set, cycle.pk, tmp, timeout, cold_pass=cold_pass)
    print(f"2 workers: {two}", flush=True)
    stop_workers(one_set + two_set)  # the rest of the cycle runs here, on a host without idle workers
    select_diverse_s = time_diverse_selection(cycle.pk, args.budget)
    t = time.monotonic()
    selection = selection_make(cycle=Cycle.objects.select_related("project", "model_version").get(pk=cycle.pk))
    select_s = time.monotonic() - t
    labeling = label_selection(cycle.pk, tmp) if args.ls else {}
    # The oracle's time stands for people's and is not alweb's: left out of the cycle's own time.
    ls_s = sum(v for k, v in labeling.items() if k in ("sync_s", "pull_s"))
    after_import = stages["train_s"] + two["warm_s"] + select_s + ls_s
    result = {
        "pool_size": n,
        # Warm workers (each holds the model already): the steady state of a running cluster, and of a large pool,
        # where one model load per worker is spread over hundreds of chunks.
        "workers_speedup": round(one["warm_s"] / two["warm_s"], 3),
        "workers_speedup_cold": round(one["cold_s"] / two["cold_s"], 3) if cold_pass else None,
        "score_items_per_s": round(n / two["warm_s"], 1),
        "score_items_per_s_1_worker": round(n / one["warm_s"], 1),
        "score_s_1_worker": one["warm_s"],
        "score_s_2_workers": two["warm_s"],
        "score_s_1_worker_cold": one["cold_s"],
        "cold_pass": cold_pass,
        "score_s_2_workers_cold": two["cold_s"],
        "select_s": round(select_s, 3),
        "select_diverse_s": round(select_diverse_s, 3),
        **labeling,
        # Train, score on 2 workers, select, sync and pull (the oracle's answering stands in for people: not in it).
        "cycle_after_import_s": round(after_import, 1),
        "selected": selection.size,
        "strategy": cycle.strategy,
        "peak_rss_mb_1_worker": one["peak_rss_mb"],
        "peak_rss_mb_2_workers": two["peak_rss_mb"],
        "chunks_per_worker_2_workers": two["chunks_per_worker"],
        "worker_cpu_s_1_worker": one["cpu_s"],
        "worker_cpu_s_2_workers": two["cpu_s"],
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "chunk_s_median": two["chunk_s_median"],
        "chunk_ids": chunk_ids,
        "mc_iterations": args.mc_iterations,
        **stages,
    }
    return result


if __name__ == "__main__":
    main()
