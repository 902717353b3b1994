"""Self-supervised pretraining runs of a project, newest first."""

from __future__ import annotations

from django.db.models import QuerySet

from campaigns.models import BackbonePretraining, Project


def pretrainings_for_project(*, project: Project) -> QuerySet[BackbonePretraining]:
    return (
        BackbonePretraining.objects.filter(project=project).select_related("created_by").order_by("-created_at", "-pk")
    )
