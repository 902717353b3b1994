"""Overlap on a real Label Studio: the annotators per task are set when alweb creates the LS project, and again when
a member changes them through the API (a task, run inline here), read back from Label Studio each time."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from campaigns.models import Item
from integrations.labelstudio import client as lsc
from integrations.labelstudio.client import LabelStudio
from integrations.labelstudio.connect import labelstudio_connect_project, labelstudio_push_overlap
from tests.factories import AnnotationFactory
from tests.integrations.labelstudio.builders import make_project

pytestmark = [pytest.mark.django_db, pytest.mark.integration]


def test_overlap_is_set_on_the_ls_project_and_follows_the_setting(
    ls_settings: Any, ls_pat_client: LabelStudio, celery_eager: None, django_capture_on_commit_callbacks: Any
) -> None:
    project = make_project(n=2, annotators_per_task=3)
    assert labelstudio_push_overlap(project=project) is False  # no LS project yet: connecting sets it
    linked = labelstudio_connect_project(project=project)
    assert lsc.get_overlap(ls_pat_client, linked.ls_project_id) == (3, 100)

    # Two answers out of three agree on one item: a label under "majority", none yet under a quorum of 3 of 5.
    item = Item.objects.filter(project=project).order_by("pk").first()
    assert item is not None
    AnnotationFactory(item=item, annotator="a@x", value="cat")
    AnnotationFactory(item=item, annotator="b@x", value="cat")
    AnnotationFactory(item=item, annotator="c@x", value="dog")

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=project.owner).key}")
    url = f"/api/projects/{project.pk}/"
    with django_capture_on_commit_callbacks(execute=True):
        response = client.patch(url, {"annotators_per_task": 5, "consensus_rule": "quorum"}, format="json")
    assert response.status_code == 200, response.content
    assert (response.json()["annotators_per_task"], response.json()["consensus_rule"]) == (5, "quorum")
    assert lsc.get_overlap(ls_pat_client, linked.ls_project_id) == (5, 100)
    item.refresh_from_db()
    assert item.label is None and item.metadata["agreement"] == pytest.approx(2 / 3)  # 2 of 5 is no quorum

    with django_capture_on_commit_callbacks(execute=True):
        client.patch(url, {"annotators_per_task": 2, "consensus_rule": "majority"}, format="json")
    assert lsc.get_overlap(ls_pat_client, linked.ls_project_id) == (2, 100)
    item.refresh_from_db()
    assert item.label == "cat"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_pushes_a_changed_overlap_to_label_studio(
    ls_server: Any, ls_pat_client: LabelStudio, celery_worker: Any, settings: Any
) -> None:
    """The setting changes in the web process; the task travels through Redis to a worker process, which sets it."""
    from campaigns.models import Project
    from campaigns.services.projects import project_update
    from tests.worker import wait_for

    settings.ALWEB_LS_ALLOWED_URLS = [ls_server.url]
    settings.ALWEB_BASE_URL = "http://127.0.0.1:9"  # the webhook it registers goes nowhere
    project = make_project(n=0, annotators_per_task=2)
    Project.objects.filter(pk=project.pk).update(ls_url=ls_server.url, ls_api_key=ls_server.pat)
    linked = labelstudio_connect_project(project=Project.objects.get(pk=project.pk))
    assert lsc.get_overlap(ls_pat_client, linked.ls_project_id) == (2, 100)
    celery_worker.stop()
    celery_worker.env.update(ALWEB_LS_ALLOWED_URLS=ls_server.url, ALWEB_BASE_URL="http://127.0.0.1:9")
    celery_worker.start()
    project_update(project=linked, annotators_per_task=4)  # no transaction open: sent at once
    wait_for(
        lambda: lsc.get_overlap(ls_pat_client, linked.ls_project_id) == (4, 100),
        timeout=120,
        what="the worker's overlap push",
        worker=celery_worker,
    )
