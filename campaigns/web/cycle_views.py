"""The cycle page: score histogram with a threshold slider and a budget, a live preview of what would be selected,
and the buttons that move the cycle on (select, sync, pull, cancel, retry). Thin: each calls one service."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from campaigns import selectors
from campaigns.models import Cycle
from campaigns.services.actions import cycle_retry_and_resume, cycle_sync_request, project_pull_request
from campaigns.services.cycles import CycleConflict, InvalidTransition, cycle_cancel
from campaigns.services.params import SelectionParams
from campaigns.services.selection import selection_make, selection_preview
from campaigns.states import OPEN_CYCLE_STATES, WAITING_FOR_LABELS, CycleState
from campaigns.web.access import is_htmx, login_required, member_cycle, member_project
from campaigns.web.forms import SelectionForm
from campaigns.web.presenters import poll_seconds, progress_view

S = CycleState
INVALID = 422
PREVIEW_ROWS = 20
# The slider moves in this many steps across the scores' range: the stored fine histogram's resolution.
SLIDER_STEPS = 200


def _selection_initial(cycle: Cycle, histogram: dict[str, Any]) -> dict[str, Any]:
    threshold = cycle.threshold if cycle.threshold is not None else histogram.get("min")
    return {"threshold": threshold, "budget": cycle.budget, "strategy": cycle.strategy}


def _preview(cycle: Cycle, form: SelectionForm) -> dict[str, Any] | None:
    """Run the preview for a valid form; None (with the errors on the form) when the service refuses."""
    if not form.is_valid():
        return None
    data = form.cleaned_data
    try:
        params = SelectionParams.for_cycle(
            cycle, budget=data["budget"], threshold=data["threshold"], strategy=data["strategy"]
        )
        preview = selection_preview(cycle=cycle, params=params, show=PREVIEW_ROWS)
    except ValidationError as exc:
        form.add_service_errors(exc)
        return None
    count = preview["histogram"].get("count") or 0
    # The threshold's scale in words: the share of the scored pool it lets through.
    preview["share"] = 100 * preview["qualifying"] / count if count else None
    keys = selectors.items_keys(item_ids=[row["item_id"] for row in preview["items"]])
    preview["rows"] = [{**row, "key": keys.get(row["item_id"], "?")} for row in preview["items"]]
    return preview


def _progress(cycle: Cycle) -> dict[str, Any]:
    labeled = selected = None
    if cycle.state in WAITING_FOR_LABELS and hasattr(cycle, "selection"):
        labeled, selected = selectors.selected_items_labeled_count(cycle=cycle), cycle.selection.size
    return {"progress": progress_view(cycle, labeled=labeled, selected=selected), "poll_s": poll_seconds(cycle)}


def _cycle_page(
    request: HttpRequest, cycle: Cycle, form: SelectionForm | None = None, status: int = 200
) -> HttpResponse:
    project = cycle.project
    histogram = selectors.scores_histogram(cycle=cycle) if selectors.cycle_has_scores(cycle=cycle) else None
    can_select = cycle.state == S.SCORED and histogram is not None
    preview = None
    # A refused "select" comes with the person's values and errors (`form`); then the preview is left out.
    if can_select and histogram is not None and form is None:
        form = SelectionForm(data=_selection_initial(cycle, histogram))
        preview = _preview(cycle, form)
    rows, selected_total = selectors.selected_items_first(cycle=cycle)
    # `item_ls_task_id` is annotated by the selector: an item synced by an earlier cycle keeps its one LS task.
    selected = [
        {
            "si": si,
            "task_link": selectors.ls_task_link(
                project=project, task_id=si.ls_task_id or getattr(si, "item_ls_task_id", None)
            ),
        }
        for si in rows
    ]
    slider = None
    if histogram is not None:
        lo, hi = histogram["min"], histogram["max"]
        slider = {"min": lo, "max": hi, "step": (hi - lo) / SLIDER_STEPS if hi > lo else 1}
    context = {
        "project": project,
        "cycle": cycle,
        **_progress(cycle),
        "histogram": histogram,
        "slider": slider,
        "form": form,
        "preview": preview,
        "can_select": can_select,
        "selected": selected,
        "selected_total": selected_total,
        "selection": getattr(cycle, "selection", None),
        "model_version": cycle.model_version,
        "mlflow": selectors.mlflow_link(model_version=cycle.model_version) if cycle.model_version else None,
        "ls_link": selectors.ls_project_link(project=project),
        "is_open": cycle.state in OPEN_CYCLE_STATES,
    }
    return render(request, "campaigns/cycle_detail.html", context, status=status)


@login_required
@require_GET
def cycle_detail_view(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    return _cycle_page(request, member_cycle(request, pk=pk, number=number))


@login_required
@require_GET
def cycle_status_view(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    """The state and progress bar, polled by htmx. When the state changed since the page was drawn, the page's other
    parts (histogram, buttons, selection) are stale too: htmx is told to reload the page."""
    cycle = member_cycle(request, pk=pk, number=number)
    seen = request.GET.get("seen")
    if is_htmx(request) and seen is not None and seen != cycle.state:
        response = HttpResponse(status=204)
        response["HX-Refresh"] = "true"
        return response
    return render(request, "campaigns/partials/cycle_status.html", {"cycle": cycle, **_progress(cycle)})


@login_required
@require_GET
def cycle_preview_view(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    """What the slider and budget would select, as a partial; errors go next to their inputs (out-of-band swaps)."""
    cycle = member_cycle(request, pk=pk, number=number)
    form = SelectionForm(data=request.GET)
    preview = _preview(cycle, form) if selectors.cycle_has_scores(cycle=cycle) else None
    if not selectors.cycle_has_scores(cycle=cycle):
        form.is_valid()
        form.add_error(None, "This cycle has no scores yet: the preview needs a scored cycle.")
    # 200 even when refused: htmx does not swap 4xx responses, and the errors are the content to show.
    context = {"cycle": cycle, "form": form, "preview": preview, "oob": True}
    return render(request, "campaigns/partials/selection_preview.html", context)


def _back(cycle: Cycle) -> HttpResponseRedirect:
    return redirect("dashboard:cycle-detail", pk=cycle.project_id, number=cycle.number)


@login_required
@require_POST
def cycle_select_view(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    cycle = member_cycle(request, pk=pk, number=number)
    form = SelectionForm(data=request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            params = SelectionParams.for_cycle(
                cycle, budget=data["budget"], threshold=data["threshold"], strategy=data["strategy"]
            )
            selection = selection_make(cycle=cycle, params=params)
        except ValidationError as exc:
            form.add_service_errors(exc)
        except InvalidTransition as exc:
            messages.error(request, f"Nothing was selected: {exc}.")
            return _back(cycle)
        else:
            messages.success(request, f"Selected {selection.size} items. Next: send them to Label Studio.")
            return _back(cycle)
    return _cycle_page(request, cycle, form, status=INVALID)


@login_required
@require_POST
def cycle_sync_view(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    cycle = member_cycle(request, pk=pk, number=number)
    try:
        cycle_sync_request(cycle=cycle)
    except InvalidTransition as exc:
        messages.error(request, f"Not sent: {exc}.")
    else:
        messages.success(request, "Sending the selected items to Label Studio. This page updates as it goes.")
    return _back(cycle)


@login_required
@require_POST
def cycle_cancel_view(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    cycle = member_cycle(request, pk=pk, number=number)
    try:
        cycle_cancel(cycle=cycle)
    except InvalidTransition:
        messages.error(request, f"Cycle {cycle.number} is {cycle.get_state_display().lower()}: it cannot be cancelled.")
    else:
        messages.success(request, f"Cycle {cycle.number} cancelled. Its items go back to the pool.")
    return _back(cycle)


@login_required
@require_POST
def cycle_retry_view(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    cycle = member_cycle(request, pk=pk, number=number)
    try:
        stage = cycle_retry_and_resume(cycle=cycle)
    except InvalidTransition:
        messages.error(request, f"Only a failed cycle can be retried; cycle {cycle.number} is {cycle.state}.")
    except CycleConflict:
        messages.error(request, "Another cycle of this project is open: finish or cancel it before retrying this one.")
    else:
        messages.success(request, f"Retrying cycle {cycle.number} from {stage}.")
    return _back(cycle)


@login_required
@require_POST
def project_pull_view(request: HttpRequest, pk: int) -> HttpResponse:
    project = member_project(request, pk=pk)
    try:
        project_pull_request(project=project)
    except InvalidTransition as exc:
        messages.error(request, f"Not pulled: {exc}.")
    else:
        messages.success(request, "Pulling annotations from Label Studio now.")
    # Back where the button was pressed (the cycle page or the project page), if that is one of ours.
    project_url = reverse("dashboard:project-detail", args=[project.pk])
    back = request.POST.get("next", "")
    return redirect(back if back.startswith(project_url) else project_url)
