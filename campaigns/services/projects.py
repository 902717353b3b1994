"""Project writes: creation with validated labels and split ratios, membership."""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from campaigns.ingest.rows import validate_split_ratios
from campaigns.models import Membership, Project, TaskType


def validate_labels(labels: Any) -> list[str]:
    if not isinstance(labels, list) or not labels:
        raise ValidationError({"labels": "must be a non-empty list of label names"})
    clean = []
    for label in labels:
        if not isinstance(label, str) or not label.strip():
            raise ValidationError({"labels": f"every label must be a non-empty string, got {label!r}"})
        if len(label) > 200:
            raise ValidationError({"labels": f"label {label[:20]!r}... is longer than 200 characters"})
        clean.append(label.strip())
    if len(set(clean)) != len(clean):
        raise ValidationError({"labels": "labels must be unique"})
    return clean


@transaction.atomic
def project_create(
    *,
    owner: AbstractBaseUser,
    name: str,
    task_type: str,
    labels: list[str],
    split_ratios: dict[str, float] | None = None,
    model_config: dict[str, Any] | None = None,
    **options: Any,
) -> Project:
    """Create a project owned by `owner` (who becomes its first member, role owner)."""
    if task_type not in TaskType.values:
        raise ValidationError({"task_type": f"must be one of {', '.join(TaskType.values)}"})
    if not name or not name.strip():
        raise ValidationError({"name": "must not be empty"})
    project = Project(
        owner=owner,
        name=name.strip(),
        task_type=task_type,
        labels=validate_labels(labels),
        model_config=model_config or {},
        ls_webhook_secret=secrets.token_urlsafe(32),
        **options,
    )
    if split_ratios is not None:
        try:
            project.split_ratios = validate_split_ratios(split_ratios)
        except ValueError as exc:
            raise ValidationError({"split_ratios": str(exc)}) from exc
    project.full_clean(exclude=["owner"], validate_constraints=True)
    project.save()
    Membership.objects.create(project=project, user=owner, role=Membership.Role.OWNER)
    return project


def project_add_member(*, project: Project, user: AbstractBaseUser, role: str = Membership.Role.MEMBER) -> Membership:
    membership, _ = Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})
    return membership
