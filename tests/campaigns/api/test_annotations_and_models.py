"""/api/projects/{id}/annotations/ and /model-versions/: read-only lists with filters, roles, query guards."""

from __future__ import annotations

from typing import Any

import pytest

from tests.factories import AnnotationFactory, ItemFactory, ModelVersionFactory, ProjectFactory

pytestmark = pytest.mark.django_db


def base(project: Any) -> str:
    return f"/api/projects/{project.pk}"


def ids(response: Any) -> set[int]:
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


def test_annotations_list_and_filters(as_member: Any, project: Any, django_assert_max_num_queries: Any) -> None:
    item = ItemFactory(project=project)
    a1 = AnnotationFactory(item=item, annotator="ann@example.com")
    a2 = AnnotationFactory(item=ItemFactory(project=project), annotator="bob@example.com", was_cancelled=True)
    AnnotationFactory()  # another project's
    url = f"{base(project)}/annotations/"
    with django_assert_max_num_queries(4):
        assert ids(as_member.get(url)) == {a1.pk, a2.pk}
    assert ids(as_member.get(url, {"item": item.pk})) == {a1.pk}
    assert ids(as_member.get(url, {"annotator": "bob@example.com"})) == {a2.pk}
    assert ids(as_member.get(url, {"deleted": "no"})) == {a1.pk, a2.pk}
    assert ids(as_member.get(url, {"deleted": "yes"})) == set()
    row = as_member.get(f"{url}{a1.pk}/").json()
    assert (row["annotator"], row["lead_time"], row["item"]) == ("ann@example.com", 3.5, item.pk)


@pytest.mark.parametrize(("params", "field"), [({"item": "abc"}, "item"), ({"item": 10**30}, "item")])
def test_annotation_filters_validate(as_member: Any, project: Any, params: Any, field: str) -> None:
    response = as_member.get(f"{base(project)}/annotations/", params)
    assert response.status_code == 400
    assert field in response.json()


def test_annotation_query_count_is_flat(as_member: Any, project: Any, django_assert_max_num_queries: Any) -> None:
    for _ in range(30):
        AnnotationFactory(item=ItemFactory(project=project))
    with django_assert_max_num_queries(4):
        assert len(ids(as_member.get(f"{base(project)}/annotations/", {"limit": 50}))) == 30


def test_model_versions(as_member: Any, project: Any, django_assert_max_num_queries: Any) -> None:
    versions = [ModelVersionFactory(project=project, version=v) for v in (1, 2, 3)]
    ModelVersionFactory(project=ProjectFactory())
    url = f"{base(project)}/model-versions/"
    with django_assert_max_num_queries(4):
        response = as_member.get(url)
    assert [row["version"] for row in response.json()["results"]] == [1, 2, 3]
    detail = as_member.get(f"{url}{versions[0].pk}/").json()
    assert detail["metrics"] == {"accuracy": 0.8, "macro_f1": 0.7}
    assert as_member.post(url, {}, format="json").status_code == 403  # registering a model is for owners


def test_permissions(anon: Any, as_outsider: Any, project: Any) -> None:
    annotation = AnnotationFactory(item=ItemFactory(project=project))
    version = ModelVersionFactory(project=project)
    for path in (
        "annotations/",
        f"annotations/{annotation.pk}/",
        "model-versions/",
        f"model-versions/{version.pk}/",
    ):
        assert anon.get(f"{base(project)}/{path}").status_code == 401, path
        assert as_outsider.get(f"{base(project)}/{path}").status_code == 404, path
