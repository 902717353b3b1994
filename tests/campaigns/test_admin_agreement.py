"""The item admin's "annotator agreement" filter, on the agreement annotations resolution writes."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from tests.campaigns.selectors.test_agreement import annotate
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db


def test_items_filter_by_disagreement(admin_client: Any) -> None:
    project = ProjectFactory(labels=["pos", "neg", "neu"])
    # k0 unanimous, k1 two of three, k2 one each (a third), k3 a tie (a half), k4 unanswered
    annotate(
        project,
        {
            "ann": ["pos", "pos", "pos", "pos", None],
            "bob": ["pos", "pos", "neg", "neg", None],
            "cid": ["pos", "neg", "neu", None, None],
        },
    )
    url = reverse("admin:campaigns_item_changelist")
    expected = {"disputed": {"k1", "k2", "k3"}, "split": {"k2", "k3"}, "unanimous": {"k0"}, "none": {"k4"}}
    for value, keys in expected.items():
        response = admin_client.get(url, {"agreement": value, "project__id__exact": project.pk})
        assert response.status_code == 200
        shown = {item.key for item in response.context["cl"].result_list}
        assert shown == keys, (value, shown)


def test_admin_sets_the_overlap_through_project_update(
    admin_client: Any, django_capture_on_commit_callbacks: Any, monkeypatch: Any
) -> None:
    from campaigns import tasks

    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(tasks.project_overlap, "delay", lambda **kw: sent.append(kw))
    project = ProjectFactory(labels=["pos", "neg"])
    url = reverse("admin:campaigns_project_change", args=[project.pk])
    form = admin_client.get(url).context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k in form.fields}
    data.update({"annotators_per_task": 4, "consensus_rule": "quorum", "model_config": "{}"})
    data.update({f"memberships-{k}": v for k, v in {"TOTAL_FORMS": 0, "INITIAL_FORMS": 0}.items()})
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    project.refresh_from_db()
    assert (project.annotators_per_task, project.consensus_rule) == (4, "quorum")
    assert sent == [{"project_id": project.pk}]
