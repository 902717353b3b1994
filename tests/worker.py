"""A real Celery worker process for integration tests: Redis broker, the test database, a shared MLflow store."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Worker:
    env: dict[str, str]
    media_root: Path
    mlflow_uri: str
    log: Path
    proc: subprocess.Popen[bytes] | None = field(default=None)
    name: str = "worker"
    # Not `quality`: the label-quality task trains K models after every training and would hold up the cycles a test
    # waits for; the test of that task adds the queue.
    queues: str = "celery,cpu,io"
    pool: tuple[str, ...] = ("--pool", "solo")

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "alweb",
                "worker",
                "-Q",
                self.queues,
                *self.pool,
                "--loglevel",
                "INFO",
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
                "--hostname",
                f"{self.name}@%h",  # two workers of one test must not share a node name
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        """SIGKILL, as an OOM killer or a lost machine would: no chance to ack or clean up."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)

    def twin(self, name: str) -> Worker:
        """Another worker process on the same broker queues, database, media and MLflow store, with its own log:
        two of them share one cycle's chunks."""
        return Worker(
            env=dict(self.env),
            media_root=self.media_root,
            mlflow_uri=self.mlflow_uri,
            log=self.log.with_name(f"{name}.log"),
            name=name,
        )

    def ready(self) -> bool:
        """The worker has connected and waits for tasks."""
        return " ready." in self.output()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def stacks(self) -> str:
        """Every thread's Python stack in the worker, then the worker ends: what a hung task was doing. SIGABRT
        makes faulthandler (PYTHONFAULTHANDLER, set by `make_worker`) write them to the log before the process dies."""
        if self.proc is None or self.proc.poll() is not None:
            return "(the worker was not running)"
        size = self.log.stat().st_size if self.log.exists() else 0
        os.kill(self.proc.pid, signal.SIGABRT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        # And whatever it forked (a hung task's process pool), so nothing outlives the test.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        with self.log.open("rb") as f:
            f.seek(size)
            return f.read().decode(errors="replace")[-8000:]


def make_worker(tmp: Path, database_name: str, *, visibility_timeout: int = 15) -> Worker:
    prefix = f"alweb-test-{uuid.uuid4().hex[:8]}:"
    media = tmp / "media"
    mlflow_uri = f"sqlite:///{tmp / 'mlflow.db'}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "alweb.settings.test",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{database_name}",
        "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15"),
        "CELERY_KEY_PREFIX": prefix,
        "CELERY_VISIBILITY_TIMEOUT": str(visibility_timeout),
        "ALWEB_MEDIA_ROOT": str(media),
        "MLFLOW_TRACKING_URI": mlflow_uri,
        "MLFLOW_ARTIFACT_ROOT": str(tmp / "mlartifacts"),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "HF_HUB_OFFLINE": "1",
        "PYTHONFAULTHANDLER": "1",  # a worker stopped with SIGABRT writes its threads' stacks (Worker.stacks)
    }
    return Worker(env=env, media_root=media, mlflow_uri=mlflow_uri, log=tmp / "worker.log")


def wait_for(predicate: Callable[[], Any], *, timeout: float, what: str, worker: Worker | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    report = [f"timed out after {timeout}s waiting for {what}", "database sessions not idle:", *_busy_sessions()]
    if worker is not None:
        report += ["worker log:", worker.tail(), "worker stacks:", worker.stacks()]
    raise AssertionError("\n".join(report))


def _busy_sessions() -> list[str]:
    """What the database's other sessions are doing or waiting for: a worker blocked on a lock shows here."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, state, wait_event_type, wait_event, now() - xact_start, left(query, 300) "
            "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND state <> 'idle'"
        )
        return [" | ".join(str(v) for v in row) for row in cursor.fetchall()]
