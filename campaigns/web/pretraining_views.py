"""The project's "Pretrain backbone" page: a form that requests self-supervised pretraining of the image trunk on
the pool (a task), and the runs with a progress bar polled by htmx while they run. Thin: each view calls one service
or selector."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from campaigns.models import BackbonePretraining, Project, RunState
from campaigns.selectors.pretraining import pretrainings_for_project
from campaigns.services.pretraining import (
    MAX_EPOCHS,
    MIN_SECONDS,
    PretrainingConflict,
    pretraining_cancel,
    pretraining_request,
)
from campaigns.web.access import login_required, member, member_project
from campaigns.web.forms import ServiceErrorsMixin
from engine.ssl import SSLConfig

POLL_SECONDS = 3
RECENT_RUNS = 20
INVALID = 422


class PretrainingForm(ServiceErrorsMixin, forms.Form):
    epochs = forms.IntegerField(initial=SSLConfig.epochs, min_value=1, max_value=MAX_EPOCHS)
    max_seconds = forms.IntegerField(
        initial=600,
        min_value=MIN_SECONDS,
        help_text="Training stops after this many seconds, whatever the epochs.",
        # the upper bound (ALWEB_SSL_MAX_SECONDS) is the service's, shown on this field when exceeded
    )
    flip = forms.BooleanField(
        required=False, help_text="Mirror images in the views: only where a mirrored image means the same."
    )
    use = forms.BooleanField(
        required=False, initial=True, help_text="When done, cycles use the pretrained trunk (frozen) as the backbone."
    )


def _status(run: BackbonePretraining) -> dict[str, Any]:
    done, total = run.progress.get("done", 0), run.progress.get("total", 0)
    running = run.state in (RunState.QUEUED, RunState.RUNNING)
    percent = round(100 * done / total) if total else 0
    return {"run": run, "percent": percent, "poll_s": POLL_SECONDS if running else None}


@login_required
@require_http_methods(["GET", "POST"])
def pretraining_view(request: HttpRequest, pk: int) -> HttpResponse:
    project = member_project(request, pk=pk)
    form = PretrainingForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            run = pretraining_request(project=project, user=member(request), **form.cleaned_data)
        except ValidationError as exc:
            form.add_service_errors(exc)
        except PretrainingConflict as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Pretraining {run.pk} queued: its progress shows below.")
            return redirect("dashboard:pretraining", pk=project.pk)
    runs = [_status(r) for r in pretrainings_for_project(project=project)[:RECENT_RUNS]]
    context = {"project": project, "form": form, "runs": runs}
    return render(request, "campaigns/pretraining.html", context, status=INVALID if form.is_bound else 200)


def _member_run(request: HttpRequest, pk: int, run_id: int) -> tuple[Project, BackbonePretraining]:
    project = member_project(request, pk=pk)
    run = pretrainings_for_project(project=project).filter(pk=run_id).first()
    if run is None:
        raise Http404("No such pretraining")
    return project, run


@login_required
@require_GET
def pretraining_status_view(request: HttpRequest, pk: int, run_id: int) -> HttpResponse:
    project, run = _member_run(request, pk, run_id)
    return render(request, "campaigns/partials/pretraining_status.html", {"project": project, **_status(run)})


@login_required
@require_POST
def pretraining_cancel_view(request: HttpRequest, pk: int, run_id: int) -> HttpResponse:
    project, run = _member_run(request, pk, run_id)
    try:
        pretraining_cancel(run=run, user=member(request))
    except PretrainingConflict as exc:
        messages.error(request, f"Not cancelled: {exc}.")
    else:
        messages.success(request, f"Pretraining {run.pk} cancelled: another may be requested now.")
    return redirect("dashboard:pretraining", pk=project.pk)
