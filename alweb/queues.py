"""/admin/queues/: the Celery queues as operators need them: messages waiting in each queue the task routes use,
and which worker processes consume which queues (with what they are running now). Staff only, read-only.

The waiting counts come from the broker itself (a queue declare: Redis answers with the list's length, the
filesystem broker with its folder's), so they are right whichever process sent the tasks. The workers answer a
broadcast within ALWEB_QUEUES_INSPECT_TIMEOUT seconds; a busy `--pool solo` worker answers between two tasks, so
one running a long training may be missing from the list while its queue still drains.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from alweb.celery import app


@dataclass
class QueueRow:
    name: str
    waiting: int | None  # None: the broker did not answer for this queue
    tasks: list[str]
    workers: list[str] = field(default_factory=list)


def routed_queues() -> dict[str, list[str]]:
    """{queue: [task names routed to it]}, the default queue included (every task not routed elsewhere)."""
    queues: dict[str, list[str]] = {str(settings.CELERY_TASK_DEFAULT_QUEUE): ["(every task not routed elsewhere)"]}
    for task, route in settings.CELERY_TASK_ROUTES.items():
        queues.setdefault(str(route["queue"]), []).append(task.rsplit(".", 1)[-1])
    return queues


def waiting_messages(names: list[str]) -> dict[str, int | None]:
    counts: dict[str, int | None] = {}
    with app.connection_for_read() as conn:
        channel: Any = conn.default_channel  # a transport's channel (kombu types it as the bare StdChannel)
        for name in names:
            try:
                # Not passive: kombu's passive check ignores a Redis key prefix and says 404. A declare makes
                # nothing on Redis (queues are lists that exist with their first message) and answers the length.
                counts[name] = int(channel.queue_declare(queue=name).message_count)
            except Exception:  # a queue nobody declared yet (filesystem broker) or a broker error: unknown
                counts[name] = None
    return counts


def workers_by_queue(timeout: float) -> tuple[dict[str, list[str]], dict[str, int]]:
    """({queue: [worker names]}, {worker: tasks running now}) from the workers that answer in time."""
    inspect = app.control.inspect(timeout=timeout)
    queues: dict[str, Any] = inspect.active_queues() or {}
    active: dict[str, Any] = inspect.active() or {}
    by_queue: dict[str, list[str]] = {}
    for worker, consumed in queues.items():
        for q in consumed:
            by_queue.setdefault(str(q["name"]), []).append(worker)
    return by_queue, {w: len(tasks) for w, tasks in active.items()}


@staff_member_required
def queues_view(request: HttpRequest) -> HttpResponse:
    routed = routed_queues()
    routed = dict(sorted(routed.items()))
    counts = waiting_messages(list(routed))
    by_queue, running = workers_by_queue(float(settings.ALWEB_QUEUES_INSPECT_TIMEOUT))
    rows = [QueueRow(name, counts[name], tasks, sorted(by_queue.get(name, []))) for name, tasks in routed.items()]
    context = {
        **admin.site.each_context(request),
        "title": "Task queues",
        "rows": rows,
        "running": sorted(running.items()),
        "unserved": [r.name for r in rows if not r.workers],
    }
    return render(request, "admin/queues.html", context)
