"""Response headers Django 5.2 does not set itself."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse


class ContentSecurityPolicyMiddleware:
    """Send `settings.ALWEB_CSP` as the Content-Security-Policy of every response that has none of its own.

    The dashboard loads its scripts and styles from alweb's own static files only (htmx and Chart.js are vendored,
    no inline script or style), so the default policy allows 'self' and nothing else: an injected <script> or a
    script from another host does not run even if some page ever failed to escape a value.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if settings.ALWEB_CSP and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = settings.ALWEB_CSP
        return response
