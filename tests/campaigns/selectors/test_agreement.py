"""Agreement reads from real Annotation rows: the project, class and item figures equal the libraries' on the same
data, and the edge cases (one annotator, everyone agreeing, nothing annotated, detection) say so instead of lying."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa

from campaigns.models import Item, Project
from campaigns.selectors.agreement import agreement_for_project, annotators_for_project
from campaigns.services.annotations import items_resolve_labels
from tests.factories import AnnotationFactory, ItemFactory, ProjectFactory

pytestmark = pytest.mark.django_db
LABELS = ["pos", "neg", "neu"]
T0 = datetime(2026, 11, 1, tzinfo=UTC)
# Three annotators on six items (None: did not answer). Item 5 has one answer only.
ANSWERS = {
    "ann": ["pos", "neg", "neu", "pos", "neg", "pos"],
    "bob": ["pos", "neg", "pos", "pos", "neu", None],
    "cid": ["pos", "pos", "neu", "neg", "neu", None],
}


def annotate(
    project: Project, answers: dict[str, list[str | None]], lead: dict[str, float] | None = None
) -> list[Item]:
    n = len(next(iter(answers.values())))
    items = [ItemFactory(project=project, key=f"k{i}") for i in range(n)]
    minute = 0
    for name, values in answers.items():
        for item, value in zip(items, values, strict=True):
            if value is not None:
                minute += 1
                AnnotationFactory(
                    item=item,
                    annotator=name,
                    value=value,
                    lead_time=(lead or {}).get(name, 10.0),
                    ls_created_at=T0 + timedelta(minutes=minute),
                )
    items_resolve_labels(item_ids={i.pk for i in items})
    return items


def matrix_of(answers: dict[str, list[str | None]], columns: list[int]) -> np.ndarray:
    return np.array([[np.nan if v[j] is None else LABELS.index(v[j]) for j in columns] for v in answers.values()])


@pytest.fixture
def project() -> Project:
    return ProjectFactory(labels=LABELS, annotators_per_task=3)


def test_project_class_and_item_agreement_equal_the_libraries(project: Project) -> None:
    items = annotate(project, ANSWERS)
    # Noise that must not count: a deleted answer, a skipped one, an unmappable one.
    AnnotationFactory(item=items[0], annotator="dan", value="neg", deleted_at=T0)
    AnnotationFactory(item=items[0], annotator="eve", value=None, was_cancelled=True)
    AnnotationFactory(item=items[0], annotator="fay", value=None, error="unknown label 'meh'")
    report = agreement_for_project(project=project)
    s = report.project
    assert s.applies and (s.answers, s.annotators, s.items_annotated, s.items_with_overlap) == (16, 3, 6, 5)
    overlap = matrix_of(ANSWERS, [0, 1, 2, 3, 4])
    assert s.krippendorff_alpha == pytest.approx(
        krippendorff.alpha(reliability_data=overlap, level_of_measurement="nominal")
    )
    # Fleiss' kappa on the items all three answered (k0-k4), from the counts per class.
    table = np.array([[sum(1 for v in ANSWERS.values() if v[j] == c) for c in LABELS] for j in range(5)])
    assert (s.fleiss_items, s.fleiss_raters) == (5, 3)
    assert s.fleiss_kappa == pytest.approx(fleiss_kappa(table, method="fleiss"))
    assert s.cohen_kappa is None  # three annotators: Cohen's kappa does not apply
    shares = [1.0, 2 / 3, 2 / 3, 2 / 3, 2 / 3]
    assert s.mean_item_agreement == pytest.approx(sum(shares) / 5) and s.items_disputed == 4

    by_class = {c.label: c for c in report.classes}
    for c, label in enumerate(LABELS):
        binary = np.where(np.isnan(overlap), np.nan, np.equal(overlap, c).astype(float))
        expected = krippendorff.alpha(reliability_data=binary, level_of_measurement="nominal")
        assert by_class[label].krippendorff_alpha == pytest.approx(expected)
    assert by_class["pos"].answers == 8 and by_class["pos"].items == 2  # k0 (all pos), k3 (2 of 3 pos)
    assert by_class["pos"].mean_item_agreement == pytest.approx((1 + 2 / 3) / 2)

    worst = report.items
    assert [i.key for i in worst] == ["k1", "k2", "k3", "k4", "k0"]  # least agreed first, then by id
    assert worst[0].label == "neg" and worst[0].answers == [
        {"annotator": "ann", "value": "neg"},
        {"annotator": "bob", "value": "neg"},
        {"annotator": "cid", "value": "pos"},
    ]
    assert len(agreement_for_project(project=project, items_limit=2).items) == 2


def test_two_annotators_get_cohens_kappa(project: Project) -> None:
    two = {"ann": ANSWERS["ann"], "bob": ANSWERS["bob"]}
    annotate(project, two)
    s = agreement_for_project(project=project).project
    assert s.cohen_items == 5
    assert s.cohen_kappa == pytest.approx(cohen_kappa_score(ANSWERS["ann"][:5], ANSWERS["bob"][:5]))
    assert s.fleiss_raters == 2 and s.fleiss_items == 5  # no item has the 3 asked for: the common count is used


def test_annotators_agreement_with_consensus_lead_time_and_pace(project: Project) -> None:
    annotate(project, ANSWERS, lead={"ann": 6.0, "bob": 12.0, "cid": 30.0})
    stats = {s.annotator: s for s in annotators_for_project(project=project)}
    assert [s.annotator for s in annotators_for_project(project=project)] == ["ann", "bob", "cid"]
    consensus = dict(Item.objects.filter(project=project).values_list("key", "label"))
    assert consensus == {"k0": "pos", "k1": "neg", "k2": "neu", "k3": "pos", "k4": "neu", "k5": "pos"}
    ann = stats["ann"]
    assert (ann.answers, ann.items_with_overlap) == (6, 5)
    assert ann.agreement_with_consensus == pytest.approx(4 / 5)  # k4: ann said neg, the others neu
    expected = cohen_kappa_score(ANSWERS["ann"][:5], [consensus[f"k{i}"] for i in range(5)])
    assert ann.kappa_with_consensus == pytest.approx(expected)
    assert ann.mean_lead_time == 6.0 and ann.labels_per_hour == pytest.approx(600.0)
    assert stats["cid"].labels_per_hour == pytest.approx(120.0) and stats["cid"].answers == 5
    assert stats["bob"].agreement_with_consensus == pytest.approx(4 / 5)
    assert ann.first_answer_at is not None and ann.last_answer_at is not None


def test_edge_cases_one_annotator_all_agree_none_and_detection(project: Project) -> None:
    empty = agreement_for_project(project=project)
    assert empty.project.answers == 0 and empty.project.krippendorff_alpha is None and empty.items == []
    assert "two annotators" in empty.project.reason and annotators_for_project(project=project) == []

    annotate(project, {"ann": ["pos", "neg", "neu"]})
    alone = agreement_for_project(project=project).project
    assert (alone.items_with_overlap, alone.krippendorff_alpha, alone.fleiss_kappa) == (0, None, None)
    assert annotators_for_project(project=project)[0].agreement_with_consensus is None

    agree = ProjectFactory(labels=LABELS, annotators_per_task=2)
    annotate(agree, {"ann": ["pos", "neg", "neu"], "bob": ["pos", "neg", "neu"]})
    s = agreement_for_project(project=agree).project
    assert (s.krippendorff_alpha, s.fleiss_kappa, s.cohen_kappa, s.mean_item_agreement) == (1.0, 1.0, 1.0, 1.0)
    assert s.items_disputed == 0

    one_class = ProjectFactory(labels=LABELS, annotators_per_task=2)
    annotate(one_class, {"ann": ["pos", "pos"], "bob": ["pos", "pos"]})
    s = agreement_for_project(project=one_class).project
    assert s.mean_item_agreement == 1.0 and s.krippendorff_alpha is None and s.cohen_kappa is None  # 0/0

    boxes: Any = ProjectFactory(task_type="object_detection", labels=["car"])
    report = agreement_for_project(project=boxes)
    assert not report.project.applies and "classification" in report.project.reason
