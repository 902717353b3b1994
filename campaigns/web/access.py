"""Login for dashboard views, with one twist for htmx: a poll or preview whose session expired gets an
HX-Redirect to the login page (a whole-page navigation) instead of a login form swapped into a table cell."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import resolve_url

from campaigns import selectors
from campaigns.models import Cycle, Project

View = Callable[..., HttpResponse]


def is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


def member(request: HttpRequest) -> AbstractBaseUser:
    """The signed-in user of a view behind `login_required` (typed: never anonymous there)."""
    user = request.user
    assert isinstance(user, AbstractBaseUser), "member() used on a view without login_required"
    return user


def login_required(view: View) -> View:
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.user.is_authenticated:
            return view(request, *args, **kwargs)
        if is_htmx(request):
            current = request.headers.get("HX-Current-URL") or request.get_full_path()
            response = HttpResponse(status=204)
            response["HX-Redirect"] = redirect_to_login(current, resolve_url(settings.LOGIN_URL)).url
            return response
        return redirect_to_login(request.get_full_path(), resolve_url(settings.LOGIN_URL))

    return wrapped


def member_project(request: HttpRequest, *, pk: int) -> Project:
    """The signed-in member's project, or 404: a project someone is not a member of looks like one that does not
    exist (no way to probe which ids exist)."""
    project = selectors.project_for_member(user=member(request), project_id=pk)
    if project is None:
        raise Http404("No such project")
    return project


def member_cycle(request: HttpRequest, *, pk: int, number: int) -> Cycle:
    """The signed-in member's cycle `number` of project `pk`, or 404 (as for projects)."""
    cycle = selectors.cycle_for_member(user=member(request), project_id=pk, number=number)
    if cycle is None:
        raise Http404("No such cycle")
    return cycle
