"""Per-dataset figures and plots of ``bench/learning.py``: every number from ``engine/learning_protocol.py``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from engine.learning_protocol import (
    FloatArray,
    auc_gain_stat,
    auc_stat,
    labels_fraction_stat,
    labels_needed_stat,
    paired_bootstrap,
)

N_BOOT = 2000


def summarise_dataset(
    grid: FloatArray, curves: dict[str, FloatArray], *, baseline: str, default: str
) -> dict[str, Any]:
    """AUC per arm, AUC gain and labels needed against ``baseline`` per arm, each with its paired 95% interval.
    ``None`` in an interval means "never reached" (the target was not reached within the budget)."""
    others = [a for a in curves if a != baseline]
    out: dict[str, Any] = {
        "grid": [float(g) for g in grid],
        "mean_curves": {a: [round(float(v), 4) for v in c.mean(axis=0)] for a, c in curves.items()},
        # Every seed's curve, so plots and figures can be redrawn from the JSON without rerunning.
        "seed_curves": {a: np.round(c, 4).tolist() for a, c in curves.items()},
        "random_final_f1": round(float(curves[baseline][:, -1].mean()), 4),
        "auc": {a: paired_bootstrap(curves, auc_stat(grid, a), n_boot=N_BOOT).as_json() for a in curves},
        "auc_gain_by_arm": {
            a: paired_bootstrap(curves, auc_gain_stat(grid, a, baseline), n_boot=N_BOOT).as_json() for a in others
        },
        "labels_needed": {
            a: paired_bootstrap(curves, labels_needed_stat(grid, a, baseline), n_boot=N_BOOT).as_json(1) for a in curves
        },
        "labels_fraction_by_arm": {
            a: paired_bootstrap(curves, labels_fraction_stat(grid, a, baseline), n_boot=N_BOOT).as_json()
            for a in others
        },
    }
    # With the default absent (an --arms run without it) the headline figures are left empty, not invented.
    out["auc_gain"] = out["auc_gain_by_arm"].get(default, [None, None, None])
    out["labels_fraction"] = out["labels_fraction_by_arm"].get(default, [None, None, None])
    return out


def twin_of(curves: dict[str, FloatArray], arm: str) -> str | None:
    """Another arm whose curves are exactly ``arm``'s (the default run as its twin): drawn once, not hidden."""
    return next((a for a, c in curves.items() if a != arm and arm in curves and np.array_equal(c, curves[arm])), None)


def write_plot(
    path: Path,
    grid: FloatArray,
    curves: dict[str, FloatArray],
    *,
    title: str,
    n_valid: int,
    ylabel: str = "test macro-F1",
) -> None:
    """Mean test metric (macro-F1, or mAP for detection) per arm against labels spent; shaded: the seeds' 95%
    bootstrap band of the mean for random and the default (the two arms the headline compares)."""
    import matplotlib

    matplotlib.use("Agg")  # no display on the benchmark machines
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    rng = np.random.default_rng(0)
    twin = twin_of(curves, "default")
    # Fixed colours, none of them the default's red or random's black, so no arm can be mistaken for the two.
    palette = iter(
        ["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan"]
    )
    for arm, c in curves.items():
        if arm == twin:
            continue
        mean = c.mean(axis=0)
        color, line, width = {"random": ("black", "--", 2.0), "default": ("tab:red", "-", 2.4)}.get(
            arm, (next(palette), "-", 1.2)
        )
        label = f"default (= {twin})" if arm == "default" and twin else arm
        ax.plot(grid, mean, line, color=color, linewidth=width, label=label, marker="o", markersize=2.5)
        if arm in ("random", "default"):
            draws = np.stack([c[rng.integers(0, len(c), len(c))].mean(axis=0) for _ in range(1000)])
            lo, hi = np.percentile(draws, [2.5, 97.5], axis=0)
            ax.fill_between(grid, lo, hi, color=color, alpha=0.15, linewidth=0)
    ax.set_xlabel(f"labels spent (training + {n_valid} validation)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def write_dataset_plots(runs: dict[str, dict[str, Any]], folder: Path, *, prefix: str, title: str) -> list[str]:
    """One figure per dataset of ``runs`` ({name: {"grid", "curves", "n_valid"}}), ``folder/<prefix>-<name>.png``,
    titled ``title.format(name=...)``; returns the paths written."""
    paths = []
    for name, run in runs.items():
        path = folder / f"{prefix}-{name}.png"
        write_plot(path, run["grid"], run["curves"], title=title.format(name=name), n_valid=int(run["n_valid"]))
        paths.append(str(path))
    return paths
