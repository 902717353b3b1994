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


def test_report_files_are_written(tmp_path: Path) -> None:
    arm = Arm("bald", [curve((10, 0.5), (20, 0.8))])
    base = Arm("random", [curve((10, 0.5), (20, 0.6))])
    write_report(tmp_path, strategy=arm, baseline=base, setup={"dataset": "digits"})
    assert (tmp_path / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"
    text = (tmp_path / "report.md").read_text()
    assert "labels_fraction_vs_random" in text and "| 20 | 0.800 ± 0.000 | 0.600 ± 0.000 |" in text
