"""Label Studio addresses: one spelling per server, and the allowlist of servers alweb may call. Django-free.

One spelling: `http://LS:8080/` and `http://ls:8080` are the same server, and a comparison (the one-link-per-LS-
project uniqueness, "is this the server's Label Studio", the allowlist) that tells them apart can be walked around
with a trailing slash or capital letters.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


NOT_ALLOWED = "this Label Studio server is not in the allowed list (ALWEB_LS_ALLOWED_URLS); ask the administrator"
LINK_NEEDS_OWN_KEY = (
    "alweb did not create this Label Studio project for this project: to link it, give your own Label Studio API "
    "key for it (ls_api_key)"
)


class AddressError(ValueError):
    """Not an http(s) URL alweb can talk to; the message says why."""


def normalize_ls_url(url: str) -> str:
    """Scheme and host lower-cased, the scheme's default port dropped, no trailing slash, no query or fragment.
    An empty URL stays empty (it means "the server's Label Studio")."""
    url = (url or "").strip()
    if not url:
        return ""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise AddressError("must be an http or https URL")
    if parts.username or parts.password:
        raise AddressError("must not contain a user name or password")
    host = (parts.hostname or "").lower()
    if not host:
        raise AddressError("must name a host")
    try:
        port = parts.port
    except ValueError as exc:
        raise AddressError("has an invalid port") from exc
    if ":" in host:  # IPv6 literal: urlsplit strips the brackets
        host = f"[{host}]"
    netloc = host if port in (None, DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), "", ""))


def is_allowed(url: str, allowed: Iterable[str]) -> bool:
    """Whether `url` is one of the allowed Label Studio servers (both sides normalised; blank entries ignored)."""
    target = normalize_ls_url(url)
    for entry in allowed:
        try:
            if entry.strip() and normalize_ls_url(entry) == target:
                return True
        except AddressError:
            continue  # a mistyped entry in the settings allows nothing
    return False


def allowed_ls_url(url: str, *, server_url: str, allowed: Iterable[str]) -> str:
    """The normalised URL alweb will call for a project naming `url` (empty: the server's Label Studio), or
    AddressError when it is malformed or not allowed. The server's own Label Studio is always allowed: it is the
    one the administrator configured; any other must be listed, so a member cannot make alweb's workers send
    requests (and the server's identity) to a host of their choosing."""
    server = normalize_ls_url(server_url)
    target = normalize_ls_url(url) or server
    if target and target != server and not is_allowed(target, allowed):
        raise AddressError(NOT_ALLOWED)
    return target
