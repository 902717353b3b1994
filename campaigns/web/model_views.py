"""The champion model's files from the dashboard: the same zip as GET /api/projects/{id}/model/download/, for
members signed in to the dashboard (a non-member gets 404, as for every project page)."""

from __future__ import annotations

from django.contrib import messages
from django.http import FileResponse, HttpRequest
from django.http.response import HttpResponseBase
from django.shortcuts import redirect
from django.views.decorators.http import require_GET

from campaigns.services.predictions import NoChampion, champion_archive
from campaigns.web.access import login_required, member_project


# login_required is typed for HttpResponse; it passes this view's streamed file (an HttpResponseBase) through as is.
@login_required  # type: ignore[arg-type]
@require_GET
def model_download_view(request: HttpRequest, pk: int) -> HttpResponseBase:
    project = member_project(request, pk=pk)
    try:
        name, path = champion_archive(project=project)
    except NoChampion as exc:
        messages.error(request, str(exc))
        return redirect("dashboard:project-detail", pk=project.pk)
    handle = path.open("rb")
    path.unlink()  # the open handle keeps the data until the response is sent; nothing is left behind
    return FileResponse(handle, as_attachment=True, filename=name, content_type="application/zip")
