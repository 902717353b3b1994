"""The dashboard's agreement page: the selectors' figures, the edge cases in words, members only."""

from __future__ import annotations

from typing import Any

import pytest

from campaigns.selectors.agreement import agreement_for_project
from tests.campaigns.selectors.test_agreement import ANSWERS, LABELS, annotate

pytestmark = pytest.mark.django_db


def test_agreement_page_shows_the_figures_and_is_for_members(
    project: Any, member: Any, client_for: Any, as_outsider: Any
) -> None:
    as_member = client_for(member)
    url = f"/projects/{project.pk}/agreement/"
    empty = as_member.get(url).content.decode()
    assert "no item has answers from two annotators yet" in empty and 'id="agreement-classes"' in empty

    project.labels, project.annotators_per_task = LABELS, 3
    project.save()
    annotate(project, ANSWERS)
    page = as_member.get(url).content.decode()
    alpha = agreement_for_project(project=project).project.krippendorff_alpha
    assert alpha is not None and f"{alpha:.3f}" in page
    assert 'id="annotators"' in page and '<th scope="row">cid</th>' in page
    assert 'id="disputed-items"' in page and "ann: neg · bob: neg · cid: pos" in page
    assert f'href="{url}"' in as_member.get(f"/projects/{project.pk}/").content.decode()
    assert as_outsider.get(url).status_code == 404

    project.task_type = "object_detection"
    project.save()
    assert "classification projects only" in as_member.get(url).content.decode()


def test_overlap_form_saves_through_the_service_and_names_a_bad_field(
    project: Any, member: Any, client_for: Any
) -> None:
    url = f"/projects/{project.pk}/agreement/"
    as_member = client_for(member)
    assert 'id="overlap-form"' in as_member.get(url).content.decode()
    refused = as_member.post(url, {"annotators_per_task": "0", "consensus_rule": "majority"})
    assert refused.status_code == 422
    assert 'id="id_annotators_per_task_error"' in refused.content.decode()
    assert "between 1 and 20" in refused.content.decode()
    project.refresh_from_db()
    assert project.annotators_per_task == 1
    saved = as_member.post(url, {"annotators_per_task": "3", "consensus_rule": "quorum"})
    assert saved.status_code == 302
    project.refresh_from_db()
    assert (project.annotators_per_task, project.consensus_rule) == (3, "quorum")
