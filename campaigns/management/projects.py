"""What the management commands share: a project named on the command line by id or by name."""

from __future__ import annotations

from django.core.management.base import CommandError

from campaigns.models import Project


def project_by_ref(ref: str) -> Project:
    """The project with this id, else with this name; a CommandError naming the reference when there is none."""
    teams = Project.objects.filter(sandbox_of__isnull=True)  # a simulation's sandbox is nobody's project
    project = teams.filter(pk=int(ref)).first() if ref.isdigit() else None
    project = project or teams.filter(name=ref).first()
    if project is None:
        raise CommandError(f"no project with id or name {ref!r}")
    return project
