"""Who may see what: anonymous people are sent to log in, non-members get 404 on every project URL (the same answer
as a project that does not exist), members see only their own projects."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from campaigns.models import Cycle, Project, Selection
from campaigns.states import CycleState
from tests.campaigns.web.builders import scored_cycle
from tests.campaigns.web.conftest import HTMX
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db


def project_urls(project: Project, number: int) -> list[tuple[str, str]]:
    pk = project.pk
    cycle = [pk, number]
    return [
        ("get", reverse("dashboard:project-detail", args=[pk])),
        ("get", reverse("dashboard:project-import", args=[pk])),
        ("post", reverse("dashboard:project-import", args=[pk])),
        ("get", reverse("dashboard:project-cycles", args=[pk])),
        ("post", reverse("dashboard:cycle-start", args=[pk])),
        ("post", reverse("dashboard:project-pull", args=[pk])),
        ("get", reverse("dashboard:cycle-detail", args=cycle)),
        ("get", reverse("dashboard:cycle-status", args=cycle)),
        ("get", reverse("dashboard:cycle-preview", args=cycle) + "?threshold=0.1&budget=5&strategy=topk"),
        ("post", reverse("dashboard:cycle-select", args=cycle)),
        ("post", reverse("dashboard:cycle-sync", args=cycle)),
        ("post", reverse("dashboard:cycle-cancel", args=cycle)),
        ("post", reverse("dashboard:cycle-retry", args=cycle)),
    ]


def test_anonymous_is_sent_to_login_everywhere(anon: Any, project: Any) -> None:
    cycle = scored_cycle(project, n=5)
    urls = [("get", reverse("dashboard:project-list")), ("get", reverse("dashboard:project-create"))]
    for method, url in urls + project_urls(project, cycle.number):
        response = getattr(anon, method)(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login") + "?next="), url


def test_anonymous_htmx_poll_gets_a_whole_page_redirect_to_login(anon: Any, project: Any) -> None:
    url = reverse("dashboard:project-cycles", args=[project.pk])
    response = anon.get(url, HTTP_HX_CURRENT_URL=f"/projects/{project.pk}/", **HTMX)
    assert response.status_code == 204
    assert response["HX-Redirect"] == f"{reverse('login')}?next=/projects/{project.pk}/"


def test_non_member_gets_404_on_every_project_url_and_changes_nothing(as_outsider: Any, project: Any) -> None:
    cycle = scored_cycle(project, n=5)
    for method, url in project_urls(project, cycle.number):
        data = {"budget": 3, "threshold": 0.0, "strategy": "topk"} if method == "post" else None
        response = getattr(as_outsider, method)(url, data) if data else getattr(as_outsider, method)(url)
        assert response.status_code == 404, url
    cycle.refresh_from_db()
    assert cycle.state == CycleState.SCORED
    assert not Selection.objects.filter(cycle=cycle).exists()
    assert Cycle.objects.filter(project=project).count() == 1


def test_missing_project_and_cycle_are_404_for_members_too(as_owner: Any, project: Any) -> None:
    assert as_owner.get(reverse("dashboard:project-detail", args=[project.pk + 10_000])).status_code == 404
    assert as_owner.get(reverse("dashboard:cycle-detail", args=[project.pk, 99])).status_code == 404


def test_member_sees_only_their_projects(client_for: Any, member: Any, project: Any) -> None:
    ProjectFactory(name="someone else's")
    response = client_for(member).get(reverse("dashboard:project-list"))
    assert response.status_code == 200
    assert b"reviews" in response.content
    assert b"someone else&#x27;s" not in response.content
    assert client_for(member).get(reverse("dashboard:project-detail", args=[project.pk])).status_code == 200


def test_project_list_queries_do_not_grow_with_projects(
    client_for: Any, owner: Any, project: Any, django_assert_max_num_queries: Any
) -> None:
    for i in range(8):
        scored_cycle(ProjectFactory(owner=owner, name=f"p{i}"), n=3)
    client = client_for(owner)
    with django_assert_max_num_queries(6):
        response = client.get(reverse("dashboard:project-list"))
    assert response.content.count(b"Cycle 1") == 8


def test_login_logout_round_trip(anon: Any, owner: Any) -> None:
    page = anon.get(reverse("login"))
    assert page.status_code == 200
    assert b'for="id_username"' in page.content and b'for="id_password"' in page.content
    bad = anon.post(reverse("login"), {"username": "olga", "password": "wrong"})
    assert bad.status_code == 200
    assert b"Please enter a correct username and password" in bad.content
    ok = anon.post(reverse("login"), {"username": "olga", "password": "pw-for-tests"})
    assert ok.status_code == 302 and ok["Location"] == "/"
    assert anon.get("/").status_code == 200
    out = anon.post(reverse("logout"))
    assert out.status_code == 302
    assert anon.get("/").status_code == 302
