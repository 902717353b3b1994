"""The Celery app, configured from Django settings (CELERY_* names)."""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import Celery
from celery.signals import worker_init, worker_process_init, worker_ready

from engine.threads import configure_threads, prefer_passive_wait

# First, before Django's setup imports torch: OpenMP reads its wait policy once, when torch loads it (engine.threads).
prefer_passive_wait()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "alweb.settings.local")
log = logging.getLogger(__name__)

app = Celery("alweb")
app.config_from_object("django.conf:settings", namespace="CELERY")


@app.on_configure.connect
def _configure_embedded_broker(sender: Celery, **kwargs: object) -> None:
    """The filesystem broker needs its folders; production brokers ignore this."""
    from django.conf import settings

    if str(settings.CELERY_BROKER_URL).startswith("filesystem://"):
        folder = settings.CELERY_BROKER_FOLDER
        (folder / "processed").mkdir(parents=True, exist_ok=True)
        sender.conf.broker_transport_options = {
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            "processed_folder": str(folder / "processed"),
            # kombu's default is ./control relative to the working directory.
            "control_folder": str(folder / "control"),
            "store_processed": False,
        }


app.autodiscover_tasks()


# The worker being started (worker_init); its forked pool processes inherit the reference.
_worker: Any = None


@worker_init.connect
def _remember_worker(sender: Any, **kwargs: object) -> None:
    global _worker
    _worker = sender


def _pool_is(*kinds: type) -> bool:
    pool = getattr(_worker, "pool_cls", None)
    return isinstance(pool, type) and issubclass(pool, kinds)


def _set_threads() -> None:
    """PyTorch's operator threads in a process that runs tasks: prefork's processes share the host's cores; the
    other pools run every task in the worker's one process."""
    from celery.concurrency.prefork import TaskPool as Prefork
    from django.conf import settings

    processes = int(_worker.concurrency) if _pool_is(Prefork) else 1
    threads = configure_threads(settings.ALWEB_TORCH_THREADS, processes=processes)
    policy = os.environ.get("OMP_WAIT_POLICY", "OpenMP's default")
    log.info("PyTorch operators use %d thread(s) in process %d (OMP_WAIT_POLICY: %s)", threads, os.getpid(), policy)


@worker_process_init.connect
def _threads_in_pool_process(**kwargs: object) -> None:
    """Sent in each prefork pool process, and by the solo pool in the worker's own."""
    _set_threads()


@worker_ready.connect
def _threads_in_worker(**kwargs: object) -> None:
    """The thread pools send no worker_process_init: their tasks run in this process."""
    from celery.concurrency.prefork import TaskPool as Prefork
    from celery.concurrency.solo import TaskPool as Solo

    if not _pool_is(Prefork, Solo):
        _set_threads()
