"""`/healthz`: is this web process up, and can it reach the database and the broker? For load balancers, compose
healthchecks and monitoring: no login, no session, and cheap (one `SELECT 1`, one broker connection with a short
timeout), so it can be polled every few seconds.

200 with every check "ok"; 503 naming the check that failed and why (a load balancer takes the process out of
rotation, and a person reading the body sees which part is down).

It is answered by a middleware placed first, before Django checks the Host header or redirects plain HTTP to
HTTPS: a load balancer or a compose healthcheck calls the process by its own address over HTTP, which a production
setup (DJANGO_ALLOWED_HOSTS with the public name only, DJANGO_SSL_REDIRECT) would otherwise answer with 400 or 301.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.cache import add_never_cache_headers

from alweb.celery import app


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _broker() -> None:
    """Open (and close) a connection to the broker: Redis answers a PING as the connection is set up, the
    filesystem broker checks its folder. One attempt, bounded by ALWEB_HEALTHZ_TIMEOUT seconds."""
    timeout = float(settings.ALWEB_HEALTHZ_TIMEOUT)
    with app.connection_for_write() as conn:
        conn.transport_options = {**(conn.transport_options or {}), "socket_timeout": timeout}
        conn.connect_timeout = timeout
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=max(1, round(timeout)))


CHECKS: dict[str, Callable[[], None]] = {"database": _database, "broker": _broker}


PATH = "/healthz"


class HealthzMiddleware:
    """Answers GET/HEAD `/healthz` itself; every other request goes on down the stack."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path in (PATH, PATH + "/") and request.method in ("GET", "HEAD"):
            return healthz(request)
        return self.get_response(request)


def healthz(request: HttpRequest) -> JsonResponse:
    checks: dict[str, dict[str, object]] = {"web": {"ok": True}}
    for name, check in CHECKS.items():
        started = time.monotonic()
        try:
            check()
        except Exception as exc:  # any failure is the answer here, not an error page
            checks[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:500]}
        else:
            checks[name] = {"ok": True}
        checks[name]["ms"] = round((time.monotonic() - started) * 1000, 1)
    ok = all(c["ok"] for c in checks.values())
    response = JsonResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503)
    add_never_cache_headers(response)  # a proxy must never answer for the process
    return response
