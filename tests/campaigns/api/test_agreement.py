"""GET /api/projects/{id}/agreement/ and /annotators/, and the overlap settings on the project resource."""

from __future__ import annotations

from typing import Any

import pytest

from campaigns.models import LabelQualityRun, RunState
from campaigns.selectors.agreement import agreement_for_project
from tests.campaigns.selectors.test_agreement import ANSWERS, LABELS, annotate
from tests.factories import CycleFactory, ModelVersionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def annotated(project: Any) -> Any:
    project.labels, project.annotators_per_task = LABELS, 3
    project.save()
    annotate(project, ANSWERS, lead={"ann": 6.0, "bob": 12.0, "cid": 30.0})
    return project


def test_agreement_endpoint_gives_the_selectors_report(annotated: Any, as_member: Any, as_outsider: Any) -> None:
    url = f"/api/projects/{annotated.pk}/agreement/"
    body = as_member.get(url).json()
    report = agreement_for_project(project=annotated)
    assert body["project"]["krippendorff_alpha"] == pytest.approx(report.project.krippendorff_alpha)
    assert body["project"]["fleiss_kappa"] == pytest.approx(report.project.fleiss_kappa)
    assert body["project"]["cohen_kappa"] is None and body["project"]["items_with_overlap"] == 5
    assert [c["label"] for c in body["classes"]] == LABELS
    assert [i["key"] for i in body["items"]] == ["k1", "k2", "k3", "k4", "k0"]
    assert len(as_member.get(url, {"items": 1}).json()["items"]) == 1
    for bad in ("-1", "501", "x"):
        response = as_member.get(url, {"items": bad})
        assert response.status_code == 400 and "items" in response.json()
    assert as_outsider.get(url).status_code == 404


def test_annotators_endpoint(annotated: Any, as_member: Any, as_outsider: Any, anon: Any) -> None:
    url = f"/api/projects/{annotated.pk}/annotators/"
    rows = as_member.get(url).json()
    assert [r["annotator"] for r in rows] == ["ann", "bob", "cid"]
    assert rows[0]["answers"] == 6 and rows[0]["agreement_with_consensus"] == pytest.approx(0.8)
    assert rows[0]["mean_lead_time"] == 6.0 and rows[0]["labels_per_hour"] == pytest.approx(600.0)
    assert rows[0]["crowdlab_quality"] is None  # no label-quality run yet
    # After a run, each annotator's CROWDLAB quality from its summary.
    LabelQualityRun.objects.create(
        project=annotated,
        cycle=CycleFactory(project=annotated, number=1),
        model_version=ModelVersionFactory(project=annotated),
        state=RunState.DONE,
        summary={"annotators": [{"annotator": "bob", "quality": 0.71}, {"annotator": "cid", "quality": 0.42}]},
    )
    quality = {r["annotator"]: r["crowdlab_quality"] for r in as_member.get(url).json()}
    assert quality == {"ann": None, "bob": 0.71, "cid": 0.42}
    assert as_outsider.get(url).status_code == 404 and anon.get(url).status_code == 401


def test_overlap_settings_are_validated_and_changes_queue_one_task(
    project: Any, as_member: Any, django_capture_on_commit_callbacks: Any, monkeypatch: Any
) -> None:
    from campaigns import tasks

    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(tasks.project_overlap, "delay", lambda **kw: sent.append(kw))
    url = f"/api/projects/{project.pk}/"
    for body, field in (
        ({"annotators_per_task": 0}, "annotators_per_task"),
        ({"annotators_per_task": 21}, "annotators_per_task"),
        ({"annotators_per_task": "3"}, "annotators_per_task"),
        ({"consensus_rule": "vote"}, "consensus_rule"),
    ):
        response = as_member.patch(url, body, format="json")
        assert response.status_code == 400 and field in response.json(), (body, response.json())
    with django_capture_on_commit_callbacks(execute=True):
        ok = as_member.patch(url, {"annotators_per_task": 3}, format="json")
    assert ok.status_code == 200 and ok.json()["annotators_per_task"] == 3 and ok.json()["consensus_rule"] == "majority"
    with django_capture_on_commit_callbacks(execute=True):
        as_member.patch(url, {"annotators_per_task": 3, "name": "renamed"}, format="json")  # no change: no task
    assert sent == [{"project_id": project.pk}]


def test_openapi_documents_agreement_and_annotators(tmp_path: Any) -> None:
    import yaml
    from django.core.management import call_command

    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--file", str(out))
    paths = yaml.safe_load(out.read_text())["paths"]
    agreement = paths["/api/projects/{project_pk}/agreement/"]["get"]
    assert {"200", "400", "404"} <= set(agreement["responses"])
    assert any(p["name"] == "items" for p in agreement["parameters"])
    assert {"200", "404"} <= set(paths["/api/projects/{project_pk}/annotators/"]["get"]["responses"])
