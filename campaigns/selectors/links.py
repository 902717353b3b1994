"""Links out of alweb: the MLflow UI for a model version, Label Studio for a project or a task."""

from __future__ import annotations

from urllib.parse import quote

from django.conf import settings

from campaigns.models import Project
from models_registry.models import ModelVersion


def mlflow_base_url() -> str | None:
    """The MLflow UI, when the tracking URI is a server people can open (not a sqlite file)."""
    uri = str(settings.MLFLOW_TRACKING_URI or "")
    return uri.rstrip("/") if uri.startswith(("http://", "https://")) else None


def mlflow_link(*, model_version: ModelVersion) -> str | None:
    base = mlflow_base_url()
    if base is None:
        return None
    if model_version.registered_name and model_version.registered_version:
        name = quote(model_version.registered_name, safe="")
        return f"{base}/#/models/{name}/versions/{quote(model_version.registered_version, safe='')}"
    return base


def ls_base_url(*, project: Project) -> str:
    """The Label Studio server the project syncs to: its own, else the one in the settings (the same rule as
    `integrations.labelstudio.connect.labelstudio_credentials`)."""
    return str(project.ls_url or settings.LABEL_STUDIO_URL or "").rstrip("/")


def ls_project_link(*, project: Project) -> str | None:
    base = ls_base_url(project=project)
    if not base or project.ls_project_id is None:
        return None
    return f"{base}/projects/{project.ls_project_id}"


def ls_task_link(*, project: Project, task_id: int | None) -> str | None:
    base = ls_project_link(project=project)
    if base is None or task_id is None:
        return None
    return f"{base}/data?task={task_id}"
