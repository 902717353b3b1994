"""Label-quality benchmark: does confident learning find flipped labels, and does re-labeling them pay?

For each dataset (``bench/learning_data.py``: every one available offline) and each of S paired seeds: the seed
resamples the split (pool / validation / test, i.i.d., ``engine.learning_protocol``) and takes the first N pool
items as the labeled set. A simulated annotator labels them with exactly 10% of the labels flipped to another
class (``engine.label_quality.flip_labels``); validation labels come from the same annotator, so they are noisy
too, while test labels stay true (they only measure).

1. Finding: out-of-fold probabilities from K models of the product's architecture (``out_of_fold_probs``, the
   product's own code path) ranked by cleanlab (``rank_label_issues``); the share of flipped labels among the top
   5% suspects. Chance would be 10%.
2. Fixing, at equal labels: from the same noisy labeled set, spend B more labels either on B new items ("new") or
   on re-labeling the top 5% suspects plus new items for the rest ("relabel"). Every answer, re-labels included,
   comes from the same 10%-noise annotator. Test macro-F1 of a model trained on each; the gain relabel - new is
   paired by seed, with a 95% paired bootstrap interval over the seeds (``engine.learning_protocol``).

Last line: ``RESULT {"flipped_share_top5": x, "relabel_f1_gain": g, "relabel_f1_gain_ci_low": y, ...}``.

    .venv/bin/python bench/label_quality.py --quick   # digits, 3 seeds, N=400: a few minutes on 2 cores
    .venv/bin/python bench/label_quality.py           # digits + Debian sections, 6 seeds, N=600
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.learning import THREADS, tensors  # noqa: E402
from bench.learning_data import DATASETS, Dataset  # noqa: E402
from engine.architectures import ImageCNN, TextHead  # noqa: E402
from engine.label_quality import flip_labels, out_of_fold_probs, rank_label_issues  # noqa: E402
from engine.learning_protocol import IntArray, make_split, paired_bootstrap, seed_for  # noqa: E402
from engine.metrics import bootstrap_interval  # noqa: E402
from engine.training import TrainConfig, train_classifier  # noqa: E402

NOISE = 0.10
TOP_SHARE = 0.05


def build_model(ds: Dataset, seed: int) -> torch.nn.Module:
    """The product's network for the task with its default dropout (campaigns.services.training), weights drawn
    from ``seed`` alone: both arms of a seed train the same initial network."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if ds.kind == "text":
            return TextHead(len(ds.labels), in_dim=ds.x.shape[1], dropout=0.3)
        return ImageCNN(len(ds.labels), image_size=ds.x.shape[2:], channels=ds.x.shape[1], dropout=0.5)


def train_config(seed: int) -> TrainConfig:
    # The product's schedule: 30 epochs stretched to >= 300 steps, checkpoint on validation macro-F1.
    return TrainConfig(epochs=30, min_steps=300, monitor="val_macro_f1", seed=seed)


def annotate(y_true: IntArray, *, num_classes: int, seed: int) -> IntArray:
    """Independent answers of the 10%-noise annotator (each flipped with probability NOISE, to another class)."""
    rng = np.random.default_rng(seed)
    flip = rng.random(len(y_true)) < NOISE
    shift = rng.integers(1, num_classes, size=len(y_true))
    return np.where(flip, (y_true + shift) % num_classes, y_true).astype(np.int64)


def fit_and_test(
    ds: Dataset, x_pos: IntArray, y_train: IntArray, valid: IntArray, y_valid: IntArray, test: IntArray, seed: int
) -> Any:
    """The product's training (early stopping on validation macro-F1) on the given answers; test on true labels."""
    model = build_model(ds, seed_for(seed, 4))
    return train_classifier(
        model,
        (torch.from_numpy(ds.x[x_pos]), torch.from_numpy(y_train)),
        (torch.from_numpy(ds.x[valid]), torch.from_numpy(y_valid)),
        num_classes=len(ds.labels),
        test=tensors(ds, test),
        config=train_config(seed_for(seed, 5)),
    ).test


def run_seed(ds: Dataset, seed: int, *, n_labeled: int, extra: int, folds: int) -> dict[str, Any]:
    k = len(ds.labels)
    n_valid = ds.plan.n_valid
    split = make_split(len(ds.y), n_test=ds.plan.n_test, n_valid=n_valid, seed=seed)
    labeled, rest = split.pool[:n_labeled], split.pool[n_labeled:]  # the split is a random order
    y_noisy, flipped = flip_labels(ds.y[labeled], rate=NOISE, num_classes=k, seed=seed_for(seed, 1))
    y_valid = annotate(ds.y[split.valid], num_classes=k, seed=seed_for(seed, 2))

    started = time.perf_counter()
    probs = out_of_fold_probs(
        lambda fold: build_model(ds, seed_for(seed, 10, fold)),
        torch.from_numpy(ds.x[labeled]),
        torch.from_numpy(y_noisy),
        num_classes=k,
        config=TrainConfig(epochs=30, min_steps=300, seed=seed_for(seed, 11)),
        folds=folds,
    )
    issues = rank_label_issues(y_noisy, probs)
    ranking_s = time.perf_counter() - started
    top = issues.order[: math.ceil(TOP_SHARE * n_labeled)]

    # Equal labels: B new items, or the top suspects re-labeled plus new items for the rest of B.
    new_items = rest[:extra]
    new_answers = annotate(ds.y[new_items], num_classes=k, seed=seed_for(seed, 3))
    relabels = annotate(ds.y[labeled[top]], num_classes=k, seed=seed_for(seed, 4))
    y_fixed = y_noisy.copy()
    y_fixed[top] = relabels
    more = extra - len(top)
    arm_new = fit_and_test(
        ds,
        np.concatenate([labeled, new_items]),
        np.concatenate([y_noisy, new_answers]),
        split.valid,
        y_valid,
        split.test,
        seed,
    )
    arm_relabel = fit_and_test(
        ds,
        np.concatenate([labeled, new_items[:more]]),
        np.concatenate([y_fixed, new_answers[:more]]),
        split.valid,
        y_valid,
        split.test,
        seed,
    )
    flagged = issues.flagged
    return {
        "seed": seed,
        "flipped_share_top5": float(flipped[top].mean()),
        "flagged": int(flagged.sum()),
        "flagged_precision": float(flipped[flagged].mean()) if flagged.any() else None,
        "flagged_recall": float(flagged[flipped].mean()),
        "relabels_fixed": int((relabels == ds.y[labeled[top]]).sum() - (y_noisy[top] == ds.y[labeled[top]]).sum()),
        "f1_new": arm_new.macro_f1,
        "f1_relabel": arm_relabel.macro_f1,
        "confusion_new": arm_new.confusion,
        "confusion_relabel": arm_relabel.confusion,
        "ranking_seconds": round(ranking_s, 1),
    }


def summarise(name: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    arms = {
        "relabel": np.asarray([[r["f1_relabel"]] for r in runs]),
        "new": np.asarray([[r["f1_new"]] for r in runs]),
        "share": np.asarray([[r["flipped_share_top5"]] for r in runs]),
    }
    gain = paired_bootstrap(arms, lambda m: float(m["relabel"][0] - m["new"][0]))
    share = paired_bootstrap(arms, lambda m: float(m["share"][0]))
    # Pooled test confusions over the seeds: a 95% interval of each arm's macro-F1 from the test items themselves.
    pooled = {
        arm: bootstrap_interval(np.sum([r[f"confusion_{arm}"] for r in runs], axis=0).tolist(), seed=0)["macro_f1"]
        for arm in ("new", "relabel")
    }
    return {
        "dataset": name,
        "seeds": len(runs),
        "flipped_share_top5": share.as_json(),
        "relabel_f1_gain": gain.as_json(),
        "f1_new": round(float(arms["new"].mean()), 4),
        "f1_relabel": round(float(arms["relabel"].mean()), 4),
        "f1_new_pooled_ci": [round(v, 4) for v in pooled["new"]],
        "f1_relabel_pooled_ci": [round(v, 4) for v in pooled["relabel"]],
        "flagged_precision": _mean([r["flagged_precision"] for r in runs]),
        "flagged_recall": _mean([r["flagged_recall"] for r in runs]),
        "relabels_fixed_per_seed": _mean([r["relabels_fixed"] for r in runs]),
        "ranking_seconds": _mean([r["ranking_seconds"] for r in runs]),
        "per_seed": [{k: v for k, v in r.items() if not k.startswith("confusion")} for r in runs],
    }


def _mean(values: list[Any]) -> float | None:
    kept = [float(v) for v in values if v is not None]
    return round(sum(kept) / len(kept), 4) if kept else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="digits only, 3 seeds, 400 labels: a few minutes")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--datasets", default=None, help="comma-separated names (default: quick: digits-iid)")
    parser.add_argument("--out", default=None, help="write the full JSON report here")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    seeds = args.seeds or (3 if args.quick else 6)
    names = (
        args.datasets.split(",")
        if args.datasets
        else (["digits-iid"] if args.quick else ["digits-iid", "debian-sections"])
    )
    n_labeled, extra, folds = (400, 60, 5) if args.quick else (600, 100, 5)
    started = time.perf_counter()
    report: dict[str, Any] = {
        "noise_rate": NOISE,
        "top_share": TOP_SHARE,
        "labeled": n_labeled,
        "extra_labels": extra,
        "folds": folds,
        "machine": platform.uname()._asdict(),
        "datasets": [],
    }
    for name in names:
        ds = DATASETS[name]()
        runs = []
        for seed in range(100, 100 + seeds):  # fresh seeds, apart from bench/learning.py's development seeds
            runs.append(run_seed(ds, seed, n_labeled=n_labeled, extra=extra, folds=folds))
            print(f"{name} seed {seed}: {json.dumps({k: v for k, v in runs[-1].items() if 'confusion' not in k})}")
        summary = summarise(ds.name, runs)
        summary["provenance"] = ds.provenance
        report["datasets"].append(summary)
        print(f"{name}: {json.dumps({k: v for k, v in summary.items() if k != 'per_seed'})}", flush=True)
    report["seconds"] = round(time.perf_counter() - started, 1)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))
    all_runs = [r for d in report["datasets"] for r in d["per_seed"]]
    worst = min(report["datasets"], key=lambda d: d["relabel_f1_gain"][1])
    result = {
        "flipped_share_top5": round(float(np.mean([r["flipped_share_top5"] for r in all_runs])), 4),
        "flipped_share_top5_worst_dataset": min(d["flipped_share_top5"][0] for d in report["datasets"]),
        "relabel_f1_gain": round(float(np.mean([r["f1_relabel"] - r["f1_new"] for r in all_runs])), 4),
        "relabel_f1_gain_ci_low": worst["relabel_f1_gain"][1],
        "relabel_f1_gain_ci_high": worst["relabel_f1_gain"][2],
        "datasets": [d["dataset"] for d in report["datasets"]],
        "seeds": seeds,
        "noise_rate": NOISE,
        "labeled": n_labeled,
        "extra_labels": extra,
        "seconds": report["seconds"],
    }
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
