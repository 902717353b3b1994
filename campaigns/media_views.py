"""Serving media through signed URLs (no login: the signature is the grant): expiring links for downloads, stable
per-item links for Label Studio tasks (campaigns.services.media says why)."""

from __future__ import annotations

import mimetypes

from django.core import signing
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.utils.cache import patch_cache_control
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET

from campaigns.services.media import item_for_media_link, media_file_url, media_name_for_token


@require_GET
@cache_control(private=True, max_age=300)
def media_signed(request: HttpRequest, token: str) -> FileResponse:
    try:
        name = media_name_for_token(token)
    except signing.BadSignature as exc:  # SignatureExpired is a BadSignature
        raise Http404("invalid or expired media link") from exc
    return _serve(name)


@require_GET
def media_item(request: HttpRequest, item_id: int, signature: str) -> HttpResponseBase:
    item = item_for_media_link(item_id, signature)
    if item is None:
        raise Http404("invalid or revoked media link")
    name = str(item.media.name)  # item_for_media_link only grants items with a file
    remote = media_file_url(name)
    if remote is not None:
        # S3: the browser fetches the bytes from a URL presigned now, valid ALWEB_MEDIA_URL_TTL seconds.
        # Not cached: a cached redirect would outlive the presigned URL it points at.
        response: HttpResponse = HttpResponseRedirect(remote)
        response["Access-Control-Allow-Origin"] = "*"
        patch_cache_control(response, private=True, no_store=True)
        return response
    served = _serve(name)
    patch_cache_control(served, private=True, max_age=300)
    return served


def _serve(name: str) -> FileResponse:
    if not default_storage.exists(name):
        raise Http404("media not found")
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    response = FileResponse(default_storage.open(name, "rb"), content_type=content_type)
    # Label Studio's frontend fetches images cross-origin.
    response["Access-Control-Allow-Origin"] = "*"
    return response
