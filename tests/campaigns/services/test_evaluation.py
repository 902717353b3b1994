"""The evaluation sample: people label an i.i.d. sample of validation/test items, sent with the cycles, topped up;
model selection and the learning curve use those human labels, never ground truth."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from campaigns import selectors
from campaigns.models import Item, Purpose, SelectedItem, Split
from campaigns.services.cycles import cycle_create, cycle_transition
from campaigns.services.selection import selection_make
from campaigns.states import CycleState
from engine.metrics import bootstrap_interval, classification_metrics
from tests.factories import ItemFactory


def _items(project: Any, split: str, n: int, prefix: str) -> list[Item]:
    return [
        ItemFactory(project=project, key=f"{prefix}{i}", split=split, ground_truth=project.labels[i % 2])
        for i in range(n)
    ]


def _close(cycle: Any) -> None:
    for s in (CycleState.SYNCING, CycleState.LABELING, CycleState.CLOSED):
        cycle_transition(cycle_id=cycle.pk, to=s)


@pytest.mark.django_db
def test_first_cycle_sends_the_evaluation_sample_with_its_selection(make_project: Any) -> None:
    project = make_project(labels=["a", "b"])
    _items(project, Split.POOL, 200, "p")
    _items(project, Split.VALID, 40, "v")
    _items(project, Split.TEST, 40, "t")
    # Default per split: 5% of the pool (10) but at least 5 per class (10), at most what the split holds.
    assert [(s.split, s.target) for s in selectors.evaluation_status(project=project)] == [("valid", 10), ("test", 10)]

    selection = selection_make(cycle=cycle_create(project=project, budget=5, seed=3))
    rows = list(SelectedItem.objects.filter(selection=selection).select_related("item").order_by("rank"))
    training = [r for r in rows if r.purpose == Purpose.TRAINING]
    evaluation = [r for r in rows if r.purpose == Purpose.EVALUATION]
    assert len(training) == 5 and {r.item.split for r in training} == {Split.POOL}
    assert len(evaluation) == 20 and selection.size == 25 and selection.params["evaluation"] == 20
    assert sorted(r.item.split for r in evaluation) == [Split.TEST] * 10 + [Split.VALID] * 10
    # Evaluation rows come after the training picks and carry no model score.
    assert all(r.rank >= 5 and r.uncertainty is None and r.predicted_label == "" for r in evaluation)


@pytest.mark.django_db
def test_the_sample_is_fixed_random_order_and_later_cycles_only_top_it_up(make_project: Any) -> None:
    project = make_project(labels=["a", "b"], eval_valid_target=6, eval_test_target=0)
    _items(project, Split.POOL, 50, "p")
    valid = _items(project, Split.VALID, 30, "v")
    first = selection_make(cycle=cycle_create(project=project, budget=2, seed=1))
    sent = list(
        SelectedItem.objects.filter(selection=first, purpose=Purpose.EVALUATION).values_list("item__key", flat=True)
    )
    assert len(sent) == 6 and not any(k.startswith("t") for k in sent)
    # Not the first six keys: a random sample of the split, not its head.
    assert sorted(sent) != sorted(v.key for v in valid[:6])

    # While the first cycle is out, nothing more is sent: six are pending.
    assert [s.missing for s in selectors.evaluation_status(project=project)] == [0, 0]
    # Five are labeled, one skipped by the annotator; the next cycle sends exactly one replacement.
    Item.objects.filter(project=project, key__in=sent[:5]).update(label="a", label_source="annotation")
    Item.objects.filter(project=project, key=sent[5]).update(state="skipped")
    _close(first.cycle)
    cold = selection_make(cycle=cycle_create(project=project, budget=2, seed=2, auto_advance=False))
    again = list(
        SelectedItem.objects.filter(selection=cold, purpose=Purpose.EVALUATION).values_list("item__key", flat=True)
    )
    assert len(again) == 1 and again[0] not in sent

    # The order does not depend on the cycle's seed: the same project draws the same sample.
    project2 = make_project(labels=["a", "b"], eval_valid_target=6, eval_test_target=0)
    _items(project2, Split.POOL, 50, "p")
    _items(project2, Split.VALID, 30, "v")
    other = selection_make(cycle=cycle_create(project=project2, budget=2, seed=99))
    keys2 = SelectedItem.objects.filter(selection=other, purpose=Purpose.EVALUATION).values_list("item__key", flat=True)
    assert len(set(keys2)) == 6


@pytest.mark.django_db
def test_target_zero_sends_no_evaluation_items(make_project: Any) -> None:
    project = make_project(labels=["a", "b"], eval_valid_target=0, eval_test_target=0)
    _items(project, Split.POOL, 30, "p")
    _items(project, Split.VALID, 30, "v")
    selection = selection_make(cycle=cycle_create(project=project, budget=4))
    assert selection.size == 4 and not SelectedItem.objects.filter(purpose=Purpose.EVALUATION).exists()


@pytest.mark.django_db
def test_ground_truth_never_counts_as_an_evaluation_label(make_project: Any) -> None:
    project = make_project(labels=["a", "b"])
    items = _items(project, Split.TEST, 6, "t")
    assert not selectors.items_evaluation(project=project, split=Split.TEST).exists()
    Item.objects.filter(pk=items[0].pk).update(label="b", label_source="annotation")
    assert list(selectors.items_evaluation(project=project, split=Split.TEST)) == [items[0]]


def test_bootstrap_interval_brackets_the_estimate_and_narrows_with_more_items() -> None:
    rng = np.random.default_rng(0)

    def interval(n: int) -> tuple[dict[str, tuple[float, float]], float, float]:
        y = rng.integers(0, 3, n)
        pred = np.where(rng.random(n) < 0.7, y, rng.integers(0, 3, n))
        m = classification_metrics(y, pred, 3)
        return bootstrap_interval(m.confusion, seed=1), m.accuracy, m.macro_f1

    small, acc, f1 = interval(60)
    assert small["accuracy"][0] <= acc <= small["accuracy"][1]
    assert small["macro_f1"][0] <= f1 <= small["macro_f1"][1]
    large, _, _ = interval(6000)
    width = lambda iv: iv[1] - iv[0]  # noqa: E731
    assert width(large["accuracy"]) < width(small["accuracy"]) / 4
    # Against the normal approximation for accuracy: 1.96 * sqrt(p(1-p)/n).
    expected = 2 * 1.96 * np.sqrt(acc * (1 - acc) / 60)
    assert abs(width(small["accuracy"]) - expected) < 0.05
