"""Dashboard pages for projects: the list, creation, item import, the project page with its live cycles timeline,
and starting a cycle. Thin: parse the form, call one service or selector, render; the services validate."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from campaigns import selectors
from campaigns.ingest.rows import ItemImportError
from campaigns.models import Cycle, Project, Split
from campaigns.services.actions import NothingToSelect, cycle_start
from campaigns.services.cycles import CycleConflict
from campaigns.services.items import items_import_upload
from campaigns.services.projects import project_create as service_project_create
from campaigns.states import OPEN_CYCLE_STATES, WAITING_FOR_LABELS
from campaigns.web.access import is_htmx, login_required, member, member_project
from campaigns.web.export_views import export_card
from campaigns.web.forms import CycleStartForm, ItemImportForm, ProjectCreateForm
from campaigns.web.labelstudio_views import ml_backend_card
from campaigns.web.presenters import poll_seconds, progress_view

# A form the services refused is re-rendered with this status: the page still shows, and scripts and tests can
# tell a refused submission from a fresh form.
INVALID = 422


@login_required
@require_GET
def project_list_view(request: HttpRequest) -> HttpResponse:
    projects = selectors.projects_with_counts_for_user(user=member(request))
    return render(request, "campaigns/project_list.html", {"projects": projects})


@login_required
@require_http_methods(["GET", "POST"])
def project_create_view(request: HttpRequest) -> HttpResponse:
    form = ProjectCreateForm(request.POST) if request.method == "POST" else ProjectCreateForm()
    if request.method == "POST" and form.is_valid():
        try:
            project = service_project_create(owner=member(request), **form.service_kwargs())
        except ValidationError as exc:
            form.add_service_errors(exc)
        else:
            messages.success(request, f"Project “{project.name}” created. Next: import the items to label.")
            return redirect("dashboard:project-import", pk=project.pk)
    status = INVALID if form.is_bound else 200
    return render(request, "campaigns/project_create.html", {"form": form}, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def project_import_view(request: HttpRequest, pk: int) -> HttpResponse:
    project = member_project(request, pk=pk)
    form = ItemImportForm(request.POST, request.FILES) if request.method == "POST" else ItemImportForm()
    import_error: ItemImportError | None = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            result = items_import_upload(
                project=project,
                upload=data["file"],
                fmt=data["fmt"] or None,
                label_from_dir=data["label_from_dir"],
                labels_as_ground_truth=data["labels_as_ground_truth"],
            )
        except ItemImportError as exc:
            import_error = exc
            where = f"{exc.file}, line {exc.line}" if exc.line not in (None, "") else exc.file
            column = f" (column {exc.field})" if exc.field else ""
            form.add_error("file", f"Nothing was imported. {where}{column}: {exc.reason}")
        else:
            messages.success(
                request,
                f"Imported {result.rows} rows: {result.created} new items, {result.unchanged} already there, "
                f"{result.labeled} labels applied.",
            )
            for conflict in result.conflict_rows[:10]:
                messages.warning(
                    request, f"{conflict['file']}, line {conflict['line']} ({conflict['key']}): {conflict['reason']}"
                )
            if result.conflicts:
                messages.warning(
                    request, f"{result.conflicts} rows conflict with items already there and were not applied."
                )
            return redirect("dashboard:project-detail", pk=project.pk)
    status = INVALID if form.is_bound else 200
    context = {"project": project, "form": form, "import_error": import_error}
    return render(request, "campaigns/project_import.html", context, status=status)


def _refresh_key(project: Project) -> str:
    """Changes when the project page's static parts would: a new model version, or the open cycle finishing."""
    versions = project.model_versions.count()
    open_number = Cycle.objects.filter(project=project, state__in=OPEN_CYCLE_STATES).values_list("number", flat=True)
    return f"{versions}-{open_number.first() or 0}"


def _timeline(project: Project) -> dict[str, Any]:
    cycles = list(selectors.cycles_for_project(project=project))
    rows = []
    poll: float | None = None
    for cycle in cycles:
        labeled = selected = None
        if cycle.state in WAITING_FOR_LABELS:
            labeled = selectors.selected_items_labeled_count(cycle=cycle)
            selected = cycle.selection.size if hasattr(cycle, "selection") else 0
        seconds = poll_seconds(cycle)
        if seconds is not None:
            poll = seconds if poll is None else min(poll, seconds)
        rows.append({"cycle": cycle, "progress": progress_view(cycle, labeled=labeled, selected=selected)})
    return {"project": project, "cycle_rows": rows, "poll_s": poll, "refresh_key": _refresh_key(project)}


def _start_form_initial(project: Project) -> dict[str, Any]:
    return {
        "budget": project.default_budget,
        "heuristic": project.default_heuristic,
        "mc_iterations": project.default_mc_iterations,
        "strategy": "topk",
        "seed": 0,
        "auto_advance": True,
    }


def _project_page(
    request: HttpRequest,
    project: Project,
    start_form: CycleStartForm,
    *,
    status: int = 200,
    conflict: Cycle | None = None,
) -> HttpResponse:
    curve = selectors.project_learning_curve(project=project)
    versions = list(selectors.model_versions_for_project(project=project, newest_first=True))
    counts = selectors.items_count_by_split(project=project)
    count_rows = []
    for split in Split:
        row = counts["by_split"].get(split.value, {"total": 0, "labeled": 0})
        count_rows.append({"split": split.label, **row, "unlabeled": row["total"] - row["labeled"]})
    context = {
        **_timeline(project),
        "counts": counts,
        "count_rows": count_rows,
        "unlabeled_total": counts["total"] - counts["labeled"],
        "state_counts": selectors.items_count_by_state(project=project),
        "ls_link": selectors.ls_project_link(project=project),
        "curve": curve,
        "curve_meaningful": any(p["meaningful"] for p in curve),
        "curve_test_labels": max((p["test_labels"] for p in curve), default=0),
        "curve_min_test_labels": selectors.CURVE_MIN_TEST_LABELS,
        "stopping": selectors.curve_stopping_suggestion(curve=curve),
        "label_balance": selectors.items_label_balance(project=project),
        "selection_balance": selectors.selected_items_label_balance(project=project),
        "versions": [{"mv": mv, "mlflow": selectors.mlflow_link(model_version=mv)} for mv in versions],
        "mlflow_base": selectors.mlflow_base_url(),
        "start_form": start_form,
        "conflict": conflict,
        **export_card(project),
        **ml_backend_card(project),
    }
    return render(request, "campaigns/project_detail.html", context, status=status)


@login_required
@require_GET
def project_detail_view(request: HttpRequest, pk: int) -> HttpResponse:
    project = member_project(request, pk=pk)
    return _project_page(request, project, CycleStartForm(initial=_start_form_initial(project)))


@login_required
@require_GET
def project_cycles_view(request: HttpRequest, pk: int) -> HttpResponse:
    """The cycles timeline alone, polled by htmx while a cycle is open. When the rest of the page is out of date
    (a model was trained, the open cycle finished) it asks htmx to reload the whole page instead."""
    project = member_project(request, pk=pk)
    seen = request.GET.get("seen")
    if is_htmx(request) and seen is not None and seen != _refresh_key(project):
        response = HttpResponse(status=204)
        response["HX-Refresh"] = "true"
        return response
    return render(request, "campaigns/partials/cycles_timeline.html", _timeline(project))


@login_required
@require_POST
def cycle_start_view(request: HttpRequest, pk: int) -> HttpResponse:
    project = member_project(request, pk=pk)
    form = CycleStartForm(request.POST)
    conflict: Cycle | None = None
    if form.is_valid():
        data = form.cleaned_data
        try:
            cycle = cycle_start(
                project=project,
                user=member(request),
                budget=data["budget"],
                threshold=data["threshold"],
                heuristic=data["heuristic"],
                mc_iterations=data["mc_iterations"],
                strategy=data["strategy"],
                strategy_params=data["strategy_params"],
                seed=data["seed"],
                auto_advance=data["auto_advance"],
            )
        except ValidationError as exc:
            form.add_service_errors(exc)
        except NothingToSelect as exc:
            form.add_error(None, f"Nothing to select: {exc}.")
        except CycleConflict:
            # Said next to the start button, with a link to the cycle in the way (the template renders it).
            conflict = Cycle.objects.filter(project=project, state__in=OPEN_CYCLE_STATES).first()
            if conflict is None:  # it closed between the conflict and this read: trying again will work
                form.add_error(None, "Another cycle was open a moment ago. Please try again.")
        else:
            messages.success(request, f"Cycle {cycle.number} started.")
            return redirect("dashboard:cycle-detail", pk=project.pk, number=cycle.number)
    return _project_page(request, project, form, status=INVALID, conflict=conflict)
