"""The project's "Compare strategies" page: a form that requests a simulation run (a task), the runs with a progress
bar polled by htmx while they run, and a finished run's report (per arm AUC and labels fraction with their 95%
intervals, the recommendation, the mean curves as a chart). Thin: each view calls one service or selector."""

from __future__ import annotations

import math
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from campaigns import selectors
from campaigns.models import Heuristic, Project, SimulationRun, SimulationState, Strategy
from campaigns.services.comparison import BASELINE, MAX_BUDGET, MAX_CYCLES, MAX_SEEDS
from campaigns.services.simulation_runs import SimulationConflict, simulation_request, simulation_retry
from campaigns.web.access import login_required, member, member_project
from campaigns.web.forms import ServiceErrorsMixin

POLL_SECONDS = 3
RECENT_RUNS = 20
INVALID = 422


class SimulationForm(ServiceErrorsMixin, forms.Form):
    strategies = forms.MultipleChoiceField(
        choices=[(v, label) for v, label in Strategy.choices if v != BASELINE],
        widget=forms.CheckboxSelectMultiple,
        initial=[Strategy.TOPK],
        help_text="Each is compared with random sampling, which always runs.",
    )
    seeds = forms.IntegerField(initial=3, min_value=2, max_value=MAX_SEEDS, help_text="Paired seeds: 2 at least.")
    cycles = forms.IntegerField(initial=4, min_value=1, max_value=MAX_CYCLES)
    budget = forms.IntegerField(initial=20, min_value=1, max_value=MAX_BUDGET, help_text="Labels per cycle.")
    heuristic = forms.ChoiceField(choices=Heuristic.choices)
    noise_rate = forms.FloatField(
        initial=0.0,
        required=False,
        label="Annotator error rate",
        help_text="The simulated annotator's share of wrong answers (0.1: one in ten); 0: always right.",
    )
    annotators = forms.CharField(
        required=False,
        label="Several annotators (error rates)",
        help_text="Instead, e.g. 0.05, 0.2, 0.3: each task is answered by the project's annotators per task of "
        "them, the majority is the label.",
    )

    def __init__(self, *args: Any, project: Project, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["heuristic"].initial = project.default_heuristic

    def clean_annotators(self) -> list[float]:
        parts = [p.strip() for p in self.cleaned_data["annotators"].replace(";", ",").split(",") if p.strip()]
        try:
            return [float(p) for p in parts]
        except ValueError:
            raise ValidationError("Give error rates separated by commas, e.g. 0.05, 0.2, 0.3.") from None


def _status(run: SimulationRun) -> dict[str, Any]:
    done, total = run.progress.get("done", 0), run.progress.get("total", 0)
    running = run.state in (SimulationState.QUEUED, SimulationState.RUNNING)
    percent = round(100 * done / total) if total else 0
    return {"run": run, "percent": percent, "poll_s": POLL_SECONDS if running else None}


def _run_of(request: HttpRequest, pk: int, run_id: int) -> tuple[Project, SimulationRun]:
    project = member_project(request, pk=pk)
    run = selectors.simulation_of_project(project=project, run_id=run_id)
    if run is None:
        raise Http404("No such simulation")
    return project, run


@login_required
@require_http_methods(["GET", "POST"])
def simulations_view(request: HttpRequest, pk: int) -> HttpResponse:
    project = member_project(request, pk=pk)
    form = SimulationForm(request.POST or None, project=project)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            run = simulation_request(
                project=project,
                user=member(request),
                strategies=data["strategies"],
                seeds=data["seeds"],
                cycles=data["cycles"],
                budget=data["budget"],
                heuristic=data["heuristic"],
                noise_rate=data["noise_rate"] or 0.0,
                annotators=data["annotators"],
            )
        except ValidationError as exc:
            form.add_service_errors(exc)
        except SimulationConflict as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Simulation {run.pk} queued: its progress shows below.")
            return redirect("dashboard:simulations", pk=project.pk)
    runs = [_status(r) for r in selectors.simulations_for_project(project=project)[:RECENT_RUNS]]
    status = INVALID if form.is_bound else 200
    return render(
        request, "campaigns/simulations.html", {"project": project, "form": form, "runs": runs}, status=status
    )


@login_required
@require_GET
def simulation_status_view(request: HttpRequest, pk: int, run_id: int) -> HttpResponse:
    project, run = _run_of(request, pk, run_id)
    status = _status(run)
    if request.GET.get("refresh") and status["poll_s"] is None:
        # The report page polls its run: once finished, the whole page reloads to draw the report.
        response = HttpResponse(status=204)
        response["HX-Refresh"] = "true"
        return response
    return render(
        request,
        "campaigns/partials/simulation_status.html",
        {"project": project, "refresh": bool(request.GET.get("refresh")), **status},
    )


def _estimate(values: list[float | None]) -> dict[str, float | None]:
    value, low, high = [*values, None, None, None][:3]
    return {"value": value, "low": low, "high": high}


def report_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One table row per arm: the estimates by name (a None end of an interval: never reached)."""
    return [
        {
            "strategy": arm["strategy"],
            "baseline": arm["strategy"] == BASELINE,
            "auc": _estimate(arm["auc"]),
            "gain": _estimate(arm["auc_gain_vs_random"]),
            "fraction": _estimate(arm["labels_fraction_vs_random"]),
        }
        for arm in report.get("arms", [])
    ]


def report_curves(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The chart's input: each arm's mean curve as points."""
    return [
        {"label": arm["strategy"], "points": [{"x": x, "y": y} for x, y in arm["curve"] if math.isfinite(y)]}
        for arm in report.get("arms", [])
    ]


@login_required
@require_GET
def simulation_detail_view(request: HttpRequest, pk: int, run_id: int) -> HttpResponse:
    project, run = _run_of(request, pk, run_id)
    context = {
        "project": project,
        **_status(run),
        "rows": report_rows(run.report),
        "curves": report_curves(run.report),
    }
    return render(request, "campaigns/simulation_detail.html", context)


@login_required
@require_POST
def simulation_retry_view(request: HttpRequest, pk: int, run_id: int) -> HttpResponse:
    _, run = _run_of(request, pk, run_id)
    try:
        simulation_retry(run=run)
    except SimulationConflict as exc:
        messages.error(request, f"Not retried: {exc}")
    else:
        messages.success(request, f"Simulation {run.pk} queued again.")
    return redirect("dashboard:simulations", pk=pk)
