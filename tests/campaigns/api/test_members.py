"""/api/projects/{id}/members/: owners manage members by username; members only look."""

from __future__ import annotations

from typing import Any

import pytest

from campaigns.models import Membership
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def url(project: Any, username: str = "") -> str:
    return f"/api/projects/{project.pk}/members/" + (f"{username}/" if username else "")


def test_members_list_them(as_member: Any, project: Any, django_assert_max_num_queries: Any) -> None:
    for _ in range(5):
        Membership.objects.create(project=project, user=UserFactory())
    with django_assert_max_num_queries(4):  # token, project, count, page (users joined)
        response = as_member.get(url(project))
    assert response.status_code == 200
    rows = response.json()["results"]
    assert len(rows) == 7
    assert {"username": "olivia", "role": "owner"} in rows


def test_owner_adds_changes_and_removes_a_member(as_owner: Any, project: Any) -> None:
    newcomer = UserFactory(username="nina")
    response = as_owner.post(url(project), {"username": "nina"}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json() == {"username": "nina", "role": "member"}
    response = as_owner.post(url(project), {"username": "nina", "role": "owner"}, format="json")
    assert response.json()["role"] == "owner"
    assert Membership.objects.get(project=project, user=newcomer).role == "owner"
    assert as_owner.delete(url(project, "nina")).status_code == 204
    assert not Membership.objects.filter(project=project, user=newcomer).exists()
    assert as_owner.delete(url(project, "nina")).status_code == 404
    assert as_owner.delete(url(project, "ni%00na")).status_code == 404
    assert as_owner.delete(url(project, "ni na")).status_code == 404


def test_a_new_member_then_sees_the_project(as_owner: Any, project: Any, client_for: Any) -> None:
    newcomer = UserFactory(username="nina")
    assert client_for(newcomer).get(f"/api/projects/{project.pk}/").status_code == 404
    as_owner.post(url(project), {"username": "nina"}, format="json")
    assert client_for(newcomer).get(f"/api/projects/{project.pk}/").status_code == 200


def test_member_cannot_manage_members(as_member: Any, project: Any, member: Any) -> None:
    UserFactory(username="nina")
    assert as_member.post(url(project), {"username": "nina"}, format="json").status_code == 403
    assert as_member.delete(url(project, "olivia")).status_code == 403
    assert as_member.post(url(project), {"username": "mario", "role": "owner"}, format="json").status_code == 403
    assert Membership.objects.get(project=project, user=member).role == "member"


def test_non_member_gets_404(as_outsider: Any, project: Any) -> None:
    assert as_outsider.get(url(project)).status_code == 404
    assert as_outsider.post(url(project), {"username": "oscar"}, format="json").status_code == 404
    assert as_outsider.delete(url(project, "olivia")).status_code == 404


def test_anonymous_gets_401(anon: Any, project: Any) -> None:
    assert anon.get(url(project)).status_code == 401
    assert anon.post(url(project), {"username": "x"}, format="json").status_code == 401


def test_the_creator_stays_an_owner(as_owner: Any, project: Any) -> None:
    response = as_owner.delete(url(project, "olivia"))
    assert response.status_code == 400 and "username" in response.json()
    response = as_owner.post(url(project), {"username": "olivia", "role": "member"}, format="json")
    assert response.status_code == 400 and "role" in response.json()
    assert Membership.objects.get(project=project, user=project.owner).role == "owner"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "nobody-by-that-name"}, "username"),
        ({"username": 42}, "username"),
        ({}, "username"),
        ({"username": "olivia", "role": "admin"}, "role"),
    ],
)
def test_bad_input_names_the_field(as_owner: Any, project: Any, body: dict[str, Any], field: str) -> None:
    response = as_owner.post(url(project), body, format="json")
    assert response.status_code == 400
    assert field in response.json()
