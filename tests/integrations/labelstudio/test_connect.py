"""Connecting alweb projects to a real Label Studio: create per task type, link with validation, webhook, retries."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from campaigns.models import Cycle, Project
from campaigns.services.projects import project_update
from integrations.labelstudio import client as lsc
from integrations.labelstudio import connect
from integrations.labelstudio.client import LabelStudio
from integrations.labelstudio.connect import labelstudio_connect_project
from integrations.labelstudio.label_config import TASK_TYPES, build_label_config, info_for, validate_label_config
from integrations.labelstudio.sync import cycle_sync_to_labelstudio
from tests.integrations.labelstudio.builders import LABELS, cold_cycle, make_project

pytestmark = [pytest.mark.django_db, pytest.mark.integration]


@pytest.mark.parametrize("task_type", TASK_TYPES)
def test_creates_the_ls_project_for_each_task_type(
    ls_settings: Any, ls_pat_client: LabelStudio, task_type: str
) -> None:
    project = make_project(task_type, n=0)
    linked = labelstudio_connect_project(project=project)
    assert linked.ls_project_id is not None and linked.ls_url == ls_settings.LABEL_STUDIO_URL
    assert linked.ls_api_key == ""  # the key stays in the settings; the project only falls back to it
    info = lsc.get_project(ls_pat_client, linked.ls_project_id)
    assert info.sampling == lsc.UNCERTAINTY_SAMPLING
    assert validate_label_config(info.label_config, task_type, LABELS) == info_for(task_type, LABELS)  # type: ignore[arg-type]
    hooks = lsc._request(ls_pat_client, "GET", "api/webhooks/", params={"project": linked.ls_project_id})
    (hook,) = hooks
    assert hook["url"] == connect.webhook_url(linked)
    assert hook["url"].endswith(f"/labelstudio/webhook/{project.pk}/")
    assert hook["headers"] == {lsc.WEBHOOK_SECRET_HEADER: project.ls_webhook_secret}
    assert set(hook["actions"]) == set(connect.WEBHOOK_ACTIONS)


def test_connect_twice_and_after_a_lost_save_reuses_one_ls_project(
    ls_settings: Any, ls_pat_client: LabelStudio
) -> None:
    project = make_project(n=0)
    first = labelstudio_connect_project(project=project)
    assert labelstudio_connect_project(project=first).ls_project_id == first.ls_project_id
    # A crash after LS created the project but before alweb saved its id: the retry adopts it.
    Project.objects.filter(pk=project.pk).update(ls_project_id=None)
    again = labelstudio_connect_project(project=Project.objects.get(pk=project.pk))
    assert again.ls_project_id == first.ls_project_id
    hooks = lsc._request(ls_pat_client, "GET", "api/webhooks/", params={"project": first.ls_project_id})
    assert len(hooks) == 1


def test_a_lost_save_is_found_past_the_first_page_of_same_titled_projects(
    ls_settings: Any, ls_pat_client: LabelStudio, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Other alweb installs sharing this LS title their projects "(alweb <pk>)" with the same pks: the retry must
    read every page of matches, not only the first, or it makes a second LS project."""
    monkeypatch.setattr(connect, "FIND_PAGE_SIZE", 2)
    project = make_project(n=0)
    first = labelstudio_connect_project(project=project)
    title = lsc.get_project(ls_pat_client, first.ls_project_id or 0).title
    for n in range(5):  # newer projects, same title, another install's marker: listed before ours
        lsc.create_project(
            ls_pat_client,
            title=title,
            description=f"Created by alweb for project {project.pk}. alweb-other{n}",
            label_config=build_label_config("text_classification", LABELS),
        )
    Project.objects.filter(pk=project.pk).update(ls_project_id=None)
    again = labelstudio_connect_project(project=Project.objects.get(pk=project.pk))
    assert again.ls_project_id == first.ls_project_id


def test_a_project_id_typed_in_is_checked_before_the_first_sync(ls_settings: Any, ls_pat_client: LabelStudio) -> None:
    """An LS project id set through a settings change (API, dashboard, admin) is not trusted: the next sync checks
    its labeling config first, and refuses one that does not fit, with the reason on the cycle's error."""
    wrong = lsc.create_project(
        ls_pat_client, title="someone else's", label_config=build_label_config("text_classification", ["x", "y"])
    )
    # Linking an LS project alweb did not create takes a key of the owner's own (here: the session's token).
    project = project_update(
        project=make_project(n=6), ls_project_id=wrong.id, ls_api_key=ls_settings.LABEL_STUDIO_API_KEY
    )
    assert not project.ls_linked
    with pytest.raises(ValidationError) as exc:
        cycle_sync_to_labelstudio(cycle=cold_cycle(project, budget=3))
    assert "ls_project_id" in exc.value.message_dict
    assert lsc.project_counts(ls_pat_client, wrong.id)[0] == 0  # nothing was sent there

    fits = lsc.create_project(
        ls_pat_client, title="prepared by hand", label_config=build_label_config("text_classification", LABELS)
    )
    project = project_update(project=Project.objects.get(pk=project.pk), ls_project_id=fits.id)
    cycle_sync_to_labelstudio(cycle=Cycle.objects.get(project=project))
    project.refresh_from_db()
    assert project.ls_linked and project.ls_project_id == fits.id
    assert lsc.project_counts(ls_pat_client, fits.id)[0] == 3
    hooks = lsc._request(ls_pat_client, "GET", "api/webhooks/", params={"project": fits.id})
    assert len(hooks) == 1  # and alweb's webhook is there


def test_link_existing_project_checks_its_config(ls_settings: Any, ls_pat_client: LabelStudio) -> None:
    fits = lsc.create_project(
        ls_pat_client,
        title="linked by hand",
        label_config=build_label_config("text_classification", LABELS),
        sampling="Sequential sampling",
    )
    project = make_project(n=0)
    with pytest.raises(ValidationError, match="alweb did not create this Label Studio project"):
        labelstudio_connect_project(project=project, ls_project_id=fits.id)  # the server's key opens any project
    Project.objects.filter(pk=project.pk).update(ls_api_key=ls_settings.LABEL_STUDIO_API_KEY)
    project.refresh_from_db()
    linked = labelstudio_connect_project(project=project, ls_project_id=fits.id)
    assert linked.ls_project_id == fits.id
    assert lsc.get_project(ls_pat_client, fits.id).sampling == lsc.UNCERTAINTY_SAMPLING

    wrong = lsc.create_project(
        ls_pat_client, title="wrong labels", label_config=build_label_config("text_classification", ["cat", "fish"])
    )
    other = make_project(n=0)
    Project.objects.filter(pk=other.pk).update(ls_api_key=ls_settings.LABEL_STUDIO_API_KEY)
    other.refresh_from_db()
    with pytest.raises(ValidationError) as exc:
        labelstudio_connect_project(project=other, ls_project_id=wrong.id)
    problems = exc.value.message_dict["ls_project_id"]
    assert any("missing labels: 'dog', 'bird'" in p for p in problems)
    assert any("labels unknown to alweb: 'fish'" in p for p in problems)
    other.refresh_from_db()
    assert other.ls_project_id is None

    with pytest.raises(ValidationError, match="no project 99999999"):
        labelstudio_connect_project(project=other, ls_project_id=99_999_999)
    with pytest.raises(ValidationError, match="another alweb project"):
        labelstudio_connect_project(project=other, ls_project_id=fits.id)


def test_project_credentials_win_over_settings_and_a_missing_key_is_named(settings: Any, ls_server: Any) -> None:
    settings.LABEL_STUDIO_URL, settings.LABEL_STUDIO_API_KEY = "http://127.0.0.1:9", ""
    settings.ALWEB_LS_ALLOWED_URLS = [ls_server.url]
    project = make_project(n=0)
    with pytest.raises(ValidationError) as exc:
        connect.labelstudio_credentials(project)
    assert "ls_api_key" in exc.value.message_dict
    Project.objects.filter(pk=project.pk).update(ls_url=ls_server.url, ls_api_key=ls_server.legacy_token)
    linked = labelstudio_connect_project(project=Project.objects.get(pk=project.pk))
    assert linked.ls_project_id is not None
    assert "legacy" not in repr(connect.labelstudio_credentials(linked))
    assert ls_server.legacy_token not in repr(connect.labelstudio_credentials(linked))


def test_the_server_key_never_goes_to_a_label_studio_a_project_names(settings: Any) -> None:
    """Anyone may create a project and name its ls_url: without a key of its own, alweb refuses to connect rather
    than send the server's token there. With the server's own URL (or none), the server's key is used."""
    settings.LABEL_STUDIO_URL, settings.LABEL_STUDIO_API_KEY = "http://127.0.0.1:8080/", "server-token"
    settings.ALWEB_LS_ALLOWED_URLS = ["https://collector.example", "https://ls.other.example"]
    project = make_project(n=0)
    Project.objects.filter(pk=project.pk).update(ls_url="https://collector.example", ls_api_key="")
    with pytest.raises(ValidationError) as exc:
        connect.labelstudio_credentials(Project.objects.get(pk=project.pk))
    assert "is not the server's: give its API key" in exc.value.message_dict["ls_api_key"][0]
    for url in ("", "http://127.0.0.1:8080", "HTTP://127.0.0.1:8080/"):
        Project.objects.filter(pk=project.pk).update(ls_url=url)
        creds = connect.labelstudio_credentials(Project.objects.get(pk=project.pk))
        assert (creds.url, creds.api_key) == ("http://127.0.0.1:8080", "server-token")
    Project.objects.filter(pk=project.pk).update(ls_url="https://ls.other.example", ls_api_key="its-own")
    creds = connect.labelstudio_credentials(Project.objects.get(pk=project.pk))
    assert (creds.url, creds.api_key) == ("https://ls.other.example", "its-own")


def test_unreachable_label_studio_is_a_retryable_error(settings: Any) -> None:
    settings.LABEL_STUDIO_URL, settings.LABEL_STUDIO_API_KEY = "http://127.0.0.1:9", "0" * 40
    with pytest.raises(connect.LabelStudioUnavailable) as exc:
        labelstudio_connect_project(project=make_project(n=0))
    assert isinstance(exc.value, ConnectionError)  # what the Celery tasks retry on
