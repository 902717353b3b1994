"""Selection: strategies, budget and threshold, preview, immutability, concurrent selects."""

from __future__ import annotations

import io
import threading
from typing import Any

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import connection
from PIL import Image

from campaigns.models import Cycle, Item, Score, SelectedItem, Selection
from campaigns.selectors import items_pool, scores_candidate_arrays, scores_candidates
from campaigns.services.cycles import InvalidTransition, cycle_create, cycle_transition
from campaigns.services.embeddings import embeddings_save, embeddings_save_labeled
from campaigns.services.params import SelectionParams
from campaigns.services.score_stats import score_stats_freeze
from campaigns.services.selection import selection_make, selection_preview
from campaigns.states import CycleState
from engine import selection as strategies
from tests.factories import ItemFactory


def scored_cycle(project: Any, uncertainties: list[float], labels: list[str] | None = None, **kw: Any) -> Cycle:
    cycle = cycle_create(project=project, **kw)
    items = [ItemFactory(project=project, key=f"k{i}") for i in range(len(uncertainties))]
    Score.objects.bulk_create(
        Score(cycle=cycle, item=item, uncertainty=u, heuristic="bald", predicted_label=(labels or ["a"] * 999)[i])
        for i, (item, u) in enumerate(zip(items, uncertainties, strict=True))
    )
    hist = np.histogram(uncertainties, bins=200)[0].tolist()
    Cycle.objects.filter(pk=cycle.pk).update(
        state=CycleState.SCORED,
        score_stats={
            "histogram": hist,
            "min": min(uncertainties),
            "max": max(uncertainties),
            "mean": float(np.mean(uncertainties)),
            "count": len(uncertainties),
        },
    )
    cycle.refresh_from_db()
    return cycle


@pytest.mark.django_db
def test_topk_respects_budget_and_threshold_and_stores_ranks(make_project: Any) -> None:
    project = make_project(labels=["a", "b"])
    cycle = scored_cycle(project, [0.1, 0.9, 0.5, 0.7, 0.3], budget=3, threshold=0.4)
    selection = selection_make(cycle=cycle)
    rows = list(SelectedItem.objects.filter(selection=selection).values_list("item__key", "rank", "uncertainty"))
    assert rows == [("k1", 0, 0.9), ("k3", 1, 0.7), ("k2", 2, 0.5)]
    assert selection.params["budget"] == 3 and selection.params["threshold"] == 0.4
    assert "cold_start" not in selection.params  # a scored cycle ranked by its model: no cold start to record
    cycle.refresh_from_db()
    assert cycle.state == "selected"
    # Idempotent: a redelivered select returns the same selection, writes nothing more.
    assert selection_make(cycle=cycle).pk == selection.pk
    assert SelectedItem.objects.count() == 3


@pytest.mark.django_db
def test_threshold_above_everything_selects_nothing_and_preview_agrees(make_project: Any) -> None:
    cycle = scored_cycle(make_project(labels=["a", "b"]), [0.1, 0.2, 0.3], budget=5)
    preview = selection_preview(cycle=cycle, params=SelectionParams.for_cycle(cycle, budget=5, threshold=0.25))
    assert (preview["qualifying"], preview["would_select"]) == (1, 1)
    assert sum(preview["histogram"]["counts"]) == 3
    assert (
        selection_preview(cycle=cycle, params=SelectionParams.for_cycle(cycle, budget=5, threshold=0.9))["would_select"]
        == 0
    )
    assert not Selection.objects.exists()  # the preview writes nothing


@pytest.mark.django_db
def test_selected_items_leave_the_pool_of_later_cycles(make_project: Any) -> None:
    project = make_project(labels=["a", "b"])
    cycle = scored_cycle(project, [0.9, 0.1], budget=1)
    selection_make(cycle=cycle)
    assert list(items_pool(project=project).values_list("key", flat=True)) == ["k1"]
    cycle_transition(cycle_id=cycle.pk, to=CycleState.CANCELLED)
    assert list(items_pool(project=project).values_list("key", flat=True)) == ["k0", "k1"]


@pytest.mark.django_db
def test_power_and_quota_strategies_are_deterministic(make_project: Any) -> None:
    project = make_project(labels=["car", "bike"])
    u = list(np.linspace(0.01, 1, 60))
    labels = ["car"] * 54 + ["bike"] * 6
    cycle = scored_cycle(project, u, labels, budget=10, strategy="power", seed=7)
    a = selection_preview(cycle=cycle, params=SelectionParams.for_cycle(cycle, budget=10, threshold=None))["items"]
    b = selection_preview(cycle=cycle, params=SelectionParams.for_cycle(cycle, budget=10, threshold=None))["items"]
    assert a == b and len(a) == 10
    quota = selection_preview(
        cycle=cycle,
        params=SelectionParams.for_cycle(
            cycle, budget=10, threshold=None, strategy="quota", options={"quotas": {"bike": 0.5, "car": 0.5}}
        ),
    )["items"]
    assert sum(1 for p in quota if p["predicted_label"] == "bike") == 5


@pytest.mark.django_db
def test_cold_start_selects_a_seeded_random_sample(make_project: Any) -> None:
    project = make_project()
    for i in range(30):
        ItemFactory(project=project, key=f"k{i}")
    cycle = cycle_create(project=project, budget=5, seed=3)
    selection = selection_make(cycle=cycle)
    assert selection.size == 5
    picked = set(SelectedItem.objects.values_list("item__key", flat=True))
    ids = list(Item.objects.order_by("pk").values_list("key", flat=True))
    assert picked == {ids[p] for p in strategies.random_sample(30, 5, seed=3)}


def _png(value: int, *, stripes: bool = False) -> bytes:
    pixels = np.full((8, 8), value, dtype=np.uint8)
    if stripes:
        pixels[::2] = 255 - value
    buf = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buf, format="PNG")
    return buf.getvalue()


def image_pool(project: Any, groups: list[tuple[str, bytes, int]]) -> None:
    """Stored images: for each (name, png, n), n items keyed name-0 ... name-(n-1)."""
    for name, png, n in groups:
        for i in range(n):
            item = ItemFactory.build(project=project, key=f"{name}-{i}", text="")
            item.media.save(f"{name}-{i}.png", ContentFile(png), save=False)
            item.save()


@pytest.mark.django_db
def test_kmeans_cold_start_covers_the_pools_modes_where_random_would_not(make_project: Any) -> None:
    """A pool of 60 dark images, 5 bright and 5 striped: the diverse strategy's first batch of 3 takes one of each
    (a seeded random sample of 3 would almost surely be all dark)."""
    project = make_project(task_type="image_classification", model_config={"image_size": 8, "channels": 1})
    image_pool(project, [("dark", _png(10), 60), ("bright", _png(240), 5), ("striped", _png(10, stripes=True), 5)])
    cycle = cycle_create(project=project, budget=3, seed=1, strategy="diverse")
    assert cycle.strategy_params["cold_start"] == "kmeans"
    selection = selection_make(cycle=cycle)
    picked = sorted(
        k.split("-")[0] for k in SelectedItem.objects.filter(selection=selection).values_list("item__key", flat=True)
    )
    assert picked == ["bright", "dark", "striped"]
    assert selection.params["cold_start"] == "kmeans"


@pytest.mark.django_db
def test_kmeans_cold_start_of_remote_images_falls_back_to_random_and_says_so(make_project: Any) -> None:
    project = make_project(task_type="image_classification")
    for i in range(10):
        ItemFactory(project=project, key=f"u{i}", text="", url=f"https://example.com/{i}.png")
    cycle = cycle_create(project=project, budget=3, seed=4, strategy="diverse")
    selection = selection_make(cycle=cycle)
    ids = list(Item.objects.filter(project=project).order_by("pk").values_list("pk", flat=True))
    picked = set(SelectedItem.objects.filter(selection=selection).values_list("item_id", flat=True))
    assert picked == {ids[p] for p in strategies.random_sample(10, 3, seed=4)}
    assert "k-means needs every item's content" in selection.params["cold_start_fallback"]
    assert selection.params["cold_start"] == "random"  # what was done, not what was asked
    with pytest.raises(ValidationError, match="cold_start must be one of random, kmeans"):
        cycle_create(project=project, budget=3, strategy="diverse", strategy_params={"cold_start": "smart"})


@pytest.mark.django_db
def test_select_is_refused_in_the_wrong_state(make_project: Any) -> None:
    cycle = scored_cycle(make_project(labels=["a"]), [0.5], budget=1)
    cycle_transition(cycle_id=cycle.pk, to=CycleState.CANCELLED)
    with pytest.raises(InvalidTransition, match="is cancelled"):
        selection_make(cycle=cycle)


@pytest.mark.django_db(transaction=True)
def test_concurrent_selects_make_one_selection(make_project: Any) -> None:
    cycle = scored_cycle(make_project(labels=["a"]), [0.1 * i for i in range(1, 9)], budget=4)
    barrier = threading.Barrier(3)
    made: list[int] = []

    def select() -> None:
        barrier.wait()
        try:
            made.append(selection_make(cycle=Cycle.objects.get(pk=cycle.pk)).pk)
        finally:
            connection.close()

    threads = [threading.Thread(target=select) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(made)) == 1 and len(made) == 3
    assert Selection.objects.count() == 1 and SelectedItem.objects.count() == 4


@pytest.mark.django_db
def test_a_cycle_with_labels_cannot_skip_training_by_selecting(make_project: Any) -> None:
    project = make_project()
    ItemFactory(project=project, key="labeled", label="positive")
    ItemFactory(project=project, key="free")
    cycle = cycle_create(project=project, budget=1)
    with pytest.raises(InvalidTransition, match="is created"):
        selection_make(cycle=cycle)
    assert not Selection.objects.exists()


@pytest.mark.django_db
def test_topk_preview_reads_only_the_rows_it_shows(make_project: Any, django_assert_max_num_queries: Any) -> None:
    cycle = scored_cycle(make_project(labels=["a"]), [i / 100 for i in range(100)], budget=50)
    with django_assert_max_num_queries(8):
        preview = selection_preview(
            cycle=cycle, params=SelectionParams.for_cycle(cycle, budget=50, threshold=0.3), show=5
        )
    assert (preview["would_select"], len(preview["items"])) == (50, 5)
    assert (
        selection_preview(cycle=cycle, params=SelectionParams.for_cycle(cycle, budget=500, threshold=0.3))[
            "would_select"
        ]
        == 70
    )


def embedded_cycle(project: Any, emb: np.ndarray, *, probs: np.ndarray | None = None, **kw: Any) -> Cycle:
    """A scored cycle whose items have these embeddings (and probabilities), stored as the scoring step stores them."""
    cycle = scored_cycle(project, [0.5] * len(emb), **kw)
    ids = np.asarray(Score.objects.filter(cycle=cycle).order_by("item_id").values_list("item_id", flat=True))
    embeddings_save(cycle_id=cycle.pk, chunk=0, item_ids=ids, features=emb, probs=probs)
    return cycle


def keys(selection: Selection) -> list[str]:
    return list(SelectedItem.objects.filter(selection=selection).order_by("rank").values_list("item__key", flat=True))


CORNERS = np.asarray([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])


def corners(n_per: int) -> np.ndarray:
    return np.concatenate([c + np.random.default_rng(0).normal(scale=0.1, size=(n_per, 2)) for c in CORNERS])


@pytest.mark.django_db
@pytest.mark.parametrize("strategy", ["coreset", "diverse"])
def test_k_center_strategies_start_from_the_labeled_set(make_project: Any, strategy: str) -> None:
    """Issue 14: items beside a labeled one are covered; the batch goes to the corners nobody labeled."""
    cycle = embedded_cycle(make_project(labels=["a"]), corners(5), budget=2, strategy=strategy, seed=1)
    embeddings_save_labeled(cycle_id=cycle.pk, item_ids=np.asarray([1, 2]), features=CORNERS[:2])
    selection = selection_make(cycle=cycle)
    corner = [int(k[1:]) // 5 for k in keys(selection)]
    if strategy == "coreset":
        assert sorted(corner) == [2, 3]
    else:  # diverse keeps its most uncertain candidate first (all tie: k0), then an uncovered corner
        assert corner[0] == 0 and corner[1] in (2, 3)
    assert selection.params["labeled_embeddings"] == 2


@pytest.mark.django_db
def test_power_samples_from_the_whole_scored_pool(make_project: Any) -> None:
    """Issue 14 (PowerBALD): the Gumbel-top-k draw runs over every candidate, not the top 10 x budget."""
    u = list(np.linspace(1.0, 0.5, 300))  # k0 most uncertain ... k299 least
    cycle = scored_cycle(make_project(labels=["a"]), u, budget=5, strategy="power", seed=3)
    params = SelectionParams.for_cycle(cycle)
    before = [p["item_id"] for p in selection_preview(cycle=cycle, params=params)["items"]]
    ascending = np.asarray(u[::-1])  # candidates come in ascending (uncertainty, item id) order: k299 first
    expected = [f"k{299 - int(p)}" for p in strategies.power_sample(ascending, 5, seed=3, power=1.0)]
    picked = keys(selection_make(cycle=cycle))
    assert picked == expected and max(int(k[1:]) for k in picked) >= 50  # flat: the draw reaches far below the top
    assert "candidates_factor" not in cycle.strategy_params
    # Once scoring has frozen the sorted copy (with ids), the draw reads it instead of the rows: the same picks.
    score_stats_freeze(cycle=cycle)
    assert [p["item_id"] for p in selection_preview(cycle=cycle, params=params)["items"]] == before


@pytest.mark.django_db
def test_whole_pool_candidates_from_storage_skip_items_labeled_since_and_respect_the_threshold(
    make_project: Any,
) -> None:
    cycle = scored_cycle(make_project(labels=["a"]), [0.1, 0.9, 0.5, 0.7, 0.3], budget=5)
    score_stats_freeze(cycle=cycle)
    Item.objects.filter(key="k3").update(label="a")
    Item.objects.filter(key="k1").update(state="skipped")
    ids, u = scores_candidate_arrays(cycle=cycle, threshold=0.2)  # from storage
    assert [Item.objects.get(pk=i).key for i in ids] == ["k4", "k2"] and list(u) == [0.3, 0.5]
    # The same as the rows' own query, the rule before scoring froze the copy.
    rows = scores_candidates(cycle=cycle, threshold=0.2).order_by("uncertainty", "item_id")
    assert [(int(i), float(v)) for i, v in zip(ids, u, strict=True)] == list(rows.values_list("item_id", "uncertainty"))


@pytest.mark.django_db
def test_badge_and_coreset_draw_a_seeded_uniform_sample_of_candidates(make_project: Any) -> None:
    rng = np.random.default_rng(5)
    emb, probs = rng.normal(size=(40, 4)), rng.dirichlet(np.ones(3), size=40)
    project = make_project(labels=["a", "b", "c"])
    cycle = embedded_cycle(project, emb, probs=probs, budget=3, strategy="badge", seed=9)
    params = SelectionParams.for_cycle(cycle, options={"candidates_factor": 10})
    picked = [int(p["item_id"]) for p in selection_preview(cycle=cycle, params=params)["items"]]
    order = list(Score.objects.filter(cycle=cycle).order_by("uncertainty", "item_id").values_list("item_id", flat=True))
    sample = np.sort(np.random.default_rng([9, 1]).choice(40, 30, replace=False))
    ids = [order[int(s)] for s in sample]
    by_id = dict(zip(sorted(order), range(40), strict=True))
    rows = [by_id[i] for i in ids]
    expected = strategies.badge(probs[rows].astype(np.float16), emb[rows].astype(np.float16), 3, seed=9)
    assert picked == [ids[int(p)] for p in expected]
    # Without stored probabilities (scored before they were kept) BADGE says so; Coreset needs none.
    bare = embedded_cycle(make_project(labels=["a", "b"]), emb, budget=3, strategy="badge", seed=9)
    with pytest.raises(ValidationError, match="probabilities"):
        selection_make(cycle=bare)
    assert SelectionParams.for_cycle(bare, strategy="coreset").options["candidates_factor"] == 50
    assert len(selection_preview(cycle=bare, params=SelectionParams.for_cycle(bare, strategy="coreset"))["items"]) == 3


@pytest.mark.django_db
def test_typiclust_cold_start_takes_a_typical_item_of_each_mode(make_project: Any) -> None:
    project = make_project(task_type="image_classification", model_config={"image_size": 8, "channels": 1})
    image_pool(project, [("dark", _png(10), 40), ("bright", _png(240), 8), ("striped", _png(10, stripes=True), 8)])
    cycle = cycle_create(
        project=project, budget=3, seed=1, strategy="topk", strategy_params={"cold_start": "typiclust"}
    )
    selection = selection_make(cycle=cycle)
    assert sorted(k.split("-")[0] for k in keys(selection)) == ["bright", "dark", "striped"]
    assert selection.params["cold_start"] == "typiclust"


@pytest.mark.django_db
def test_diverse_candidates_from_the_sorted_copy_keep_the_databases_order(make_project: Any) -> None:
    """Issue 20: the diverse strategy's candidates (the `limit` most uncertain, ties by item id) come from the frozen
    sorted copy instead of a sort of the pool's rows: the same items in the same order, ties at the cut included."""
    from campaigns.selectors.scores import scores_candidates
    from campaigns.services.selection import _most_uncertain

    u = [0.9, 0.5, 0.7, 0.5, 0.5, 0.2, 0.7, 0.5, 0.1, 0.5]  # the cut at 5 falls inside the ties at 0.5
    cycle = scored_cycle(make_project(labels=["a"]), u, budget=1)
    score_stats_freeze(cycle=cycle)  # as scoring leaves it: the sorted copy with its ids
    for limit in (1, 3, 5, 9, 10, 50):
        expected = list(scores_candidates(cycle=cycle, threshold=None).values_list("item_id", flat=True)[:limit])
        assert _most_uncertain(cycle, None, limit).tolist() == expected, limit
    above = list(scores_candidates(cycle=cycle, threshold=0.6).values_list("item_id", flat=True))
    assert _most_uncertain(cycle, 0.6, 10).tolist() == above


@pytest.mark.django_db
def test_top_candidates_skip_items_labeled_since_scoring_and_count_the_rest(make_project: Any) -> None:
    """Issue 20: the bounded read of the sorted copy (the slider's preview, top-k's picks) leaves out items labeled
    or set aside after scoring, counts what is left, and keeps the database's order with ties at the cut."""
    from campaigns.selectors.scores import scores_candidates, scores_top_candidates

    u = [0.9, 0.5, 0.7, 0.5, 0.5, 0.2, 0.7, 0.5, 0.1, 0.5, 0.9, 0.3]
    cycle = scored_cycle(make_project(labels=["a"]), u, budget=1)
    score_stats_freeze(cycle=cycle)
    first = Score.objects.filter(cycle=cycle).order_by("-uncertainty", "item_id").first()
    assert first is not None
    Item.objects.filter(pk=first.item_id).update(label="a")  # labeled after scoring: no longer a candidate
    for threshold in (None, 0.5, 0.6, 0.95):
        expected = list(scores_candidates(cycle=cycle, threshold=threshold).values_list("item_id", flat=True))
        for limit in (1, 2, 4, 6, 20):
            top = scores_top_candidates(cycle=cycle, threshold=threshold, limit=limit)
            assert top is not None
            assert (top[0].tolist(), top[1]) == (expected[:limit], len(expected)), (threshold, limit)
