"""Item media URLs for Label Studio annotators: signed, expiring, served by alweb — or presigned S3 URLs.

The signature covers the item id and the file name, so a URL can neither be forged nor reused for another file,
and it stops working after ALWEB_MEDIA_URL_TTL seconds (Label Studio re-reads task data when a task opens, and
alweb re-signs on every sync).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import signing
from django.core.files.storage import default_storage
from django.urls import reverse

from campaigns.models import Item

_SALT = "alweb.media"


def _is_remote_storage() -> bool:
    storages: Any = settings.STORAGES
    return "s3" in str(storages["default"]["BACKEND"]).lower()


def item_media_url(item: Item) -> str:
    """The URL Label Studio loads the item's image from."""
    if item.url:
        return item.url
    if not item.media:
        return ""
    return signed_storage_url(str(item.media.name), i=item.pk)


def signed_storage_url(name: str, **claims: Any) -> str:
    """An expiring link to a file in default storage (item media, an export): presigned by django-storages on S3,
    else signed by alweb and served by `media_signed`. `claims` are signed along (e.g. the item id)."""
    if _is_remote_storage():
        return str(default_storage.url(name))  # presigned by django-storages, expiring
    token = signing.TimestampSigner(salt=_SALT).sign_object({**claims, "m": name})
    return settings.ALWEB_BASE_URL.rstrip("/") + reverse("media-signed", args=[token])


def media_name_for_token(token: str) -> str:
    """The storage name a token grants, or raise signing.BadSignature / SignatureExpired."""
    data = signing.TimestampSigner(salt=_SALT).unsign_object(token, max_age=settings.ALWEB_MEDIA_URL_TTL)
    return str(data["m"])
