"""Per-project roles: members read and work in a project, owners also delete it, manage members and change the
Label Studio connection. Running cycles is work: any member may start, preview, select, sync, pull, cancel and retry
(each step is recorded on the cycle and its stored selection, and none touches the connection or the membership).
A non-member gets 404 for anything under a project, never 403: whether a project exists is itself private.
Anonymous requests get 401 from IsAuthenticated, which runs first."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.http import Http404
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from campaigns import selectors
from campaigns.models import Membership, Project
from campaigns.services.projects import LS_CONNECTION_FIELDS

OWNER = Membership.Role.OWNER


def role_of(project: Project) -> str:
    """The requesting user's role, as annotated by `selectors.projects_for_user`."""
    return getattr(project, "user_role", "") or ""


class ProjectMember(BasePermission):
    """For views nested under /projects/{project_pk}/: resolves the project once, or 404s, and keeps it on the view."""

    def has_permission(self, request: Request, view: Any) -> bool:
        project = selectors.project_for_member(user=request.user, project_id=view.kwargs["project_pk"])
        if project is None:
            raise Http404
        view.project = project
        return True


class OwnerForActions(BasePermission):
    """Owner-only for the view's `owner_actions`; the project is the view's (nested) or the object (project detail)."""

    message = "Only project owners may do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        project = getattr(view, "project", None)
        if project is None or view.action not in getattr(view, "owner_actions", ()):
            return True
        return role_of(project) == OWNER

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        if not isinstance(obj, Project) or view.action not in getattr(view, "owner_actions", ()):
            return True
        return role_of(obj) == OWNER


def require_owner_for_connection(project: Project, fields: Iterable[str]) -> None:
    """Members may edit a project's settings, but the Label Studio connection (URL, key, project) is the owner's."""
    touched = sorted(set(fields) & set(LS_CONNECTION_FIELDS))
    if touched and role_of(project) != OWNER:
        raise PermissionDenied(f"Only project owners may change the Label Studio connection ({', '.join(touched)}).")
