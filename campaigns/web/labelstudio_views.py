"""The project page's Label Studio ML backend card (issue 17 item 6): owners see the URL and user Label Studio needs
and can have alweb register itself in the project's Label Studio in one click, so nobody handles the secret. The
password itself never goes into a page (no page carries the webhook secret: tests scan every response for it); the
owners-only API answers it for a by-hand setup. Thin: the view calls the service the API and the admin call."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from campaigns.models import Membership, Project
from campaigns.web.access import login_required, member_project
from integrations.labelstudio.connect import ML_BACKEND_USER, labelstudio_register_ml_backend, ml_backend_url


def _is_owner(project: Project) -> bool:
    return getattr(project, "user_role", "") == Membership.Role.OWNER


def ml_backend_card(project: Project) -> dict[str, Any]:
    """Context for the card, shown to owners only."""
    if not _is_owner(project):
        return {"ml_backend": None}
    return {
        "ml_backend": {
            "url": ml_backend_url(project),
            "username": ML_BACKEND_USER,
            "can_connect": project.ls_project_id is not None,
        }
    }


@login_required
@require_POST
def ml_backend_connect_view(request: HttpRequest, pk: int) -> HttpResponse:
    project = member_project(request, pk=pk)
    if not _is_owner(project):
        raise PermissionDenied("Only project owners may connect the ML backend.")
    try:
        backend = labelstudio_register_ml_backend(project=project)
    except ValidationError as exc:
        messages.error(request, f"Not connected: {'; '.join(exc.messages)}")
    except ConnectionError as exc:
        messages.error(request, f"Not connected: Label Studio could not be reached ({exc}).")
    except RuntimeError as exc:  # LabelStudioRequestError: LS refused (its own reason, never LS's body)
        messages.error(request, f"Not connected: {exc}")
    else:
        messages.success(request, f"Connected: alweb is ML backend {backend} of the Label Studio project.")
    return redirect("dashboard:project-detail", pk=project.pk)
