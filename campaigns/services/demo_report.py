"""The simulation report: learning curves of a strategy against a random baseline, across seeds.

Writes `report.md` and `learning_curves.png` (mean accuracy against labels, with ±1 std bands) into a folder and
returns the summary numbers `make demo` prints as its RESULT line.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from campaigns.services.simulation import Point, labels_to_reach, mean_curve


@dataclass(frozen=True)
class Arm:
    name: str
    curves: list[list[Point]]


def summarize(strategy: Arm, baseline: Arm) -> dict[str, Any]:
    """The comparison's figures. The target is the baseline's final mean value; the labels each arm needs to reach
    it are interpolated alike (`labels_to_reach`), and their ratio is labels(strategy) / labels(baseline). A
    strategy whose mean curve never reaches the target has no ratio: it is reported as never reached."""
    s_mean, _ = mean_curve(strategy.curves)
    r_mean, _ = mean_curve(baseline.curves)
    summary: dict[str, Any] = {
        "cycles": len(s_mean),  # labeling cycles: each adds a budget of labels and a point to the curve
        "seeds": len(strategy.curves),
    }
    for metric, suffix in (("accuracy", ""), ("macro_f1", "_macro_f1")):
        target = getattr(r_mean[-1], metric)
        needed = labels_to_reach(s_mean, target, metric=metric)
        random_needed = labels_to_reach(r_mean, target, metric=metric)  # its own final value: always reached
        assert random_needed is not None
        summary |= {
            f"labels_fraction_vs_random{suffix}": round(needed / random_needed, 3) if needed is not None else None,
            f"labels_needed{suffix}": round(needed, 1) if needed is not None else NEVER_REACHED,
            f"random_labels_needed{suffix}": round(random_needed, 1),
            f"target_reached{suffix}": needed is not None,
        }
    return summary | {
        "random_labels": r_mean[-1].labels,
        "final_accuracy": round(s_mean[-1].accuracy, 4),
        "random_final_accuracy": round(r_mean[-1].accuracy, 4),
        "final_macro_f1": round(s_mean[-1].macro_f1, 4),
        "random_final_macro_f1": round(r_mean[-1].macro_f1, 4),
    }


NEVER_REACHED = "never reached"


def plot(arms: list[Arm], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for arm, color in zip(arms, ["tab:blue", "tab:gray", "tab:orange", "tab:green"], strict=False):
        mean, std = mean_curve(arm.curves)
        x = [p.labels for p in mean]
        y = [p.accuracy for p in mean]
        ax.plot(x, y, marker="o", color=color, label=f"{arm.name} ({len(arm.curves)} seeds)")
        ax.fill_between(
            x,
            [a - s for a, s in zip(y, std, strict=True)],
            [a + s for a, s in zip(y, std, strict=True)],
            color=color,
            alpha=0.2,
        )
    ax.set_xlabel("labels")
    ax.set_ylabel("test accuracy")
    ax.set_title("\n".join(textwrap.wrap(title, 70)), fontsize=10)  # long data set names stay inside the figure
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(folder: Path, *, strategy: Arm, baseline: Arm, setup: dict[str, Any]) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    summary = summarize(strategy, baseline)
    plot([strategy, baseline], folder / "learning_curves.png", f"{setup.get('dataset', '')}: {strategy.name} vs random")
    lines = [
        f"# alweb simulation: {strategy.name} vs {baseline.name}",
        "",
        "Setup: " + ", ".join(f"{k} = {v}" for k, v in setup.items()),
        "",
        "![learning curves](learning_curves.png)",
        "",
        "## Summary",
        "",
        "| measure | value |",
        "| --- | --- |",
        *[f"| {k} | {v} |" for k, v in summary.items()],
        "",
        "## Learning curves (mean over seeds)",
        "",
        "| labels | " + strategy.name + " accuracy | random accuracy |",
        "| --- | --- | --- |",
    ]
    s_mean, s_std = mean_curve(strategy.curves)
    r_mean, r_std = mean_curve(baseline.curves)
    for s, ss, r, rs in zip(s_mean, s_std, r_mean, r_std, strict=False):
        lines.append(f"| {s.labels} | {s.accuracy:.3f} ± {ss:.3f} | {r.accuracy:.3f} ± {rs:.3f} |")
    lines += ["", "## Per seed", ""]
    for arm in (strategy, baseline):
        for i, curve in enumerate(arm.curves):
            lines.append(f"- {arm.name}, seed {i}: " + ", ".join(f"{p.labels}→{p.accuracy:.3f}" for p in curve))
    (folder / "report.md").write_text("\n".join(lines) + "\n")
    (folder / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
