"""The arithmetic of the simulation report: labels to reach a target, mean curves, the written report."""

from __future__ import annotations

from pathlib import Path

import pytest

from campaigns.services.demo_report import Arm, summarize, write_report
from campaigns.services.simulation import Point, labels_to_reach, mean_curve


def curve(*pairs: tuple[int, float]) -> list[Point]:
    return [Point(labels, acc, acc - 0.05) for labels, acc in pairs]


def test_labels_to_reach_interpolates_between_points() -> None:
    c = curve((10, 0.5), (20, 0.7), (30, 0.9))
    assert labels_to_reach(c, 0.8) == pytest.approx(25.0)
    assert labels_to_reach(c, 0.4) == 10.0
    assert labels_to_reach(c, 0.95) is None


def test_mean_curve_and_summary_fraction() -> None:
    strategy = Arm("bald", [curve((10, 0.5), (20, 0.8), (30, 0.9)), curve((10, 0.5), (20, 0.8), (30, 0.92))])
    random = Arm("random", [curve((10, 0.5), (20, 0.6), (30, 0.7)), curve((10, 0.5), (20, 0.62), (30, 0.72))])
    mean, std = mean_curve(random.curves)
    assert [p.accuracy for p in mean] == pytest.approx([0.5, 0.61, 0.71])
    assert std[1] == pytest.approx(0.01)
    summary = summarize(strategy, random)
    # random ends at 0.71 with 30 labels; bald passes 0.71 between 10 (0.5) and 20 (0.8): at 17 labels.
    assert summary["labels_fraction_vs_random"] == pytest.approx(17 / 30, abs=1e-3)
    assert summary["cycles"] == 3 and summary["seeds"] == 2  # three labeling cycles, a point each


def test_both_arms_are_interpolated_alike_and_the_ratio_uses_both() -> None:
    """Issue 14: random reaches its final accuracy (0.7) at 20 labels already; its labels are interpolated like the
    strategy's, not read at its last point (30)."""
    strategy = Arm("bald", [curve((10, 0.5), (20, 0.6), (30, 0.8))])
    random = Arm("random", [curve((10, 0.5), (20, 0.7), (30, 0.7))])
    summary = summarize(strategy, random)
    assert summary["random_labels_needed"] == pytest.approx(20.0)
    assert summary["labels_needed"] == pytest.approx(25.0)  # 0.6 at 20, 0.8 at 30: 0.7 at 25
    assert summary["labels_fraction_vs_random"] == pytest.approx(25 / 20, abs=1e-3)
    # The same for macro-F1 (0.05 below accuracy in these curves).
    assert summary["labels_fraction_vs_random_macro_f1"] == pytest.approx(25 / 20, abs=1e-3)


def test_never_reached_is_reported_as_such() -> None:
    strategy = Arm("bald", [curve((10, 0.5), (20, 0.55), (30, 0.6))])
    random = Arm("random", [curve((10, 0.5), (20, 0.6), (30, 0.7))])
    summary = summarize(strategy, random)
    assert summary["target_reached"] is False and summary["labels_needed"] == "never reached"
    assert summary["labels_fraction_vs_random"] is None


def test_labels_to_reach_reads_macro_f1_too() -> None:
    c = [Point(10, 0.9, 0.3), Point(20, 0.9, 0.5)]
    assert labels_to_reach(c, 0.4, metric="macro_f1") == pytest.approx(15.0)


def test_report_files_are_written(tmp_path: Path) -> None:
    arm = Arm("bald", [curve((10, 0.5), (20, 0.8))])
    base = Arm("random", [curve((10, 0.5), (20, 0.6))])
    write_report(tmp_path, strategy=arm, baseline=base, setup={"dataset": "digits"})
    assert (tmp_path / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"
    text = (tmp_path / "report.md").read_text()
    assert "labels_fraction_vs_random" in text and "| 20 | 0.800 ± 0.000 | 0.600 ± 0.000 |" in text
