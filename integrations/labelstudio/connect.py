"""Connecting an alweb project to Label Studio: credentials, the LS project (created or linked), webhook, ML backend.

Credentials: a project's own `ls_url` / `ls_api_key`, else `settings.LABEL_STUDIO_URL` / `LABEL_STUDIO_API_KEY`.
The key lives only in `Credentials.api_key` (hidden from repr) and the SDK client: no log line or error message
built here contains it.

Errors: LS unreachable (connection refused, timeouts, 5xx while it restarts) becomes `LabelStudioUnavailable`, a
ConnectionError, so the Celery tasks retry with backoff; a config or id that cannot work becomes a ValidationError
naming the field.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse

from campaigns.models import Item, Project, SelectedItem
from integrations.labelstudio import client as lsc
from integrations.labelstudio.addresses import LINK_NEEDS_OWN_KEY, AddressError, allowed_ls_url, normalize_ls_url
from integrations.labelstudio.label_config import (
    LabelConfigError,
    LabelConfigInfo,
    build_label_config,
    parse_label_config,
    validate_label_config,
)

log = logging.getLogger(__name__)

# LS 1.23 sends these; ANNOTATIONS_CREATED is the bulk form (imports, "create annotations from predictions").
WEBHOOK_ACTIONS = ("ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED")
ML_BACKEND_USER = "alweb"


class LabelStudioUnavailable(ConnectionError):
    """Label Studio did not answer (down, restarting, timing out). Retryable: tasks back off and try again."""


class LabelStudioRequestError(RuntimeError):
    """LS refused a request (4xx). Its message is the status and a short reason of alweb's own: the SDK's ApiError
    text includes LS's response headers (a `sessionid` cookie for the API key's user), and the body is whatever the
    remote host chose to send, which must not be copied into failure reasons a member reads. The body stays on the
    exception for code that inspects it."""

    def __init__(self, status_code: int | None, body: Any) -> None:
        self.status_code, self.body = status_code, body
        super().__init__(f"Label Studio answered {status_code}: {STATUS_REASONS.get(status_code, 'request refused')}")


STATUS_REASONS: dict[int | None, str] = {
    400: "request refused as invalid",
    401: "the API key was not accepted",
    403: "access denied for this API key",
    404: "not found",
    405: "method not allowed (is this a Label Studio server?)",
    409: "conflict",
    413: "request too large",
    429: "too many requests",
}


class LabelStudioNotConfigured(ValidationError):
    """No Label Studio URL or API key for this project, in the project or in the settings."""


@dataclass(frozen=True)
class Credentials:
    url: str
    api_key: str = field(repr=False)


@contextlib.contextmanager
def ls_errors() -> Iterator[None]:
    """Translate transport failures and LS server errors into LabelStudioUnavailable (retryable)."""
    try:
        yield
    except httpx.TransportError as exc:  # connect/read errors and timeouts; not a ConnectionError subclass
        raise LabelStudioUnavailable(f"Label Studio unreachable: {type(exc).__name__}: {exc}") from None
    except lsc.ApiError as exc:
        if exc.status_code is not None and exc.status_code >= 500:
            raise LabelStudioUnavailable(f"Label Studio answered {exc.status_code}") from None
        raise LabelStudioRequestError(exc.status_code, exc.body) from None


def labelstudio_credentials(project: Project) -> Credentials:
    """The project's own URL and key, or the server's. The server's key only ever goes to the server's Label Studio:
    a project naming another URL brings its own key, or anyone who can create a project could have alweb send the
    server's token to a host of their choosing."""
    server_url = normalize_ls_url(settings.LABEL_STUDIO_URL or "")
    try:
        # Checked here too, not only when the URL is saved: a row written before the allowlist, or the allowlist
        # narrowed since, must not make alweb's workers call a host nobody allowed.
        url = allowed_ls_url(project.ls_url, server_url=server_url, allowed=settings.ALWEB_LS_ALLOWED_URLS)
    except AddressError as exc:
        raise LabelStudioNotConfigured({"ls_url": str(exc)}) from None
    key = project.ls_api_key or (settings.LABEL_STUDIO_API_KEY if url == server_url else "") or ""
    if not url:
        raise LabelStudioNotConfigured(
            {"ls_url": "no Label Studio URL for this project or in the settings (LABEL_STUDIO_URL)"}
        )
    if not key:
        reason = (
            "no Label Studio API key for this project or in the settings (LABEL_STUDIO_API_KEY)"
            if url == server_url
            else f"this project's Label Studio ({url}) is not the server's: give its API key"
        )
        raise LabelStudioNotConfigured({"ls_api_key": reason})
    return Credentials(url, key)


def labelstudio_client(project: Project) -> lsc.LabelStudio:
    creds = labelstudio_credentials(project)
    return lsc.make_client(creds.url, creds.api_key)


def webhook_url(project: Project) -> str:
    return settings.ALWEB_BASE_URL.rstrip("/") + reverse("labelstudio-webhook", args=[project.pk])


def ml_backend_url(project: Project) -> str:
    # LS appends "/health", "/setup", "/predict" and "/webhook" to this (no trailing slash).
    return settings.ALWEB_BASE_URL.rstrip("/") + reverse("labelstudio-ml-root", args=[project.pk])


FIND_PAGE_SIZE = 100


def _markers(project: Project) -> list[str]:
    """What alweb writes into the description of an LS project it creates for `project` (the first), and what it
    accepts as proof that it did (all). Keyed with the server's SECRET_KEY over the project's id and creation time:
    stable for the project (a rotated webhook secret must not orphan its LS project), unguessable for users,
    different across alweb installs (and databases) sharing one LS. The second is the older marker, derived from
    the webhook secret, still accepted for projects made then."""
    # The creation time joins the id: a database rebuilt from scratch reuses ids, and must not adopt the LS
    # projects an earlier database's projects left on a shared Label Studio.
    created = project.created_at.isoformat() if project.created_at else ""
    message = f"alweb-ls-project:{project.pk}:{created}".encode()
    stable = hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256)
    legacy = hashlib.sha256(f"{project.pk}:{project.ls_webhook_secret}".encode())
    return [f"alweb-{stable.hexdigest()[:16]}", f"alweb-{legacy.hexdigest()[:16]}"]


def _marker(project: Project) -> str:
    return _markers(project)[0]


def _created_by_alweb(project: Project, description: str) -> bool:
    return any(marker in description for marker in _markers(project))


def _title(project: Project) -> str:
    suffix = f" (alweb {project.pk})"
    return (project.name[: 50 - len(suffix)] + suffix).strip().ljust(3, ".")


def _find_created(client: lsc.LabelStudio, project: Project) -> int | None:
    """The LS project an earlier attempt created for this alweb project, if any. Every page of the title matches is
    read: other alweb installs sharing this LS name their projects "(alweb <same pk>)" too."""
    suffix = f"(alweb {project.pk})"
    page = 1
    while True:
        params = {"title": suffix, "page_size": FIND_PAGE_SIZE, "page": page, "include": "id,description"}
        found = lsc._request(client, "GET", "api/projects/", params=params)
        rows = found.get("results", []) if isinstance(found, dict) else found
        # Only the current marker adopts: an interrupted create of this very project wrote it. (The older marker,
        # still accepted to relink, would let a rebuilt database adopt an earlier one's project of the same id.)
        hit = next((int(r["id"]) for r in rows if _marker(project) in (r.get("description") or "")), None)
        if hit is not None or not isinstance(found, dict) or not found.get("next"):
            return hit
        page += 1


def labelstudio_connect_project(
    *, project: Project, ls_project_id: int | None = None, with_ml_backend: bool = False
) -> Project:
    """Create the LS project for `project` (its task type and labels, uncertainty sampling), or link the existing
    LS project `ls_project_id` (or the one already set on the project) after checking its labeling config fits.
    Then set its annotators per task and (re)register the webhook with the project's secret header. Idempotent;
    returns the updated project."""
    if not project.ls_webhook_secret:
        Project.objects.filter(pk=project.pk, ls_webhook_secret="").update(ls_webhook_secret=secrets.token_urlsafe(32))
    project = Project.objects.get(pk=project.pk)
    creds = labelstudio_credentials(project)
    client = lsc.make_client(creds.url, creds.api_key)
    target = ls_project_id if ls_project_id is not None else project.ls_project_id
    with ls_errors():
        if target is not None:
            _link(client, project, int(target), own_key=bool(project.ls_api_key))
        else:
            target = _find_created(client, project)
            if target is None:
                info = lsc.create_project(
                    client,
                    title=_title(project),
                    label_config=build_label_config(project.task_type, list(project.labels)),  # type: ignore[arg-type]
                    description=f"Created by alweb for project {project.pk}. {_marker(project)}",
                )
                target = info.id
                log.info("project %s: created Label Studio project %s at %s", project.pk, target, creds.url)
        with transaction.atomic():
            locked = Project.objects.select_for_update().get(pk=project.pk)
            if locked.ls_project_id not in (None, target) and ls_project_id is None:
                # Someone linked another LS project meanwhile: theirs wins, ours stays an empty LS project.
                return locked
            taken = Project.objects.exclude(pk=project.pk).filter(ls_url=creds.url, ls_project_id=target).exists()
            if taken:
                raise ValidationError({"ls_project_id": "another alweb project is linked to this Label Studio project"})
            locked.ls_url, locked.ls_project_id, locked.ls_linked = creds.url, int(target), True
            locked.save(update_fields=["ls_url", "ls_project_id", "ls_linked", "updated_at"])
        lsc.set_overlap(client, project_id=int(target), annotators=locked.annotators_per_task)
        lsc.register_webhook(
            client,
            project_id=int(target),
            url=webhook_url(locked),
            secret=locked.ls_webhook_secret,
            actions=WEBHOOK_ACTIONS,
        )
        if with_ml_backend:
            labelstudio_register_ml_backend(project=locked)
    return locked


def labelstudio_push_overlap(*, project: Project) -> bool:
    """Set the LS project's annotators per task to the project's `annotators_per_task`. Idempotent (it sets a
    value); False when there is no checked LS project yet: connecting one sets it then."""
    if project.ls_project_id is None or not project.ls_linked:
        return False
    with ls_errors():
        lsc.set_overlap(
            labelstudio_client(project), project_id=project.ls_project_id, annotators=project.annotators_per_task
        )
    return True


def _link(client: lsc.LabelStudio, project: Project, ls_project_id: int, *, own_key: bool) -> None:
    """Check the LS project may be linked and fits. With the server's key (which opens every project on its LS),
    only the LS project alweb created for this very project: its description carries this project's marker, which
    nobody without the project's webhook secret can forge. With the owner's own key, LS itself is the check: a
    project that key cannot open answers 403/404."""
    try:
        info = lsc.get_project(client, ls_project_id)
    except lsc.ApiError as exc:
        if exc.status_code in (403, 404):
            raise ValidationError(
                {"ls_project_id": f"Label Studio has no project {ls_project_id} visible to this API key"}
            ) from exc
        raise
    if not own_key and not _created_by_alweb(project, info.description or ""):
        # Checked before the labeling config: its problems would list another project's labels.
        raise ValidationError({"ls_project_id": LINK_NEEDS_OWN_KEY})
    try:
        validate_label_config(info.label_config, project.task_type, list(project.labels))  # type: ignore[arg-type]
    except LabelConfigError as exc:
        raise ValidationError(
            {"ls_project_id": [f"Label Studio project {ls_project_id}: {p}" for p in exc.problems]}
        ) from exc
    if info.sampling != lsc.UNCERTAINTY_SAMPLING:
        # alweb's order reaches annotators only through LS's uncertainty sampling.
        lsc.update_project(client, project_id=ls_project_id, sampling=lsc.UNCERTAINTY_SAMPLING)


def labelstudio_config_info(client: lsc.LabelStudio, project: Project) -> LabelConfigInfo:
    """Where predictions go in this LS project's config (tag names and data key; a linked project may differ)."""
    assert project.ls_project_id is not None
    with ls_errors():
        info = lsc.get_project(client, project.ls_project_id)
    return parse_label_config(info.label_config, project.task_type)  # type: ignore[arg-type]


def labelstudio_register_ml_backend(*, project: Project) -> int:
    """Add alweb's per-project ML backend to the LS project, with HTTP basic auth (user "alweb", the project's
    webhook secret). alweb must be reachable from LS at ALWEB_BASE_URL: LS calls /health and /setup right away."""
    if project.ls_project_id is None:
        raise ValidationError({"ls_project_id": "connect the project to Label Studio first"})
    client = labelstudio_client(project)
    with ls_errors():
        return lsc.add_ml_backend(
            client,
            project_id=project.ls_project_id,
            url=ml_backend_url(project),
            title=f"alweb {project.pk}",
            basic_auth=(ML_BACKEND_USER, project.ls_webhook_secret),
        )


# What becomes of the LS project when its alweb project is deleted: the owner's choice, "tasks" by default.
RELEASE_KEEP, RELEASE_TASKS, RELEASE_PROJECT = "keep", "tasks", "project"
RELEASE_MODES = (RELEASE_TASKS, RELEASE_PROJECT, RELEASE_KEEP)
RELEASE_BATCH = 1000


def labelstudio_project_release(*, project: Project, mode: str = RELEASE_TASKS) -> None:
    """Before an alweb project is deleted: delete the LS tasks alweb created for it ("tasks"), the whole LS project
    if alweb created it ("project"), or nothing ("keep"). Tasks left behind would keep the project's items (and its
    annotators' work) readable in LS with nobody in alweb answerable for them.

    "tasks" deletes only the tasks alweb recorded (an item's or a selected row's `ls_task_id`): a linked LS project
    may hold tasks someone imported by hand, which are not alweb's to delete. Raises LabelStudioUnavailable,
    LabelStudioRequestError or a ValidationError when LS cannot be reached or refuses; nothing is deleted in alweb
    then, and the caller says how to keep the LS side instead.
    """
    if mode not in RELEASE_MODES:
        raise ValidationError({"label_studio": f"must be one of {', '.join(RELEASE_MODES)}"})
    if mode == RELEASE_KEEP or project.ls_project_id is None:
        return
    client = labelstudio_client(project)
    with ls_errors():
        if mode == RELEASE_PROJECT:
            info = lsc.get_project(client, project.ls_project_id)
            if not _created_by_alweb(project, info.description or ""):
                raise ValidationError(
                    {"label_studio": "alweb did not create this Label Studio project: only its tasks can be deleted"}
                )
            lsc.delete_project(client, project.ls_project_id)
            log.info("project %s: deleted Label Studio project %s", project.pk, project.ls_project_id)
            return
        items = Item.objects.filter(project=project, ls_task_id__isnull=False).values_list("ls_task_id", flat=True)
        rows = SelectedItem.objects.filter(selection__cycle__project=project, ls_task_id__isnull=False).values_list(
            "ls_task_id", flat=True
        )
        task_ids = sorted({int(t) for t in (*items, *rows) if t is not None})
        for start in range(0, len(task_ids), RELEASE_BATCH):
            lsc.delete_tasks(client, project_id=project.ls_project_id, task_ids=task_ids[start : start + RELEASE_BATCH])
        log.info("project %s: deleted %d Label Studio tasks", project.pk, len(task_ids))
