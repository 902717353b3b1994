"""Fetching an image by URL for a prediction request, without letting a member point the server anywhere.

alweb's web process makes the request, so the URL is checked against an allowlist of origins the administrator set
(ALWEB_PREDICT_URL_ORIGINS), with the same address rules as the Label Studio allowlist (one spelling per server:
`integrations.labelstudio.addresses`): http(s) only, no user name or password, scheme and host compared
lower-cased with default ports dropped. Redirects are not followed (a listed host could redirect to an internal
one), and the body is read in chunks up to a byte limit, so a huge or endless response cannot fill memory.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import httpx
from django.conf import settings

from integrations.labelstudio.addresses import AddressError, is_allowed, normalize_ls_url


class RemoteImageError(ValueError):
    """The URL is not allowed, or its image could not be fetched; the message says why, for the caller's field."""


def url_origin(url: str) -> str:
    """`scheme://host[:port]` of an http(s) URL, normalised as the allowlist entries are; AddressError if malformed."""
    normalized = normalize_ls_url(url)
    parts = urlsplit(normalized)
    return urlunsplit((parts.scheme, parts.netloc, "", "", ""))


def check_image_url(url: str) -> None:
    """Raise RemoteImageError unless `url` is an http(s) URL on an allowed origin."""
    try:
        origin = url_origin(url)
    except AddressError as exc:
        raise RemoteImageError(str(exc)) from exc
    allowed = settings.ALWEB_PREDICT_URL_ORIGINS
    if not is_allowed(origin, allowed):
        raise RemoteImageError(
            f"{origin} is not an allowed image origin (ALWEB_PREDICT_URL_ORIGINS"
            f"{': ' + ', '.join(allowed) if allowed else ' is empty: image URLs are off'}); upload the image instead"
        )


def fetch_image(url: str, *, max_bytes: int) -> bytes:
    """The body at `url` (checked first), at most `max_bytes`; RemoteImageError when refused or unreachable."""
    check_image_url(url)
    try:
        with (
            httpx.Client(timeout=settings.ALWEB_PREDICT_URL_TIMEOUT, follow_redirects=False) as client,
            client.stream("GET", url) as response,
        ):
            if response.is_redirect:
                raise RemoteImageError(f"answered a redirect ({response.status_code}); redirects are not followed")
            if response.status_code != 200:
                raise RemoteImageError(f"answered HTTP {response.status_code}")
            body = bytearray()
            for chunk in response.iter_bytes():
                body.extend(chunk)
                if len(body) > max_bytes:
                    raise RemoteImageError(f"the image is over the limit of {max_bytes} bytes")
            return bytes(body)
    except httpx.HTTPError as exc:
        raise RemoteImageError(f"could not be fetched: {exc.__class__.__name__}: {exc}") from exc
