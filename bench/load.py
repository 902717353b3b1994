"""Load benchmark: N concurrent users on the real app under gunicorn while a cycle's scores are written (issue 20).

What runs (loopback only, bounded in users and time):
- **gunicorn** serving `alweb.wsgi` with the production settings (DEBUG off, sessions and tokens, the shared Redis
  cache for throttles and lockouts), as the compose file's `web` service starts it (`--workers 3`), against
  Postgres (a database of its own, `alweb_load`) and Redis;
- a seeded **large project**: a pool of 1,000,000 unlabeled text items (`--quick`: 100,000) written in bulk by
  `INSERT … SELECT`, three closed cycles with their model versions, selections and labels, and an open cycle
  **scored** over the whole pool (one score per item, frozen statistics as when scoring ends), which the slider
  previews; every account is a member, and each owns a few small projects of its own so the project list has rows;
- a **scoring** project whose open cycle is in `scoring` while a writer process stands in for the scoring workers'
  database traffic: it inserts each chunk's scores (2,048 items, the default chunk) and records progress through
  `cycle_progress`, at `--writer-rate` items/s (the text head's rate on one 2-core worker). No model runs: the
  cores are the web's. The progress poll reads this cycle, as the page polls a cycle while it scores;
- **locust** (`bench/locustfile.py`), headless, in its own process: dashboard users (a session cookie) open the
  project list, a project page and the cycle page, move the threshold slider (the cycle preview the slider calls)
  and poll the cycle's progress (the status partial the page polls every 2 s); API users (a token) list projects,
  read a cycle and page through items.

Reported per endpoint: requests, p50/p95/p99 latency (ms), errors (any status but the expected one) and server
errors (5xx, counted in gunicorn's own access log too). Before the load, each endpoint is requested once in this
process with Django's test client under `CaptureQueriesContext`: its query count and SQL time, to find N+1s.

    .venv/bin/python bench/load.py --quick   # 100,000 pool items, 20 users, 60 s: a few minutes
    .venv/bin/python bench/load.py           # 1,000,000 pool items, 50 users, 180 s

Last line: RESULT {"users", "errors", "server_errors", "preview_p95_ms", "progress_p95_ms", ...}.
Targets: 0 server errors, preview p95 < 300 ms, progress poll p95 < 100 ms.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

os.environ.setdefault("ALWEB_BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/alweb_load")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._django import BENCH_DB, ROOT, setup_django

LABELS = ["billing", "shipping", "quality", "support"]
CHUNK = 2048
HISTORY_CYCLES = 3
SELECTED_PER_CYCLE = 200
SMALL_PROJECTS = 4
SMALL_ITEMS = 2000
# Labeled items beside the pool: training labels, and the evaluation splits people labeled.
LABELED_SPLITS = (("train", 400, True), ("valid", 200, True), ("test", 400, True))
# Endpoint names as locust reports them (bench/locustfile.py), and which of them the targets are about.
PREVIEW = "dashboard: cycle preview (slider)"
PROGRESS = "dashboard: cycle progress poll"


def configure(tmp: Path, redis_url: str) -> dict[str, str]:
    """One environment for this process (seeding, query profile, writer) and gunicorn: the production settings
    with HTTPS off (loopback, no proxy), the same secret key (the seeded sessions are signed with it)."""
    env = {
        "DJANGO_SETTINGS_MODULE": "alweb.settings.production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(48),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,testserver",
        "DJANGO_SSL_REDIRECT": "false",
        "DJANGO_SECURE_COOKIES": "false",
        "DJANGO_HSTS_SECONDS": "0",
        "DATABASE_URL": BENCH_DB,
        "CELERY_BROKER_URL": redis_url,
        "ALWEB_CACHE_URL": redis_url,
        "CELERY_KEY_PREFIX": "alweb-load-",
        "ALWEB_VAR_DIR": str(tmp / "var"),
        "ALWEB_MEDIA_ROOT": str(tmp / "media"),
        "ALWEB_LOG_LEVEL": "WARNING",
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    (tmp / "var" / "staticfiles").mkdir(parents=True)  # whitenoise warns without it; no static file is requested
    os.environ.update(env)
    return env


def _items_sql(project_id: int, n: int, split: str, labeled: bool, prefix: str) -> tuple[str, list[Any]]:
    label = "to_jsonb((ARRAY['billing','shipping','quality','support'])[1 + g %% 4])" if labeled else "NULL"
    source = "'import'" if labeled else "''"
    return (
        "INSERT INTO campaigns_item (project_id, key, split, state, text, media, url, metadata, source, label,"
        f" label_source, label_error, created_at) SELECT %s, %s || g, %s, 'active', 'a short review number ' || g,"
        f" '', '', '{{}}', '', {label}, {source}, '', now() FROM generate_series(1, %s) g",
        [project_id, prefix, split, n],
    )


def _history(project: Any, cycles: int, per_cycle: int) -> Any:
    """Closed cycles, each with its model version (metrics as training writes them), a selection of `per_cycle`
    pool items and their labels; returns the newest model version."""
    from django.db import connection

    from campaigns.models import Cycle, Selection
    from campaigns.states import CycleState
    from models_registry.models import ModelStatus, ModelVersion

    mv = None
    for number in range(1, cycles + 1):
        acc = 0.6 + 0.08 * number
        mv = ModelVersion.objects.create(
            project=project,
            version=number,
            status=ModelStatus.READY,
            architecture="text-mlp",
            is_champion=number == cycles,
            label_count=400 + per_cycle * (number - 1),
            metrics={
                "accuracy": acc,
                "macro_f1": acc - 0.02,
                "accuracy_ci": [acc - 0.03, acc + 0.03],
                "macro_f1_ci": [acc - 0.05, acc + 0.01],
                "labels": {"valid": 200, "test": 400},
                "per_class": {label: {"precision": acc, "recall": acc, "f1": acc, "support": 100} for label in LABELS},
            },
        )
        cycle = Cycle.objects.create(
            project=project, number=number, state=CycleState.CLOSED, model_version=mv, budget=per_cycle
        )
        selection = Selection.objects.create(
            cycle=cycle, model_version=mv, strategy="topk", params={"budget": per_cycle}, size=per_cycle
        )
        with connection.cursor() as cur:
            cur.execute(
                "WITH picked AS (SELECT id, row_number() OVER (ORDER BY id) AS r FROM campaigns_item"
                " WHERE project_id = %s AND split = 'pool' AND label IS NULL ORDER BY id LIMIT %s),"
                " ins AS (INSERT INTO campaigns_selecteditem (selection_id, item_id, rank, uncertainty,"
                " predicted_label, confidence, purpose, sync_state, sync_batch, ls_task_id, sync_error)"
                " SELECT %s, id, r, 1.0 / r, 'billing', 0.5, 'training', 'synced', '', 100000 * %s + r, ''"
                " FROM picked RETURNING item_id)"
                " UPDATE campaigns_item SET label = to_jsonb('support'::text), label_source = 'annotation'"
                " WHERE id IN (SELECT item_id FROM ins)",
                [project.pk, per_cycle, selection.pk, number],
            )
    return mv


def seed(*, pool: int, scoring_pool: int, accounts: int) -> dict[str, Any]:
    """Every row the load reads, written in bulk; returns what locust needs (ids, session cookies, tokens)."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.sessions.backends.db import SessionStore
    from django.db import connection
    from rest_framework.authtoken.models import Token

    from campaigns.models import Cycle
    from campaigns.services.cycles import cycle_create, cycle_progress
    from campaigns.services.projects import project_add_member, project_create
    from campaigns.services.score_stats import score_stats_freeze
    from campaigns.states import CycleState

    with connection.cursor() as cur:  # the benchmark's own database: start from no rows at all
        # ItemCount has no foreign key (its triggers write it while items are deleted): truncated by name.
        cur.execute(
            "TRUNCATE campaigns_project, campaigns_itemcount, auth_user, django_session RESTART IDENTITY CASCADE"
        )
    User = get_user_model()
    users = [User.objects.create_user(username=f"load-{i:02d}", password=None) for i in range(accounts)]
    sessions, tokens = [], []
    for user in users:
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        sessions.append(session.session_key)
        tokens.append(Token.objects.create(user=user).key)

    owner = users[0]
    big = project_create(owner=owner, name="load: million pool", task_type="text_classification", labels=LABELS)
    for user in users[1:]:
        project_add_member(project=big, user=user)
    start = time.perf_counter()
    with connection.cursor() as cur:
        for split, n, labeled in (("pool", pool, False), *LABELED_SPLITS):
            cur.execute(*_items_sql(big.pk, n, split, labeled, f"{split}-"))
    model_version = _history(big, HISTORY_CYCLES, SELECTED_PER_CYCLE)
    cycle = cycle_create(project=big, budget=1000, threshold=None, auto_advance=False)
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO campaigns_score (cycle_id, item_id, uncertainty, heuristic, predicted_label, confidence,"
            " chunk) SELECT %s, id, random() * random(), 'margin', (ARRAY['billing','shipping','quality','support'])"
            "[1 + id %% 4], random(), id / %s FROM campaigns_item"
            " WHERE project_id = %s AND split = 'pool' AND label IS NULL",
            [cycle.pk, CHUNK, big.pk],
        )
    score_stats_freeze(cycle=cycle)
    scored_total = int(cycle.score_stats["count"])
    Cycle.objects.filter(pk=cycle.pk).update(state=CycleState.SCORED, model_version=model_version)
    cycle_progress(cycle_id=cycle.pk, stage=CycleState.SCORING, done=scored_total, total=scored_total)

    scoring = project_create(owner=owner, name="load: scoring now", task_type="text_classification", labels=LABELS)
    for user in users[1:]:
        project_add_member(project=scoring, user=user)
    with connection.cursor() as cur:
        cur.execute(*_items_sql(scoring.pk, scoring_pool, "pool", False, "pool-"))
        cur.execute(*_items_sql(scoring.pk, 400, "train", True, "train-"))
    scoring_mv = _history(scoring, 1, SELECTED_PER_CYCLE)
    scoring_cycle = cycle_create(project=scoring, budget=1000, threshold=None, auto_advance=False)
    Cycle.objects.filter(pk=scoring_cycle.pk).update(state=CycleState.SCORING, model_version=scoring_mv)
    cycle_progress(cycle_id=scoring_cycle.pk, stage=CycleState.SCORING, done=0, total=scoring_pool)

    for user in users:
        for k in range(SMALL_PROJECTS):
            small = project_create(owner=user, name=f"small {k}", task_type="text_classification", labels=LABELS)
            with connection.cursor() as cur:
                cur.execute(*_items_sql(small.pk, SMALL_ITEMS, "pool", False, "pool-"))
                cur.execute(*_items_sql(small.pk, 200, "train", True, "train-"))
            _history(small, 2, 20)
    with connection.cursor() as cur:  # as autovacuum leaves a table some time after a bulk insert
        cur.execute("VACUUM ANALYZE campaigns_item")
        cur.execute("VACUUM ANALYZE campaigns_score")
        cur.execute("ANALYZE")
    seed_s = time.perf_counter() - start
    print(f"seeded {pool:,} + {scoring_pool:,} pool items and {scored_total:,} scores in {seed_s:.1f} s")
    return {
        "project": big.pk,
        "cycle_id": cycle.pk,
        "cycle_number": cycle.number,
        "score_min": cycle.score_stats["min"],
        "score_max": cycle.score_stats["max"],
        "scoring_project": scoring.pk,
        "scoring_cycle_id": scoring_cycle.pk,
        "scoring_cycle_number": scoring_cycle.number,
        "sessions": sessions,
        "tokens": tokens,
    }


def profile_queries(plan: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Each endpoint once, in this process, with its queries captured: how many and how long in SQL."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    browser = Client(HTTP_HOST="127.0.0.1")
    browser.cookies["sessionid"] = plan["sessions"][0]
    api = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Token {plan['tokens'][0]}")
    mid = (plan["score_min"] + plan["score_max"]) / 2
    p, n, s = plan["project"], plan["cycle_number"], plan["scoring_project"]
    calls = {
        "dashboard: project list": (browser, "/"),
        "dashboard: project page": (browser, f"/projects/{p}/"),
        "dashboard: cycle page": (browser, f"/projects/{p}/cycles/{n}/"),
        PREVIEW: (browser, f"/projects/{p}/cycles/{n}/preview/?threshold={mid}&budget=1000&strategy=topk"),
        PROGRESS: (browser, f"/projects/{s}/cycles/{plan['scoring_cycle_number']}/status/?seen=scoring"),
        "api: project list": (api, "/api/projects/"),
        "api: cycle detail": (api, f"/api/projects/{p}/cycles/{plan['cycle_id']}/"),
        "api: items page": (api, f"/api/projects/{p}/items/?limit=50&offset=1000"),
    }
    report = {}
    for name, (client, url) in calls.items():
        client.get(url)  # warm: per-process caches (the sorted scores) are filled by the first request
        with CaptureQueriesContext(connection) as ctx:
            start = time.perf_counter()
            response = client.get(url)
            wall = time.perf_counter() - start
        if response.status_code != 200:
            raise SystemExit(f"{name}: {url} answered {response.status_code}")
        sql_s = sum(float(q["time"]) for q in ctx.captured_queries)
        report[name] = {"queries": len(ctx.captured_queries), "sql_ms": round(1000 * sql_s, 1)}
        print(f"  {name:40s} {len(ctx.captured_queries):3d} queries, {1000 * sql_s:7.1f} ms SQL, {1000 * wall:7.1f} ms")
    return report


def writer(plan: dict[str, Any], total: int, rate: float, stop_file: Path) -> None:
    """Stands in for the scoring workers' database traffic: a chunk of scores inserted, then progress recorded,
    paced at `rate` items/s, until the pool is done or the load ends."""
    from django.db import connection

    from campaigns.services.cycles import cycle_progress
    from campaigns.states import CycleState

    cycle_id, pid = plan["scoring_cycle_id"], plan["scoring_project"]
    with connection.cursor() as cur:
        cur.execute("SELECT min(id), max(id) FROM campaigns_item WHERE project_id = %s AND split = 'pool'", [pid])
        lo, hi = cur.fetchone()
    started, done = time.monotonic(), 0
    for chunk, first in enumerate(range(lo, hi + 1, CHUNK)):
        if stop_file.exists():
            break
        with connection.cursor() as cur:
            cur.execute(
                "INSERT INTO campaigns_score (cycle_id, item_id, uncertainty, heuristic, predicted_label,"
                " confidence, chunk) SELECT %s, id, random() * random(), 'margin', 'billing', random(), %s"
                " FROM campaigns_item WHERE project_id = %s AND split = 'pool' AND id >= %s AND id < %s",
                [cycle_id, chunk, pid, first, first + CHUNK],
            )
            done += cur.rowcount
        cycle_progress(cycle_id=cycle_id, stage=CycleState.SCORING, done=done, total=total, started=started)
        ahead = started + done / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gunicorn exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/accounts/login/", timeout=60) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise SystemExit(f"gunicorn did not answer at {url} within {timeout} s")


def warm_up(url: str, plan: dict[str, Any], workers: int) -> None:
    """Each worker's first requests import the views (and what they import): a few rounds of every dashboard page,
    concurrently so every worker gets some, before the clock starts."""
    from concurrent.futures import ThreadPoolExecutor

    p, n = plan["project"], plan["cycle_number"]
    paths = ["/", f"/projects/{p}/", f"/projects/{p}/cycles/{n}/", f"/api/projects/{p}/cycles/{plan['cycle_id']}/"]

    def get(path: str) -> None:
        headers = {"Cookie": f"sessionid={plan['sessions'][0]}", "Authorization": f"Token {plan['tokens'][0]}"}
        with urllib.request.urlopen(urllib.request.Request(url + path, headers=headers), timeout=120) as response:
            response.read()

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2 * workers) as pool:
        list(pool.map(get, paths * 2 * workers))
    print(f"warmed {workers} gunicorn workers in {time.perf_counter() - start:.1f} s")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def read_stats(prefix: Path) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    """Locust's CSV: per endpoint count and percentiles; failures by status (named `HTTP <code>` by the locustfile)."""
    endpoints: dict[str, dict[str, Any]] = {}
    with open(f"{prefix}_stats.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["Name"] == "Aggregated":
                continue
            endpoints[row["Name"]] = {
                "requests": int(row["Request Count"]),
                "failures": int(row["Failure Count"]),
                "p50_ms": float(row["50%"]),
                "p95_ms": float(row["95%"]),
                "p99_ms": float(row["99%"]),
                "max_ms": float(row["Max Response Time"]),
                "rps": round(float(row["Requests/s"]), 2),
            }
    by_status: dict[str, int] = {}
    with open(f"{prefix}_failures.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            error = row["Error"]  # as locust writes it: CatchResponseError('HTTP 500'), or another exception
            status = re.search(r"HTTP (\d+)", error)
            key = status.group(1) if status else error[:80]
            by_status[key] = by_status.get(key, 0) + int(row["Occurrences"])
    return endpoints, by_status


def access_log_5xx(path: Path) -> int:
    """Server errors as gunicorn logged them (the access log's format below ends each line with the status)."""
    if not path.exists():
        return 0
    return sum(1 for line in path.read_text().splitlines() if line.rsplit(" ", 1)[-1].startswith("5"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100,000 pool items, 20 users, 60 s")
    parser.add_argument("--pool", type=int, default=None, help="scored pool items (default 1,000,000)")
    parser.add_argument("--scoring-pool", type=int, default=None, help="items of the cycle being scored")
    parser.add_argument("--users", type=int, default=None, help="concurrent locust users (default 50)")
    parser.add_argument("--run-time", type=int, default=None, help="seconds of load (default 180)")
    parser.add_argument("--spawn-rate", type=float, default=5.0, help="users started per second")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers (the compose file's 3)")
    parser.add_argument("--accounts", type=int, default=5, help="user accounts the locust users share")
    parser.add_argument("--writer-rate", type=float, default=5000.0, help="scores written per second meanwhile")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/9", help="Redis for the cache and broker")
    args = parser.parse_args()
    pool = args.pool or (100_000 if args.quick else 1_000_000)
    scoring_pool = args.scoring_pool or pool
    users = args.users or (20 if args.quick else 50)
    run_time = args.run_time or (60 if args.quick else 180)

    tmp = Path(tempfile.mkdtemp(prefix="alweb-load-"))
    env = configure(tmp, args.redis)
    setup_django()
    plan = seed(pool=pool, scoring_pool=scoring_pool, accounts=args.accounts)
    print("queries per endpoint (one request each, Django test client):")
    queries = profile_queries(plan)
    from django.db import connections

    connections.close_all()  # the writer process and gunicorn open their own

    plan_file = tmp / "plan.json"
    plan_file.write_text(json.dumps(plan))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    access_log = tmp / "access.log"
    gunicorn = subprocess.Popen(
        [
            str(ROOT / ".venv/bin/gunicorn"),
            "alweb.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(args.workers),
            "--timeout",
            "120",
            "--access-logfile",
            str(access_log),
            "--access-logformat",
            '%(m)s "%(U)s" %(s)s',
            "--no-control-socket",
            "--error-logfile",
            str(tmp / "gunicorn.log"),
        ],
        cwd=ROOT,
        env={**os.environ, **env},
        start_new_session=True,
    )
    stop_file = tmp / "stop"
    writer_proc = None
    try:
        wait_ready(url, gunicorn)
        warm_up(url, plan, args.workers)
        if args.writer_rate > 0:
            import multiprocessing

            writer_proc = multiprocessing.get_context("fork").Process(
                target=writer, args=(plan, scoring_pool, args.writer_rate, stop_file)
            )
            writer_proc.start()
        prefix = tmp / "locust"
        start = time.monotonic()
        locust = subprocess.run(
            [
                str(ROOT / ".venv/bin/locust"),
                "-f",
                str(ROOT / "bench/locustfile.py"),
                "--headless",
                "--users",
                str(users),
                "--spawn-rate",
                str(args.spawn_rate),
                "--run-time",
                f"{run_time}s",
                "--host",
                url,
                "--csv",
                str(prefix),
                "--only-summary",
                "--stop-timeout",
                "10",
                "--loglevel",
                "WARNING",
            ],
            cwd=ROOT,
            env={**os.environ, "ALWEB_LOAD_PLAN": str(plan_file)},
            check=False,
        )
        load_s = time.monotonic() - start
    finally:
        stop_file.touch()
        if writer_proc is not None:
            writer_proc.join(60)
        if gunicorn.poll() is None:
            os.killpg(gunicorn.pid, signal.SIGTERM)  # graceful: workers finish their requests (30 s at most)
            try:
                gunicorn.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(gunicorn.pid, signal.SIGKILL)
                gunicorn.wait()
    if locust.returncode not in (0, 1):  # 1: some requests failed, which the report counts
        raise SystemExit(f"locust exited with {locust.returncode}")
    endpoints, failures = read_stats(prefix)
    server_errors = sum(n for status, n in failures.items() if status.startswith("5"))
    logged_5xx = access_log_5xx(access_log)
    print(f"\n{users} users for {load_s:.0f} s, gunicorn {args.workers} workers; logs in {tmp}")
    print(f"{'endpoint':40s} {'requests':>8s} {'p50':>7s} {'p95':>7s} {'p99':>7s} {'errors':>6s} {'queries':>7s}")
    for name, row in endpoints.items():
        q = queries.get(name, {}).get("queries", "")
        print(
            f"{name:40s} {row['requests']:8d} {row['p50_ms']:7.0f} {row['p95_ms']:7.0f} {row['p99_ms']:7.0f}"
            f" {row['failures']:6d} {q!s:>7s}"
        )
    if failures:
        print("failures by status:", failures)
    errors = sum(row["failures"] for row in endpoints.values())
    result = {
        "users": users,
        "pool_size": pool,
        "run_s": run_time,
        "gunicorn_workers": args.workers,
        "requests": sum(row["requests"] for row in endpoints.values()),
        "rps": round(sum(row["rps"] for row in endpoints.values()), 1),
        "errors": errors,
        "server_errors": max(server_errors, logged_5xx),
        "preview_p95_ms": endpoints.get(PREVIEW, {}).get("p95_ms"),
        "progress_p95_ms": endpoints.get(PROGRESS, {}).get("p95_ms"),
        "p95_ms": {name: row["p95_ms"] for name, row in endpoints.items()},
        "p50_ms": {name: row["p50_ms"] for name, row in endpoints.items()},
        "p99_ms": {name: row["p99_ms"] for name, row in endpoints.items()},
        "queries": {name: row["queries"] for name, row in queries.items()},
    }
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
