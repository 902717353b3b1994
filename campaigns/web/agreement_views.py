"""The project's agreement page: how far annotators agree (project, class, the least agreed items), each
annotator's work, and the project's overlap settings (annotators per task, consensus rule). Thin: two selectors,
one form through the project service, one template; any member may look and change the overlap (as in the API)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from campaigns import selectors
from campaigns.services.projects import project_update
from campaigns.web.access import login_required, member_project
from campaigns.web.forms import OverlapForm, overlap_values

ITEMS_SHOWN = 50
INVALID = 422


@login_required
@require_http_methods(["GET", "POST"])
def agreement_view(request: HttpRequest, pk: int) -> HttpResponse:
    project = member_project(request, pk=pk)
    initial = {"annotators_per_task": project.annotators_per_task, "consensus_rule": project.consensus_rule}
    form = OverlapForm(request.POST) if request.method == "POST" else OverlapForm(initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            project_update(project=project, **overlap_values(form.cleaned_data))
        except ValidationError as exc:
            form.add_service_errors(exc)
        else:
            messages.success(request, "Overlap saved: labels are resolved again and Label Studio is updated.")
            return redirect("dashboard:agreement", pk=project.pk)
    context = {
        "project": project,
        "report": selectors.agreement_for_project(project=project, items_limit=ITEMS_SHOWN),
        "annotators": selectors.annotators_for_project(project=project),
        "items_shown": ITEMS_SHOWN,
        "overlap_form": form,
    }
    return render(request, "campaigns/agreement.html", context, status=INVALID if form.is_bound else 200)
