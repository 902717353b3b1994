"""The project page's export card: a form that starts an export (a task) and a status line per export, polled by
htmx while it runs, with the signed download link once done. Thin: each view calls one service or selector."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from campaigns import selectors
from campaigns.models import Export, ExportFormat, ExportState, Project
from campaigns.services.exports import FORMAT_TASKS, export_create, export_download_url
from campaigns.web.access import login_required, member, member_project

RECENT_EXPORTS = 5
POLL_SECONDS = 2


class ExportForm(forms.Form):
    format = forms.ChoiceField(choices=ExportFormat.choices)
    as_of_cycle = forms.IntegerField(
        required=False, min_value=1, label="As of cycle", help_text="Empty: the labels now. N: cycle N's training set."
    )
    include_media = forms.BooleanField(required=False, label="Include the images in the archive")
    include_unlabeled = forms.BooleanField(required=False, label="Unlabeled items too")

    def __init__(self, *args: Any, project: Project, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Only the formats that fit the project's task are offered; the service refuses the others anyway.
        fits = [(value, label) for value, label in ExportFormat.choices if project.task_type in FORMAT_TASKS[value]]
        self.fields["format"].choices = fits  # type: ignore[attr-defined]


def _status(export: Export) -> dict[str, Any]:
    done, total = export.progress.get("done", 0), export.progress.get("total", 0)
    running = export.state in (ExportState.QUEUED, ExportState.RUNNING)
    return {
        "export": export,
        "download_url": export_download_url(export=export),
        "percent": round(100 * done / total) if total else 0,
        "poll_s": POLL_SECONDS if running else None,
    }


def export_card(project: Project) -> dict[str, Any]:
    """What the project page's export card shows: the form and the latest exports."""
    recent = selectors.exports_for_project(project=project)[:RECENT_EXPORTS]
    return {"export_form": ExportForm(project=project), "exports": [_status(e) for e in recent]}


@login_required
@require_POST
def export_start_view(request: HttpRequest, pk: int) -> HttpResponse:
    project = member_project(request, pk=pk)
    form = ExportForm(request.POST, project=project)
    back = reverse("dashboard:project-detail", args=[project.pk]) + "#exports"
    if not form.is_valid():
        for field, errors in form.errors.items():
            messages.error(request, f"Export not started: {field}: {' '.join(str(e) for e in errors)}")
        return redirect(back)
    data = form.cleaned_data
    try:
        export_create(
            project=project,
            user=member(request),
            fmt=data["format"],
            as_of_cycle=data["as_of_cycle"],
            include_media=data["include_media"],
            include_unlabeled=data["include_unlabeled"],
        )
    except ValidationError as exc:
        for field, reasons in exc.message_dict.items():
            messages.error(request, f"Export not started: {field}: {' '.join(reasons)}")
    else:
        messages.success(request, "Export started: the link appears below when the file is ready.")
    return redirect(back)


@login_required
@require_GET
def export_status_view(request: HttpRequest, pk: int, export_id: int) -> HttpResponse:
    project = member_project(request, pk=pk)
    export = selectors.export_of_project(project=project, export_id=export_id)
    if export is None:
        return HttpResponse(status=404)
    return render(request, "campaigns/partials/export_status.html", {"project": project, **_status(export)})
