"""Login throttling's two site-wide pieces, used by django-axes (settings AXES_*) and the API's token endpoint.

- `client_ip`: the address a request came from, the real one: REMOTE_ADDR, or with ALWEB_TRUSTED_PROXIES = N
  proxies in front of alweb, the address the outermost proxy saw. Never a header the client chose on its own: a
  throttle keyed on X-Forwarded-For as sent is reset by changing the header.
- `lockout_response`: what a locked-out login gets, the same words whether or not the username exists, and
  whether or not the password was right.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def lockout_message() -> str:
    minutes = max(1, round(settings.ALWEB_LOGIN_LOCKOUT_SECONDS / 60))
    return (
        f"Too many failed logins for this username or from this address: try again in {minutes} minutes. "
        "Until then no login for them works, not even with the right password."
    )


def client_ip(request: Any) -> str:
    """REMOTE_ADDR when no proxy is trusted (the default). Behind N trusted proxies, each appends to
    X-Forwarded-For the address it received the request from, so the N-th entry from the right is the client as the
    outermost proxy saw it; entries further left are whatever the client sent. A request with fewer entries did
    not come through the proxies: its REMOTE_ADDR is the real peer."""
    meta = request.META
    remote = str(meta.get("REMOTE_ADDR") or "")
    proxies = int(settings.ALWEB_TRUSTED_PROXIES)
    if proxies <= 0:
        return remote
    forwarded = [part.strip() for part in str(meta.get("HTTP_X_FORWARDED_FOR", "")).split(",") if part.strip()]
    return forwarded[-proxies] if len(forwarded) >= proxies else remote


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: dict[str, Any] | None = None
) -> HttpResponse:
    """The dashboard's and the admin's login page while locked out (AXES_LOCKOUT_CALLABLE): 429, the login form
    replaced by the lockout message, which names no user."""
    response = render(request, "registration/locked_out.html", {"message": lockout_message()}, status=429)
    response["Retry-After"] = str(settings.ALWEB_LOGIN_LOCKOUT_SECONDS)
    return response
