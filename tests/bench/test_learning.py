"""The learning benchmark's protocol rules (engine/learning_protocol.py, bench/learning.py), on tiny data."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from bench import learning
from bench.learning_arms import ARMS, DECLARED_DEFAULT, product_default, same_as
from bench.learning_data import Dataset, Plan, read_dpkg
from engine.learning_protocol import (
    NEVER,
    Estimate,
    auc_gain_stat,
    auc_stat,
    initial_labeled,
    labels_fraction_stat,
    labels_spent,
    labels_to_reach,
    make_split,
    normalised_auc,
    on_grid,
    paired_bootstrap,
)


def tiny_dataset() -> Dataset:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 40)
    x = (rng.normal(size=(120, 8)) + 2.0 * np.eye(3, 8)[y]).astype(np.float32)
    plan = Plan(initial=6, step=4, cycles=2, n_valid=9, n_test=30)
    return Dataset("tiny", "text", x, y.astype(np.int64), ["a", "b", "c"], "test", plan)


def test_split_is_a_disjoint_cover_and_changes_with_the_seed() -> None:
    s = make_split(100, n_test=20, n_valid=10, seed=3)
    everything = np.concatenate([s.pool, s.valid, s.test])
    assert sorted(everything.tolist()) == list(range(100))
    assert (len(s.pool), len(s.valid), len(s.test)) == (70, 10, 20)
    assert not np.array_equal(make_split(100, n_test=20, n_valid=10, seed=4).test, s.test)
    with pytest.raises(ValueError):
        make_split(30, n_test=20, n_valid=10, seed=0)


def test_initial_labels_depend_on_the_seed_only() -> None:
    a = initial_labeled(500, 20, seed=7)
    assert np.array_equal(a, initial_labeled(500, 20, seed=7))
    assert len(np.unique(a)) == 20
    assert not np.array_equal(a, initial_labeled(500, 20, seed=8))


def test_every_arm_starts_from_the_same_labels_and_model_and_validation_is_counted() -> None:
    ds = tiny_dataset()
    curves = {
        name: learning.run_arm(ds, ds.plan, ARMS[name], seed=1, pool_cap=None, t=4, first={})
        for name in ("random", "bald", "margin")
    }
    # Separate caches: equal first points mean the same initial labels and the same first model, not a shared cache.
    firsts = {tuple(c[0]) for c in curves.values()}
    assert len(firsts) == 1
    expected_x = [labels_spent(6 + 4 * k, 9) for k in range(3)]
    for c in curves.values():
        assert c[:, 0].tolist() == expected_x  # x = training labels + the 9 validation labels
        assert ((c[:, 1] >= 0) & (c[:, 1] <= 1)).all()


def test_labels_spent_counts_validation() -> None:
    assert labels_spent(100, 50) == 150


def test_interpolation_refuses_extrapolation() -> None:
    x, y = np.array([10.0, 20.0, 30.0]), np.array([0.1, 0.5, 0.6])
    assert on_grid(x, y, np.array([10.0, 15.0, 30.0])).tolist() == pytest.approx([0.1, 0.3, 0.6])
    with pytest.raises(ValueError):
        on_grid(x, y, np.array([5.0, 30.0]))


def test_labels_needed_are_read_alike_on_both_sides() -> None:
    grid = np.array([10.0, 20.0, 30.0, 40.0])
    # Random reaches its final value (0.8) at 30 labels already: read off the curve like any arm, it needs 30,
    # not its last point (40). A one-sided reading would credit an identical arm with 30/40 = 0.75.
    random = np.array([[0.2, 0.6, 0.8, 0.8]])
    assert labels_fraction_stat(grid, "arm", "random")({"arm": random[0], "random": random[0]}) == pytest.approx(1.0)
    faster = np.array([0.2, 0.7, 0.9, 0.9])  # crosses 0.8 halfway between 20 and 30
    assert labels_to_reach(grid, faster, 0.8) == pytest.approx(25.0)
    assert labels_fraction_stat(grid, "arm", "random")({"arm": faster, "random": random[0]}) == pytest.approx(25 / 30)


def test_never_reached_is_reported_as_such() -> None:
    grid = np.array([10.0, 20.0, 30.0])
    assert labels_to_reach(grid, np.array([0.1, 0.2, 0.3]), 0.5) == NEVER
    curves = {"random": np.array([[0.2, 0.5, 0.7]] * 3), "arm": np.array([[0.1, 0.2, 0.3]] * 3)}
    est = paired_bootstrap(curves, labels_fraction_stat(grid, "arm", "random"), n_boot=50)
    assert math.isinf(est.value)
    assert est.as_json() == [None, None, None]


def test_auc_is_the_mean_height_over_the_label_span() -> None:
    grid = np.array([0.0, 10.0, 30.0])
    assert normalised_auc(grid, np.array([0.5, 0.5, 0.5])) == pytest.approx(0.5)
    assert normalised_auc(grid, np.array([0.0, 0.1, 0.3])) == pytest.approx(0.15)


def test_bootstrap_interval_contains_the_point_and_pairs_the_seeds() -> None:
    rng = np.random.default_rng(0)
    grid = np.linspace(50, 250, 6)
    base = np.linspace(0.4, 0.8, 6)
    random = base + rng.normal(0, 0.03, size=(6, 6))
    arm = random + 0.02  # the same seeds' curves, better by exactly 0.02 everywhere
    curves = {"random": random, "arm": arm}
    auc = paired_bootstrap(curves, auc_stat(grid, "arm"), n_boot=500)
    assert auc.low <= auc.value <= auc.high
    assert auc.high - auc.low > 0.005  # real spread between seeds
    gain = paired_bootstrap(curves, auc_gain_stat(grid, "arm", "random"), n_boot=500)
    # Paired resampling: the per-seed gain is 0.02 in every seed, so every resample sees exactly 0.02.
    assert gain.low == pytest.approx(0.02) and gain.high == pytest.approx(0.02)
    assert Estimate(0.1, 0.0, math.inf).as_json() == [0.1, 0.0, None]


def test_the_benchmarked_default_is_the_products() -> None:
    spec, source = product_default()
    assert source.startswith("campaigns.models"), source
    assert spec == DECLARED_DEFAULT
    assert same_as(spec) == "margin"


def test_dpkg_records_are_parsed_with_their_long_description(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text(
        "Package: a\nSection: utils\nDescription: short one\n first line\n .\n second\n\n"
        "Package: b\nSection: contrib/net\nDescription: net tool\nHomepage: x\n\n"
        "Package: c\nDescription: no section\n"
    )
    assert read_dpkg(status) == [("utils", "short one first line second"), ("net", "net tool")]


def test_the_plot_draws_the_defaults_twin_once(tmp_path: Path) -> None:
    from bench.learning_report import twin_of, write_plot

    grid = np.array([10.0, 20.0, 30.0])
    bald = np.array([[0.2, 0.4, 0.6], [0.3, 0.5, 0.7]])
    curves = {"random": bald + 0.01, "bald": bald, "default": bald.copy()}
    assert twin_of(curves, "default") == "bald"
    assert twin_of({"random": bald + 0.01, "default": bald}, "default") is None
    write_plot(tmp_path / "p.png", grid, curves, title="t", n_valid=5)
    assert (tmp_path / "p.png").stat().st_size > 1000
