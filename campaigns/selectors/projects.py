"""Project reads, every one scoped by membership: a project the user is not a member of is simply absent
(the API and dashboard answer 404, never 403, and so do not reveal that it exists)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Count, F, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce

from campaigns.models import Cycle, Membership, Project
from campaigns.selectors.item_counts import items_count_annotations
from campaigns.states import OPEN_CYCLE_STATES


def projects_for_user(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[Project]:
    """The user's projects, each annotated with `user_role` (owner or member), newest first. A simulation's sandbox
    is nobody's project (its owner is the source's): left out here, so every list, page and endpoint leaves it out.

    The annotation reuses the membership join of the filter: (project, user) is unique, so one row per project.
    """
    if not user.is_authenticated:
        return Project.objects.none()
    return (
        Project.objects.filter(memberships__user_id=int(user.pk), sandbox_of__isnull=True)
        .annotate(user_role=F("memberships__role"))
        .select_related("owner")
        .order_by("-created_at", "-pk")
    )


def project_for_member(*, user: AbstractBaseUser | AnonymousUser, project_id: int) -> Project | None:
    return projects_for_user(user=user).filter(pk=project_id).first()


def projects_with_counts_for_user(*, user: AbstractBaseUser) -> QuerySet[Project]:
    """The user's projects with item, label and cycle counts (subqueries: a join of items and cycles would multiply;
    item counts from the kept counts, so a million-item project costs what a small one does)."""

    def count_of(qs: QuerySet[Any]) -> Coalesce:
        counted = qs.order_by().values("project").annotate(n=Count("pk")).values("n")
        return Coalesce(Subquery(counted, output_field=IntegerField()), 0)

    open_cycle = Cycle.objects.filter(project=OuterRef("pk"), state__in=OPEN_CYCLE_STATES)
    return projects_for_user(user=user).annotate(
        **items_count_annotations(),
        cycle_count=count_of(Cycle.objects.filter(project=OuterRef("pk"))),
        open_cycle_number=Subquery(open_cycle.values("number")[:1]),
        open_cycle_state=Subquery(open_cycle.values("state")[:1]),
    )


def memberships_for_project(*, project: Project) -> QuerySet[Membership]:
    return Membership.objects.filter(project=project).select_related("user").order_by("user__username")
