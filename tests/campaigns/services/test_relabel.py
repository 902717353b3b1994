"""The ActiveLab budget split (`relabel: "activelab"`): doubtful labels go back for review, the rest of the budget
buys new items, and the review's answer replaces the label with its history kept."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from campaigns.models import Item, LabelChange, LabelQualityRun, LabelReview, RunState, SelectedItem
from campaigns.services.embeddings import embeddings_save
from campaigns.services.label_quality import probabilities_pack
from campaigns.services.params import SelectionParams
from campaigns.services.reviews import review_decide
from campaigns.services.selection import selection_make, selection_preview
from tests.campaigns.services.test_selection import scored_cycle
from tests.factories import CycleFactory, ItemFactory, ModelVersionFactory

pytestmark = pytest.mark.django_db
OPTIONS = {"relabel": "activelab", "relabel_max_share": 0.5}


def labeled_with_a_run(project: Any) -> list[Item]:
    """Ten labeled items and a finished label-quality run: the model doubts the first two labels, agrees with the
    rest."""
    items = [ItemFactory(project=project, key=f"l{i}", label="a" if i < 5 else "b") for i in range(10)]
    probs = np.asarray([[0.05, 0.95]] * 2 + [[0.95, 0.05]] * 3 + [[0.05, 0.95]] * 5)
    LabelQualityRun.objects.create(
        project=project,
        cycle=CycleFactory(project=project, number=9),
        model_version=ModelVersionFactory(project=project),
        state=RunState.DONE,
        probabilities=probabilities_pack([i.pk for i in items], probs),
    )
    return items


def with_probabilities(cycle: Any, p: float) -> Any:
    """The cycle's scored items get mean class probabilities (p, 1 - p), as scoring stores them."""
    ids = np.asarray(sorted(cycle.scores.values_list("item_id", flat=True)), dtype=np.int64)
    embeddings_save(
        cycle_id=cycle.pk,
        chunk=0,
        item_ids=ids,
        features=np.zeros((len(ids), 2)),
        probs=np.tile([p, 1 - p], (len(ids), 1)),
    )
    return cycle


def test_doubtful_labels_take_part_of_the_budget_and_go_back_for_review(make_project: Any) -> None:
    project = make_project(labels=["a", "b"])
    items = labeled_with_a_run(project)
    cycle = with_probabilities(
        scored_cycle(project, [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2], budget=6, strategy_params=OPTIONS), 0.5
    )
    preview = selection_preview(cycle=cycle, params=SelectionParams.for_cycle(cycle))
    assert any("up to 3 of the budget may go to re-labels" in w for w in preview["warnings"])
    selection = selection_make(cycle=cycle)
    doubtful = [items[0].pk, items[1].pk]
    # Two doubtful labels score below the uncertain new items, the agreed ones above: 2 re-labels, 4 new items.
    assert selection.params["relabels"] == 2 and sorted(selection.params["relabel_item_ids"]) == sorted(doubtful)
    assert selection.size == 4 and SelectedItem.objects.filter(selection=selection).count() == 4
    reviews = LabelReview.objects.filter(item_id__in=doubtful, state="open")
    assert reviews.count() == 2 and {r.label_before for r in reviews} == {"a"}
    # The review's answer replaces the label, the old one kept in the history.
    review_decide(review=reviews.get(item_id=items[0].pk), label="b", annotator="rita@x")
    items[0].refresh_from_db()
    assert (items[0].label, items[0].label_source) == ("b", "review")
    change = LabelChange.objects.get(item=items[0])
    assert (change.old_value, change.new_value, change.source, change.annotator) == ("a", "b", "review", "rita@x")


def test_without_a_run_or_with_confident_new_items_the_split_says_what_it_did(make_project: Any) -> None:
    project = make_project(labels=["a", "b"])
    bare = scored_cycle(project, [0.9, 0.8, 0.7], budget=2, strategy_params=OPTIONS)
    selection = selection_make(cycle=bare)
    assert selection.size == 2 and selection.params["relabels"] == 0
    assert "no label-quality run" in selection.params["relabel_skipped"]
    assert not LabelReview.objects.exists()


def test_a_label_appended_since_the_run_and_the_review_cap_never_fail_the_selection(
    make_project: Any, monkeypatch: Any
) -> None:
    """Review finding: a run with fewer class columns than the project's labels now (one appended since) made
    cleanlab raise inside the selection; and a share of a large budget could ask for more reviews than one request
    takes. Both select with what they can."""
    from campaigns.services import relabel

    project = make_project(labels=["a", "b"])
    labeled_with_a_run(project)
    monkeypatch.setattr(relabel, "MAX_REVIEWS_PER_REQUEST", 1)
    capped = with_probabilities(
        scored_cycle(project, [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2], budget=6, strategy_params=OPTIONS), 0.5
    )
    selection = selection_make(cycle=capped)
    assert selection.params["relabels"] == 1 and selection.size == 5  # at most one review per request here

    other = make_project(labels=["a", "b"], name="grown")
    labeled_with_a_run(other)
    other.labels = ["a", "b", "c"]
    other.save(update_fields=["labels"])
    grown = with_probabilities(scored_cycle(other, [0.9, 0.8, 0.7], budget=2, strategy_params=OPTIONS), 0.5)
    selection = selection_make(cycle=grown)
    assert selection.size == 2 and selection.params["relabels"] == 0
    assert "labels changed" in selection.params["relabel_skipped"]


def test_a_decided_review_counts_as_an_answer_for_activelab_and_crowdlab(make_project: Any) -> None:
    """Review finding: the reviewer's decision was not among an item's answers, so the next split (and CROWDLAB's
    consensus) saw only the old ones and could ask for the same item again."""
    from campaigns.selectors.labels import answers_by_item
    from campaigns.services.reviews import reviews_request

    project = make_project(labels=["a", "b"])
    item = labeled_with_a_run(project)[0]
    assert answers_by_item([item.pk]) == {}
    (review,) = reviews_request(project=project, item_ids=[item.pk])
    review_decide(review=review, label="b", annotator="rita@x")
    assert answers_by_item([item.pk]) == {item.pk: {"rita@x": "b"}}
