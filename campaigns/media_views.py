"""Serving item media to Label Studio through signed, expiring URLs (no login: the signature is the grant)."""

from __future__ import annotations

import mimetypes

from django.core import signing
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET

from campaigns.services.media import media_name_for_token


@require_GET
@cache_control(private=True, max_age=300)
def media_signed(request: HttpRequest, token: str) -> FileResponse:
    try:
        name = media_name_for_token(token)
    except signing.BadSignature as exc:  # SignatureExpired is a BadSignature
        raise Http404("invalid or expired media link") from exc
    if not default_storage.exists(name):
        raise Http404("media not found")
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    response = FileResponse(default_storage.open(name, "rb"), content_type=content_type)
    # Label Studio's frontend fetches images cross-origin.
    response["Access-Control-Allow-Origin"] = "*"
    return response
