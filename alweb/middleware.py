"""Response headers Django 5.2 does not set itself, and the request body size limit."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render


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


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


class UploadLimitMiddleware:
    """Refuse a request body over `settings.ALWEB_MAX_UPLOAD_BYTES` with 413, before anything reads it.

    Placed ahead of the view, and returning before CsrfViewMiddleware's process_view, which parses a POST form
    (and so a whole multipart upload, to a temporary file) to find its token. Django reads no more than
    Content-Length bytes of a body (and nothing of one without it), so the header bounds what could be read.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.ALWEB_MAX_UPLOAD_BYTES
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0  # Django then reads no body at all
        if length <= limit:
            return self.get_response(request)
        message = (
            f"The upload is {_size(length)}, over the limit of {_size(limit)} ({limit} bytes, "
            "ALWEB_MAX_UPLOAD_BYTES): nothing was read or imported."
        )
        if request.path.startswith("/api/"):
            return JsonResponse({"detail": message, "limit_bytes": limit}, status=413)
        return render(request, "upload_too_large.html", {"message": message}, status=413)
