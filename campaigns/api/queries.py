"""Reads the API needs, scoped to what the requesting user may see. To be folded into `campaigns.selectors`.

Every project-scoped read starts from a membership, so a project the user is not a member of is simply absent
(the API answers 404, never 403, and so does not reveal that it exists).
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import F, QuerySet

from campaigns.models import Annotation, Item, Membership, Project
from models_registry.models import ModelVersion


def projects_for_user(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[Project]:
    """The user's projects, each annotated with `user_role` (owner or member), newest first.

    The annotation reuses the membership join of the filter: (project, user) is unique, so one row per project.
    """
    if not user.is_authenticated:
        return Project.objects.none()
    return (
        Project.objects.filter(memberships__user_id=int(user.pk))
        .annotate(user_role=F("memberships__role"))
        .select_related("owner")
        .order_by("-created_at", "-pk")
    )


def project_for_member(*, user: AbstractBaseUser | AnonymousUser, project_id: int) -> Project | None:
    return projects_for_user(user=user).filter(pk=project_id).first()


def memberships_for_project(*, project: Project) -> QuerySet[Membership]:
    return Membership.objects.filter(project=project).select_related("user").order_by("user__username")


def items_for_project(
    *,
    project: Project,
    split: str | None = None,
    labeled: bool | None = None,
    state: str | None = None,
    key: str | None = None,
    search: str | None = None,
) -> QuerySet[Item]:
    """Items in id order. `key` is exact (served by the (project, key) unique index); `search` is a substring match
    that scans the project's items, so prefer `key` or a narrower filter on very large projects."""
    qs = Item.objects.filter(project=project)
    if split:
        qs = qs.filter(split=split)
    if labeled is not None:
        qs = qs.filter(label__isnull=not labeled)
    if state:
        qs = qs.filter(state=state)
    if key:
        qs = qs.filter(key=key)
    if search:
        qs = qs.filter(key__contains=search)
    return qs.order_by("pk")


def annotations_for_project(
    *, project: Project, item_id: int | None = None, annotator: str | None = None, deleted: bool | None = None
) -> QuerySet[Annotation]:
    qs = Annotation.objects.filter(project=project)
    if item_id is not None:
        qs = qs.filter(item_id=item_id)
    if annotator:
        qs = qs.filter(annotator=annotator)
    if deleted is not None:
        qs = qs.filter(deleted_at__isnull=not deleted)
    return qs.order_by("pk")


def model_versions_for_project(*, project: Project) -> QuerySet[ModelVersion]:
    return ModelVersion.objects.filter(project=project).order_by("version")
