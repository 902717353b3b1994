"""Learning-efficiency benchmark for detection: alweb's detection uncertainties against random sampling.

The protocol of ``bench/learning.py`` (``engine/learning_protocol.py``), on the generated shapes set
(``campaigns/demo_shapes.py``: one to four shapes per image, 55/25/14/6% squares/circles/triangles/crosses): for each
of S paired seeds the seed draws the split (pool / validation / test, i.i.d.) and the initial labeled images,
identical for every arm; every arm then runs the same loop with the same detector (``engine/detector.py``, weights
and shuffles seeded by (seed, cycle)), training budget and validation labels: train, record test mAP@0.5 and
mAP@0.5:0.95 (pycocotools) at ``labels spent = training + validation images``, score the unlabeled pool with MC
dropout, and label the next batch: the most uncertain images (ties broken at random, seeded) or a random batch.

Arms: ``random``; ``min_confidence`` (the product's default for detection: the cycle heuristic ``margin``),
``mean_confidence`` (``entropy``) and ``mc_variance`` (``bald``: MC spread of box scores and positions).

Per arm: normalised area under the mAP@0.5 curve, its gain over random and the labels needed to reach random's
final mAP@0.5, each with a 95% paired bootstrap interval over the seeds, and a plot. Last line:

    RESULT {"dataset": "shapes", "seeds": s, "auc_map50": {...}, "auc_gain_vs_random": {...}, ...}

    .venv/bin/python bench/learning_detection.py --quick   # 2 seeds, 3 cycles, 2 arms, 32 px: a few minutes
    .venv/bin/python bench/learning_detection.py           # 5 seeds, 6 cycles, every arm, 48 px
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.learning_data import CACHE  # noqa: E402
from bench.learning_report import summarise_dataset, write_plot  # noqa: E402
from campaigns.demo_shapes import SHAPE_LABELS, SHAPE_WEIGHTS, shapes_arrays  # noqa: E402
from engine.detector import CenterDetector  # noqa: E402
from engine.detector_training import DetectorConfig, DetectorResult, score_detector, train_detector  # noqa: E402
from engine.learning_protocol import FloatArray, initial_labeled, labels_spent, make_split, on_grid, seed_for  # noqa: E402

THREADS = 1  # two cores shared with other engineers' work: one torch thread, one process
# Arm -> the cycle heuristic whose detection uncertainty it ranks by (engine.detector_training.METHOD_FOR_HEURISTIC).
ARMS = {"random": None, "min_confidence": "margin", "mean_confidence": "entropy", "mc_variance": "bald"}
DEFAULT_ARM = "min_confidence"  # a detection project's default heuristic, margin, reads as min_confidence
QUICK_ARMS = ("random", "min_confidence")
MC_ITERATIONS = 8


@dataclass(frozen=True)
class Plan:
    images: int  # generated images in all
    size: int  # pixels a side
    initial: int  # seeded random initial labeled images, identical for every arm
    step: int  # images each later cycle labels
    cycles: int
    n_valid: int
    n_test: int
    steps: int  # optimizer steps per training (epochs stretched to reach them): the same budget every cycle


QUICK = Plan(images=760, size=32, initial=40, step=40, cycles=3, n_valid=60, n_test=200, steps=100)
FULL = Plan(images=1500, size=48, initial=50, step=50, cycles=6, n_valid=80, n_test=300, steps=250)


def train(x: np.ndarray, boxes: list[Any], pos: np.ndarray, valid: Any, test: Any, seed: int, plan: Plan) -> Any:
    torch.manual_seed(seed_for(seed, 4))
    model = CenterDetector(len(SHAPE_LABELS), image_size=plan.size)
    config = DetectorConfig(epochs=1, min_steps=plan.steps, seed=seed_for(seed, 5))
    train_set = (torch.from_numpy(x[pos]), [boxes[int(i)] for i in pos])
    return train_detector(model, train_set, SHAPE_LABELS, valid=valid, test=test, config=config)


def acquire(arm: str, result: DetectorResult, x_unl: np.ndarray, budget: int, seed: int) -> np.ndarray:
    """Positions into the unlabeled images: a random batch, or the `budget` most uncertain (seeded tie-break: an
    image without a box scores 1.0, and many can)."""
    rng = np.random.default_rng(seed)
    heuristic = ARMS[arm]
    if heuristic is None:
        return rng.choice(len(x_unl), budget, replace=False)
    chunk = score_detector(
        result.model,
        torch.from_numpy(x_unl),
        list(range(len(x_unl))),
        SHAPE_LABELS,
        iterations=MC_ITERATIONS,
        heuristic=heuristic,
        seed=seed,
    )
    return np.lexsort((rng.random(len(x_unl)), -chunk.uncertainty))[:budget]


def run_arm(arm: str, data: Any, plan: Plan, seed: int, first: dict[int, Any]) -> tuple[FloatArray, dict[str, Any]]:
    """One arm, one seed: [labels spent, mAP@0.5, mAP@0.5:0.95] after each cycle, and the last per-class AP@0.5."""
    x, boxes = data
    split = make_split(len(x), n_test=plan.n_test, n_valid=plan.n_valid, seed=seed)
    valid = (torch.from_numpy(x[split.valid]), [boxes[int(i)] for i in split.valid])
    test = (torch.from_numpy(x[split.test]), [boxes[int(i)] for i in split.test])
    pool = split.pool
    labeled = initial_labeled(len(pool), plan.initial, seed=seed)
    rows = []
    for cycle in range(plan.cycles + 1):
        if cycle == 0 and seed in first:  # every arm's first model is the same model: trained once per seed
            result = first[seed]
        else:
            result = train(x, boxes, pool[labeled], valid, test, seed_for(seed, cycle), plan)
            if cycle == 0:
                first[seed] = result
        rows.append((labels_spent(len(labeled), plan.n_valid), result.test["map_50"], result.test["map"]))
        if cycle == plan.cycles:
            break
        unlabeled = np.setdiff1d(np.arange(len(pool)), labeled)
        picks = acquire(arm, result, x[pool[unlabeled]], min(plan.step, len(unlabeled)), seed_for(seed, cycle, 3))
        labeled = np.concatenate([labeled, unlabeled[picks]])
    return np.asarray(rows, dtype=np.float64), result.test["per_class_ap50"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 seeds, 3 cycles, 2 arms, 32 px images")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--arms", default=None, help=f"comma-separated, from {', '.join(ARMS)}")
    parser.add_argument("--plots", type=Path, default=ROOT / "docs" / "learning")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    started = time.perf_counter()
    plan = QUICK if args.quick else FULL
    seeds = args.seeds or (2 if args.quick else 5)
    arms = args.arms.split(",") if args.arms else list(QUICK_ARMS if args.quick else ARMS)
    if "random" not in arms or any(a not in ARMS for a in arms):
        parser.error(f"--arms must include random and name only {', '.join(ARMS)}")
    x, boxes = shapes_arrays(plan.images, size=plan.size, seed=12345)  # one fixed set; seeds resample its split
    counts = np.bincount([SHAPE_LABELS.index(b["label"]) for bs in boxes for b in bs], minlength=len(SHAPE_LABELS))
    print(
        f"shapes: {plan.images} images, objects per class {dict(zip(SHAPE_LABELS, counts.tolist(), strict=True))}",
        flush=True,
    )

    raw: dict[str, list[FloatArray]] = {a: [] for a in arms}
    per_class: dict[str, list[dict[str, Any]]] = {a: [] for a in arms}
    for seed in range(seeds):
        first: dict[int, Any] = {}
        for arm in arms:
            rows, final_ap = run_arm(arm, (x, boxes), plan, seed, first)
            raw[arm].append(rows)
            per_class[arm].append(final_ap)
        finals = {a: round(float(c[-1][-1][1]), 3) for a, c in raw.items()}
        print(f"  seed {seed}: final mAP@0.5 {finals} ({time.perf_counter() - started:.0f}s)", flush=True)
    grid = raw["random"][0][:, 0]
    curves = {a: np.stack([on_grid(c[:, 0], c[:, 1], grid) for c in cs]) for a, cs in raw.items()}
    strict = {a: np.stack([on_grid(c[:, 0], c[:, 2], grid) for c in cs]) for a, cs in raw.items()}
    default = DEFAULT_ARM if DEFAULT_ARM in arms else next(a for a in arms if a != "random")
    summary = summarise_dataset(grid, curves, baseline="random", default=default)
    mode = "quick" if args.quick else "full"
    write_plot(
        args.plots / f"shapes-detection-{mode}.png",
        grid,
        curves,
        title=f"shapes detection, {seeds} seeds ({mode})",
        n_valid=plan.n_valid,
        ylabel="test mAP@0.5",
    )
    out: dict[str, Any] = {
        "dataset": "shapes",
        "mode": mode,
        "seeds": seeds,
        "plan": asdict(plan),
        "class_mix": dict(zip(SHAPE_LABELS, SHAPE_WEIGHTS, strict=True)),
        "grid": summary["grid"],
        "mean_map50": summary["mean_curves"],
        "mean_map": {a: [round(float(v), 4) for v in c.mean(axis=0)] for a, c in strict.items()},
        "auc_map50": summary["auc"],
        "auc_gain_vs_random": summary["auc_gain_by_arm"],
        "labels_fraction_vs_random": summary["labels_fraction_by_arm"],
        "random_final_map50": summary["random_final_f1"],
        "final_ap50_per_class": {
            a: {
                label: round(float(np.mean([r[label] for r in rs if r[label] is not None])), 4)
                for label in SHAPE_LABELS
            }
            for a, rs in per_class.items()
        },
        "minutes": round((time.perf_counter() - started) / 60, 2),
    }
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / f"learning-detection-{mode}.json").write_text(json.dumps({"result": out, "details": summary}, indent=1))
    print("RESULT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
