"""Admin for annotator ops: every changelist and change page loads, state actions go through the service, the
Label Studio key is write-only, immutable records are view-only, and item list pages do not grow with the pool."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse

from campaigns.models import Export, Item, Membership
from tests.factories import (
    AnnotationFactory,
    CycleFactory,
    ItemFactory,
    ModelVersionFactory,
    ProjectFactory,
    ScoreFactory,
    SelectedItemFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

LS_KEY = "ls-admin-key-7e3f0c1d9b2a"


@pytest.fixture
def data() -> dict[str, Any]:
    project = ProjectFactory(ls_api_key=LS_KEY, ls_webhook_secret="hook-admin-secret-55aa")
    item = ItemFactory(project=project, ls_task_id=77, label_error="unknown label 'x'", metadata={"agreement": 0.5})
    cycle = CycleFactory(project=project)
    return {
        "project": project,
        "item": item,
        "annotation": AnnotationFactory(item=item),
        "cycle": cycle,
        "score": ScoreFactory(cycle=cycle),
        "selected": SelectedItemFactory(selection__cycle=CycleFactory(project=project)),
        "model_version": ModelVersionFactory(project=project),
    }


MODELS = [
    ("campaigns", "project"),
    ("campaigns", "item"),
    ("campaigns", "annotation"),
    ("campaigns", "cycle"),
    ("campaigns", "score"),
    ("campaigns", "selection"),
    ("campaigns", "selecteditem"),
    ("models_registry", "modelversion"),
]


@pytest.mark.parametrize(("app", "model"), MODELS)
def test_changelists_and_change_pages_load_without_secrets(
    admin_client: Any, data: dict[str, Any], app: str, model: str
) -> None:
    response = admin_client.get(reverse(f"admin:{app}_{model}_changelist"))
    assert response.status_code == 200
    body = response.content.decode()
    assert LS_KEY not in body and "hook-admin-secret-55aa" not in body
    obj = {
        "project": data["project"],
        "item": data["item"],
        "annotation": data["annotation"],
        "cycle": data["cycle"],
        "score": data["score"],
        "selection": data["selected"].selection,
        "selecteditem": data["selected"],
        "modelversion": data["model_version"],
    }[model]
    response = admin_client.get(reverse(f"admin:{app}_{model}_change", args=[obj.pk]))
    assert response.status_code == 200
    body = response.content.decode()
    assert LS_KEY not in body and "hook-admin-secret-55aa" not in body


def test_filters_and_search_load(admin_client: Any, data: dict[str, Any]) -> None:
    url = reverse("admin:campaigns_item_changelist")
    project = data["project"]
    for params in [
        {"project__id__exact": project.pk, "split__exact": "pool", "state__exact": "active"},
        {"label_source": "none"},
        {"synced": "yes"},
        {"q": data["item"].key},
        {"q": "item-*"},
    ]:
        response = admin_client.get(url, params)
        assert response.status_code == 200, params
        assert data["item"].key in response.content.decode(), params
    response = admin_client.get(url, {"q": "no-such-key"})
    assert data["item"].key not in response.content.decode()
    url = reverse("admin:campaigns_annotation_changelist")
    params = {"project__id__exact": project.pk, "annotator": "ann@example.com", "deleted_at__isempty": "1"}
    assert admin_client.get(url, params).status_code == 200


def test_item_changelist_query_count_is_flat(
    admin_client: Any, data: dict[str, Any], django_assert_max_num_queries: Any
) -> None:
    url = reverse("admin:campaigns_item_changelist")
    admin_client.get(url)  # warm the session and content types
    ItemFactory.create_batch(80, project=data["project"])
    with django_assert_max_num_queries(12):
        response = admin_client.get(url)
    assert response.status_code == 200


@pytest.mark.parametrize(("action", "state"), [("mark_invalid", "invalid"), ("mark_skipped", "skipped")])
def test_state_actions(admin_client: Any, data: dict[str, Any], action: str, state: str) -> None:
    items = ItemFactory.create_batch(3, project=data["project"])
    url = reverse("admin:campaigns_item_changelist")
    picked = [items[0].pk, items[1].pk]
    response = admin_client.post(url, {"action": action, "_selected_action": picked}, follow=True)
    assert response.status_code == 200
    assert "2 item(s) marked" in response.content.decode()
    mine = Item.objects.filter(project=data["project"])
    assert set(mine.filter(state=state).values_list("pk", flat=True)) == set(picked)
    response = admin_client.post(url, {"action": "mark_active", "_selected_action": picked}, follow=True)
    assert "2 item(s) marked active" in response.content.decode()
    assert not mine.exclude(state="active").exists()


def test_ls_key_is_write_only(admin_client: Any, data: dict[str, Any]) -> None:
    project = data["project"]
    url = reverse("admin:campaigns_project_change", args=[project.pk])
    page = admin_client.get(url).content.decode()
    assert 'type="password"' in page and LS_KEY not in page

    def post(**extra: Any) -> Any:
        form = {
            "name": project.name,
            "default_heuristic": "bald",
            "default_mc_iterations": 20,
            "default_budget": 100,
            "annotators_per_task": 1,
            "consensus_rule": "majority",
            "model_config": "{}",
            "ls_url": "",
            "ls_project_id": "",
            "ls_api_key": "",
            "memberships-TOTAL_FORMS": 1,
            "memberships-INITIAL_FORMS": 1,
            "memberships-0-id": Membership.objects.get(project=project).pk,
            "memberships-0-project": project.pk,
            "memberships-0-user": project.owner_id,
            "memberships-0-role": "owner",
            **extra,
        }
        return admin_client.post(url, form)

    assert post(default_budget=42).status_code == 302
    project.refresh_from_db()
    assert (project.default_budget, project.ls_api_key) == (42, LS_KEY)  # empty field kept the key
    assert post(ls_api_key="new-key").status_code == 302
    project.refresh_from_db()
    assert project.ls_api_key == "new-key"
    assert post(clear_ls_api_key="on").status_code == 302
    project.refresh_from_db()
    assert project.ls_api_key == ""
    response = post(default_mc_iterations=5000)
    assert response.status_code == 200  # the form again, with the error
    assert "between 1 and 1000" in response.content.decode()
    response = post(**{"memberships-0-role": "member"})
    assert response.status_code == 200
    assert "always stays an owner" in response.content.decode()
    assert Membership.objects.get(project=project).role == "owner"
    # The creator's row handed to someone else would lock the creator out of their own project.
    response = post(**{"memberships-0-user": UserFactory().pk})
    assert response.status_code == 200 and "their row keeps its user" in response.content.decode()
    assert list(Membership.objects.filter(project=project).values_list("user_id", "role")) == [
        (project.owner_id, "owner")
    ]
    # A name the owner already uses: the form names the field, no server error.
    ProjectFactory(owner=project.owner, name="Taken")
    response = post(name="Taken")
    assert response.status_code == 200 and "you already own a project with this name" in response.content.decode()


def test_members_inline_adds_a_member(admin_client: Any, data: dict[str, Any]) -> None:
    project = data["project"]
    newcomer = UserFactory()
    url = reverse("admin:campaigns_project_change", args=[project.pk])
    owner_membership = Membership.objects.get(project=project)
    form = {
        "name": project.name,
        "default_heuristic": "bald",
        "default_mc_iterations": 20,
        "default_budget": 100,
        "annotators_per_task": 1,
        "consensus_rule": "majority",
        "model_config": "{}",
        "memberships-TOTAL_FORMS": 2,
        "memberships-INITIAL_FORMS": 1,
        "memberships-0-id": owner_membership.pk,
        "memberships-0-project": project.pk,
        "memberships-0-user": project.owner_id,
        "memberships-0-role": "owner",
        "memberships-1-project": project.pk,
        "memberships-1-user": newcomer.pk,
        "memberships-1-role": "member",
    }
    assert admin_client.post(url, form).status_code == 302
    assert Membership.objects.get(project=project, user=newcomer).role == "member"


@pytest.mark.parametrize(
    "model", ["annotation", "cycle", "score", "selection", "selecteditem", "item", "project", "modelversion"]
)
def test_no_add_and_no_delete_from_the_admin(admin_client: Any, data: dict[str, Any], model: str) -> None:
    app = "models_registry" if model == "modelversion" else "campaigns"
    assert admin_client.get(reverse(f"admin:{app}_{model}_add")).status_code == 403


def test_immutable_records_cannot_be_changed(admin_client: Any, data: dict[str, Any]) -> None:
    score = data["score"]
    url = reverse("admin:campaigns_score_change", args=[score.pk])
    response = admin_client.post(url, {"uncertainty": 99})
    assert response.status_code == 403
    score.refresh_from_db()
    assert score.uncertainty == 0.5


def test_connect_as_ml_backend_action_says_what_it_did(admin_client: Any, data: dict[str, Any]) -> None:
    """Issue 17 item 6: alweb registers itself as the project's ML backend from the admin (no secret handled)."""
    project = data["project"]
    url = reverse("admin:campaigns_project_changelist")
    body = {"action": "connect_ml_backend", "_selected_action": [project.pk]}
    page = admin_client.post(url, body, follow=True).content.decode()
    # Not linked to a Label Studio project yet: said with the reason, nothing else happens.
    assert "not connected" in page and "connect the project to Label Studio first" in page


def test_revoke_media_links_action_raises_the_projects_epoch(admin_client: Any, data: dict[str, Any]) -> None:
    """Issue 17 item 5: a leaked task link is revoked from the admin; the next sync hands out new ones."""
    project = data["project"]
    before = project.media_links_epoch
    body = {"action": "revoke_media_links", "_selected_action": [project.pk]}
    page = admin_client.post(reverse("admin:campaigns_project_changelist"), body, follow=True).content.decode()
    assert "Media links revoked for 1 project" in page
    project.refresh_from_db()
    assert project.media_links_epoch == before + 1


def test_exports_are_listed_view_only_with_their_download_link(admin_client: Any, data: dict[str, Any]) -> None:
    export = Export.objects.create(project=data["project"], format="csv", state="queued")
    export.file.save("exports/e.csv", ContentFile(b"key\n"), save=False)
    Export.objects.filter(pk=export.pk).update(state="done", file=export.file.name, rows=0)
    page = admin_client.get(reverse("admin:campaigns_export_changelist")).content.decode()
    assert ">download</a>" in page and "/m/" in page
    assert admin_client.post(reverse("admin:campaigns_export_delete", args=[export.pk])).status_code == 403
