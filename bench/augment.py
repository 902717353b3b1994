"""Training augmentation off vs on: random-label learning curves of the image CNN (bench/learning.py's protocol).

For each image dataset of the learning benchmark and each paired seed: the same split, the same initial labels and
the same random acquisitions (bench/learning.py's random arm: the picks do not depend on the model) for both arms;
the same initial weights and shuffles per cycle; the arms differ only by ``TrainConfig.augment`` (engine.augment).
Curves on one grid (the cycle points), AUC and final macro-F1 with 95% paired bootstrap intervals over the seeds
(engine/learning_protocol.py). The default is chosen on both datasets together (docs/models.md, "Training
augmentation"). Last line:

    RESULT {"auc_gain": g, "auc_gain_ci_low": lo, "per_dataset": {...}, ...}

g: AUC(on) - AUC(off), mean over datasets; lo: the 95% lower bound of that mean (seeds resampled jointly).

    .venv/bin/python bench/augment.py --quick       # 2 seeds, 4 cycles: a few minutes
    .venv/bin/python bench/augment.py               # dev seeds 0-4, 9 cycles
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.learning import build_model, tensors  # noqa: E402
from bench.learning_data import DATASETS, Dataset  # noqa: E402
from engine import selection  # noqa: E402
from engine.augment import PRESETS, Augment  # noqa: E402
from engine.learning_protocol import (  # noqa: E402
    FloatArray,
    auc_gain_stat,
    auc_stat,
    initial_labeled,
    labels_spent,
    make_split,
    normalised_auc,
    on_grid,
    paired_bootstrap,
    seed_for,
)
from engine.recipes import train_config  # noqa: E402
from engine.training import train_classifier  # noqa: E402

IMAGE_SETS = ("digits-iid", "digits-longtail")


def curve(ds: Dataset, seed: int, cycles: int, augment: Augment | None) -> FloatArray:
    """[labels spent, test macro-F1] after each cycle; random acquisition exactly as bench/learning.py's random arm."""
    plan = ds.plan
    split = make_split(len(ds.y), n_test=plan.n_test, n_valid=plan.n_valid, seed=seed)
    pool = split.pool
    labeled = initial_labeled(len(pool), plan.initial, seed=seed)
    rows: list[tuple[float, float]] = []
    for cycle in range(cycles + 1):
        cycle_seed = seed_for(seed, cycle)
        model = build_model(ds, seed_for(cycle_seed, 4))
        config = train_config(model, seed=seed_for(cycle_seed, 5), augment=augment)
        result = train_classifier(
            model,
            tensors(ds, pool[labeled]),
            tensors(ds, split.valid),
            num_classes=len(ds.labels),
            test=tensors(ds, split.test),
            config=config,
        )
        assert result.test is not None  # a test split is always given
        rows.append((labels_spent(len(labeled), plan.n_valid), result.test.macro_f1))
        if cycle == cycles:
            break
        unlabeled = np.setdiff1d(np.arange(len(pool)), labeled)
        budget = min(plan.step, len(unlabeled))
        picks = np.asarray(selection.random_sample(len(unlabeled), budget, seed=seed_for(seed, cycle, 3)))
        labeled = np.concatenate([labeled, unlabeled[picks]])
    return np.asarray(rows, dtype=np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 seeds, 4 cycles")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds (default 0-4: the dev seeds)")
    parser.add_argument("--preset", default="light", choices=sorted(PRESETS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else list(range(2 if args.quick else 5))
    aug = PRESETS[args.preset]
    started = time.perf_counter()
    per: dict[str, Any] = {}
    curves_all: dict[str, dict[str, FloatArray]] = {}
    for name in IMAGE_SETS:
        ds = DATASETS[name]()
        cycles = 4 if args.quick else ds.plan.cycles
        raw = {arm: [curve(ds, s, cycles, a) for s in seeds] for arm, a in (("off", None), ("on", aug))}
        grid = raw["off"][0][:, 0]  # identical label counts in both arms: the acquisitions are the same
        curves = {arm: np.stack([on_grid(c[:, 0], c[:, 1], grid) for c in cs]) for arm, cs in raw.items()}
        curves_all[name] = curves
        gain = paired_bootstrap(curves, auc_gain_stat(grid, "on", "off"))
        final = paired_bootstrap(curves, lambda m: float(m["on"][-1] - m["off"][-1]))
        per[name] = {
            "auc_off": paired_bootstrap(curves, auc_stat(grid, "off")).as_json(),
            "auc_on": paired_bootstrap(curves, auc_stat(grid, "on")).as_json(),
            "auc_gain": gain.as_json(),
            "final_f1_off": round(float(curves["off"][:, -1].mean()), 4),
            "final_f1_on": round(float(curves["on"][:, -1].mean()), 4),
            "final_f1_gain": final.as_json(),
            "grid": [int(g) for g in grid],
        }
        print(f"  {name}: {json.dumps(per[name])}", flush=True)
    # Both datasets together: per seed, the mean over datasets of the AUC gain (seeds are paired across datasets
    # too: seed s is one bootstrap unit).
    per_seed = np.mean(
        [
            [
                normalised_auc(np.asarray(per[n]["grid"], float), c["on"][i])
                - normalised_auc(np.asarray(per[n]["grid"], float), c["off"][i])
                for i in range(len(seeds))
            ]
            for n, c in curves_all.items()
        ],
        axis=0,
    )
    joint = paired_bootstrap({"gain": per_seed[:, None]}, lambda m: float(m["gain"][0]))
    result = {
        "preset": args.preset,
        "augment": aug.params(),
        "seeds": seeds,
        "auc_gain": round(joint.value, 4),
        "auc_gain_ci_low": round(joint.low, 4),
        "auc_gain_ci_high": round(joint.high, 4),
        "per_dataset": {n: {k: v for k, v in r.items() if k != "grid"} for n, r in per.items()},
        "seconds": round(time.perf_counter() - started, 1),
    }
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
