"""The project's "label errors" page: the latest suspects (likely wrong labels, with the model's suggestion) and the
open reviews, and a form that sends chosen suspects back to Label Studio for review. Thin: selectors to read, one
service to act; any member may look and send back."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from campaigns.models import ReviewState
from campaigns.selectors.labels import (
    label_quality_latest,
    label_quality_pending,
    label_reviews_for_project,
    label_suspects_of_run,
    open_reviews_by_item,
)
from campaigns.services.reviews import reviews_request
from campaigns.web.access import login_required, member, member_project

SUSPECTS_SHOWN = 100


@login_required
@require_GET
def label_suspects_view(request: HttpRequest, pk: int) -> HttpResponse:
    project = member_project(request, pk=pk)
    run = label_quality_latest(project=project)
    suspects = list(label_suspects_of_run(run=run)[:SUSPECTS_SHOWN])
    in_review = open_reviews_by_item(item_ids=[s.item_id for s in suspects])
    context = {
        "project": project,
        "run": run,
        "pending": label_quality_pending(project=project),
        "rows": [{"suspect": s, "review": in_review.get(s.item_id)} for s in suspects],
        "reviews": list(label_reviews_for_project(project=project, state=ReviewState.OPEN)[:SUSPECTS_SHOWN]),
        "shown": SUSPECTS_SHOWN,
    }
    return render(request, "campaigns/label_suspects.html", context)


@login_required
@require_POST
def label_review_view(request: HttpRequest, pk: int) -> HttpResponse:
    project = member_project(request, pk=pk)
    back = reverse("dashboard:label-suspects", args=[project.pk])
    try:
        item_ids = [int(v) for v in request.POST.getlist("item")]
        reviews = reviews_request(project=project, item_ids=item_ids, user=member(request))
    except ValueError:
        messages.error(request, "Not sent: item: not an item id.")
    except ValidationError as exc:
        for field, reasons in exc.message_dict.items():
            messages.error(request, f"Not sent: {field}: {' '.join(reasons)}")
    else:
        where = "Label Studio" if project.ls_project_id else "review (no Label Studio project connected yet)"
        messages.success(request, f"{len(reviews)} item(s) sent back to {where}.")
    return redirect(back)
