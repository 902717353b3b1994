"""The project's agreement page: how far annotators agree (project, class, the least agreed items) and each
annotator's work. Thin: two selectors, one template; any member may look."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from campaigns import selectors
from campaigns.web.access import login_required, member_project

ITEMS_SHOWN = 50


@login_required
@require_GET
def agreement_view(request: HttpRequest, pk: int) -> HttpResponse:
    project = member_project(request, pk=pk)
    context = {
        "project": project,
        "report": selectors.agreement_for_project(project=project, items_limit=ITEMS_SHOWN),
        "annotators": selectors.annotators_for_project(project=project),
        "items_shown": ITEMS_SHOWN,
    }
    return render(request, "campaigns/agreement.html", context)
