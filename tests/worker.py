"""A real Celery worker process for integration tests: Redis broker, the test database, a shared MLflow store."""

from __future__ import annotations

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
                "--pool",
                "solo",
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
    }
    return Worker(env=env, media_root=media, mlflow_uri=mlflow_uri, log=tmp / "worker.log")


def wait_for(predicate: Callable[[], Any], *, timeout: float, what: str, worker: Worker | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{worker.tail() if worker else ''}")
