"""Item media URLs: a stable link per item for Label Studio tasks, expiring signed links for everything else.

Labeling takes days and a Label Studio task keeps the URL it was created with, so an expiring URL in task data breaks
once its TTL passes (issue 17: an image signed an hour earlier gave 404). A task therefore gets a *stable* link,
`/m/i/<item id>/<signature>/`: the signature is an HMAC (SECRET_KEY) over the item id, its file name, its project and
the project's `media_links_epoch`, so it cannot be forged, guessed or reused for another file, and it stops working
when the item's file changes, the item is deleted, or the project's links are revoked (the epoch is raised). Opening
it serves the file (filesystem storage) or redirects to a freshly presigned URL (S3), so the bytes themselves are
only ever reachable through short-lived signatures. Exports and other downloads get expiring links
(`signed_storage_url`, ALWEB_MEDIA_URL_TTL seconds).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import signing
from django.core.files.storage import default_storage
from django.db.models import F
from django.urls import reverse
from django.utils.crypto import constant_time_compare, salted_hmac

from campaigns.models import Item, Project

_SALT = "alweb.media"


def _is_remote_storage() -> bool:
    storages: Any = settings.STORAGES
    return "s3" in str(storages["default"]["BACKEND"]).lower()


def item_media_url(item: Item, *, project: Project | None = None) -> str:
    """The URL Label Studio loads the item's image from: the item's own URL, or its stable media link. Pass the
    item's project when it is at hand (a sync batch): it saves a query per item."""
    if item.url:
        return item.url
    if not item.media:
        return ""
    epoch = (project if project is not None else item.project).media_links_epoch
    path = reverse("media-item", args=[item.pk, _item_signature(item, epoch=epoch)])
    return settings.ALWEB_BASE_URL.rstrip("/") + path


def project_revoke_media_links(*, project: Project) -> None:
    """Invalidate every stable media link of the project's items (a link leaked outside the team); tasks synced
    from now on carry new ones."""
    Project.objects.filter(pk=project.pk).update(media_links_epoch=F("media_links_epoch") + 1)
    project.refresh_from_db(fields=["media_links_epoch"])


def _item_signature(item: Item, *, epoch: int) -> str:
    message = f"{item.pk}:{item.project_id}:{epoch}:{item.media.name}"
    return salted_hmac("alweb.media.item", message, algorithm="sha256").hexdigest()


def item_for_media_link(item_id: int, signature: str) -> Item | None:
    """The item a stable media link grants, or None when the link is forged, revoked or out of date."""
    item = Item.objects.select_related("project").filter(pk=item_id).exclude(media="").first()
    if item is None:
        return None
    expected = _item_signature(item, epoch=item.project.media_links_epoch)
    return item if constant_time_compare(expected, signature) else None


def media_file_url(name: str) -> str | None:
    """Where a stable link sends the browser for remote storage (a freshly presigned URL); None for local files,
    which alweb serves itself."""
    return str(default_storage.url(name)) if _is_remote_storage() else None


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
