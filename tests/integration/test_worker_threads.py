"""Real worker processes set PyTorch's operator threads themselves (alweb.celery, engine.threads): a solo worker
runs its tasks in its own process and takes every usable core; a prefork worker's pool processes share them out;
either chooses OpenMP's passive wait when its environment does not."""

from __future__ import annotations

import re
from typing import Any

import pytest

from engine.threads import usable_cpus
from tests.worker import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]

LINE = re.compile(r"PyTorch operators use (\d+) thread\(s\) in process (\d+) \(OMP_WAIT_POLICY: (\w+)\)")


def _restart(worker: Any, *, processes: int = 1, **env: str) -> list[tuple[int, int, str]]:
    """The worker started again with `env`: what each of its `processes` task-running processes logged."""
    worker.stop()
    worker.env.pop("OMP_WAIT_POLICY", None)  # the test process's own choice must not decide the worker's
    worker.env.update(env)
    worker.log.unlink(missing_ok=True)
    worker.start()

    def lines() -> list[tuple[int, int, str]]:
        found = [(int(n), int(pid), policy) for n, pid, policy in LINE.findall(worker.output())]
        return found if worker.ready() and len(found) >= processes else []

    return wait_for(lines, timeout=120, what="the worker to start", worker=worker)


def test_a_solo_worker_uses_every_usable_core_and_waits_passively(celery_worker: Any) -> None:
    [(threads, pid, policy)] = _restart(celery_worker)
    assert pid == celery_worker.proc.pid  # the worker's own process: solo runs its tasks there
    assert (threads, policy) == (usable_cpus(), "PASSIVE")


def test_a_prefork_workers_processes_share_the_cores(celery_worker: Any) -> None:
    celery_worker.pool = ("--pool", "prefork", "--concurrency", "2")
    lines = _restart(celery_worker, processes=2)
    assert len(lines) == 2 and celery_worker.proc.pid not in {pid for _, pid, _ in lines}
    assert {(threads, policy) for threads, _, policy in lines} == {(max(1, usable_cpus() // 2), "PASSIVE")}


def test_a_number_in_the_environment_wins(celery_worker: Any) -> None:
    [(threads, _, policy)] = _restart(celery_worker, ALWEB_TORCH_THREADS="1", OMP_WAIT_POLICY="ACTIVE")
    assert (threads, policy) == (1, "ACTIVE")
