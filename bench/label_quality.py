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
3. ActiveLab split, at equal labels: the same B labels split by the product's `relabel: "activelab"` option
   (``engine.multiannotator.activelab_split``: ActiveLab scores of the labeled items and of the "new" arm's items,
   the lowest win, re-labels capped at the product's default share); gain activelab - new, paired as above.

Every training uses the product's recipe (``engine.recipes``: the network and schedule a project gets, through
``campaigns.services.training.project_train_config``), the folds included.

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

from bench.learning import THREADS, build_model, tensors  # noqa: E402
from bench.learning_data import DATASETS, Dataset  # noqa: E402
from engine.label_quality import flip_labels, out_of_fold_probs, rank_label_issues  # noqa: E402
from engine.learning_protocol import IntArray, make_split, paired_bootstrap, seed_for  # noqa: E402
from engine.metrics import bootstrap_interval  # noqa: E402
from engine.multiannotator import DEFAULT_MAX_RELABEL_SHARE, activelab_split  # noqa: E402
from engine.recipes import train_config  # noqa: E402
from engine.training import predict_logits, train_classifier  # noqa: E402

NOISE = 0.10
TOP_SHARE = 0.05


def annotate(y_true: IntArray, *, num_classes: int, seed: int) -> IntArray:
    """Independent answers of the 10%-noise annotator (each flipped with probability NOISE, to another class)."""
    rng = np.random.default_rng(seed)
    flip = rng.random(len(y_true)) < NOISE
    shift = rng.integers(1, num_classes, size=len(y_true))
    return np.where(flip, (y_true + shift) % num_classes, y_true).astype(np.int64)


def fit_and_test(
    ds: Dataset, x_pos: IntArray, y_train: IntArray, valid: IntArray, y_valid: IntArray, test: IntArray, seed: int
) -> Any:
    """The product's training (engine.recipes: the recipe of the task's network) on the given answers; test on
    true labels."""
    model = build_model(ds, seed_for(seed, 4))
    return train_classifier(
        model,
        (torch.from_numpy(ds.x[x_pos]), torch.from_numpy(y_train)),
        (torch.from_numpy(ds.x[valid]), torch.from_numpy(y_valid)),
        num_classes=len(ds.labels),
        test=tensors(ds, test),
        config=train_config(model, seed=seed_for(seed, 5)),
    ).test


def run_seed(ds: Dataset, seed: int, *, n_labeled: int, extra: int, folds: int) -> dict[str, Any]:
    k = len(ds.labels)
    n_valid = ds.plan.n_valid
    split = make_split(len(ds.y), n_test=ds.plan.n_test, n_valid=n_valid, seed=seed)
    # A pool too small for N labels plus B new items (the Debian set depends on the packages installed) labels fewer.
    n_labeled = min(n_labeled, len(split.pool) - extra)
    labeled, rest = split.pool[:n_labeled], split.pool[n_labeled:]  # the split is a random order
    y_noisy, flipped = flip_labels(ds.y[labeled], rate=NOISE, num_classes=k, seed=seed_for(seed, 1))
    y_valid = annotate(ds.y[split.valid], num_classes=k, seed=seed_for(seed, 2))

    started = time.perf_counter()
    # The folds train as campaigns.services.label_quality trains them: the project's recipe (project_train_config).
    probs = out_of_fold_probs(
        lambda fold: build_model(ds, seed_for(seed, 10, fold)),
        torch.from_numpy(ds.x[labeled]),
        torch.from_numpy(y_noisy),
        num_classes=k,
        config=train_config(build_model(ds, seed_for(seed, 10)), seed=seed_for(seed, 11)),
        folds=folds,
    )
    issues = rank_label_issues(y_noisy, probs)
    ranking_s = time.perf_counter() - started
    top = issues.order[: math.ceil(TOP_SHARE * n_labeled)]

    # Equal labels: B new items, or the top suspects re-labeled plus new items for the rest of B.
    new_items = rest[:extra]
    new_answers = annotate(ds.y[new_items], num_classes=k, seed=seed_for(seed, 3))
    # One second answer per labeled item, drawn once: both re-labeling arms get the same answer for an item.
    second = annotate(ds.y[labeled], num_classes=k, seed=seed_for(seed, 4))
    relabels = second[top]
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
    split_relabels, arm_activelab = activelab_arm(
        ds, seed, labeled=labeled, y_noisy=y_noisy, probs=probs, candidates=new_items, answers=(second, new_answers)
    )
    arm_activelab_f1 = fit_and_test(ds, *arm_activelab, split.valid, y_valid, split.test, seed)
    flagged = issues.flagged
    return {
        "seed": seed,
        "labeled": n_labeled,
        "flipped_share_top5": float(flipped[top].mean()),
        "flagged": int(flagged.sum()),
        "flagged_precision": float(flipped[flagged].mean()) if flagged.any() else None,
        "flagged_recall": float(flagged[flipped].mean()),
        "relabels_fixed": int((relabels == ds.y[labeled[top]]).sum() - (y_noisy[top] == ds.y[labeled[top]]).sum()),
        "f1_new": arm_new.macro_f1,
        "f1_relabel": arm_relabel.macro_f1,
        "f1_activelab": arm_activelab_f1.macro_f1,
        "activelab_relabels": split_relabels,
        "confusion_new": arm_new.confusion,
        "confusion_relabel": arm_relabel.confusion,
        "ranking_seconds": round(ranking_s, 1),
    }


def activelab_arm(
    ds: Dataset,
    seed: int,
    *,
    labeled: IntArray,
    y_noisy: IntArray,
    probs: Any,
    candidates: IntArray,
    answers: tuple[IntArray, IntArray],
) -> tuple[int, tuple[IntArray, IntArray]]:
    """The product's `relabel: "activelab"` split of the same extra budget: ActiveLab scores of the labeled items
    (their out-of-fold probabilities) and of the new items the "new" arm takes (probabilities of a model trained on
    the noisy labels, as a cycle's model scores its pool), the lowest scores win, re-labels capped at the product's
    default share. A re-label's answer replaces the label, as a review decision does. Returns (re-labels, the
    training positions and answers)."""
    second, new_answers = answers
    model = build_model(ds, seed_for(seed, 6))
    train_classifier(
        model,
        (torch.from_numpy(ds.x[labeled]), torch.from_numpy(y_noisy)),
        None,
        num_classes=len(ds.labels),
        config=train_config(model, seed=seed_for(seed, 7)),
    )
    unlabeled = torch.softmax(predict_logits(model, tensors(ds, candidates)).double(), dim=1).numpy()
    split = activelab_split(
        y_noisy[:, None].astype(np.float64),
        probs,
        unlabeled,
        budget=len(candidates),
        max_share=DEFAULT_MAX_RELABEL_SHARE,
    )
    y = y_noisy.copy()
    y[split.relabel] = second[split.relabel]
    positions = np.concatenate([labeled, candidates[: split.new]])
    return len(split.relabel), (positions, np.concatenate([y, new_answers[: split.new]]))


def summarise(name: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    arms = {
        "relabel": np.asarray([[r["f1_relabel"]] for r in runs]),
        "new": np.asarray([[r["f1_new"]] for r in runs]),
        "activelab": np.asarray([[r["f1_activelab"]] for r in runs]),
        "share": np.asarray([[r["flipped_share_top5"]] for r in runs]),
    }
    gain = paired_bootstrap(arms, lambda m: float(m["relabel"][0] - m["new"][0]))
    activelab_gain = paired_bootstrap(arms, lambda m: float(m["activelab"][0] - m["new"][0]))
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
        "activelab_f1_gain": activelab_gain.as_json(),
        "f1_activelab": round(float(arms["activelab"].mean()), 4),
        "activelab_relabels_per_seed": _mean([r["activelab_relabels"] for r in runs]),
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
    worst_al = min(report["datasets"], key=lambda d: d["activelab_f1_gain"][1])
    result = {
        "flipped_share_top5": round(float(np.mean([r["flipped_share_top5"] for r in all_runs])), 4),
        "flipped_share_top5_worst_dataset": min(d["flipped_share_top5"][0] for d in report["datasets"]),
        "relabel_f1_gain": round(float(np.mean([r["f1_relabel"] - r["f1_new"] for r in all_runs])), 4),
        "relabel_f1_gain_ci_low": worst["relabel_f1_gain"][1],
        "relabel_f1_gain_ci_high": worst["relabel_f1_gain"][2],
        # The ActiveLab split (relabel: "activelab", max share DEFAULT_MAX_RELABEL_SHARE) against new items only.
        "activelab_f1_gain": round(float(np.mean([r["f1_activelab"] - r["f1_new"] for r in all_runs])), 4),
        "activelab_f1_gain_ci_low": worst_al["activelab_f1_gain"][1],
        "activelab_f1_gain_ci_high": worst_al["activelab_f1_gain"][2],
        "activelab_relabels_per_seed": round(float(np.mean([r["activelab_relabels"] for r in all_runs])), 2),
        "activelab_max_share": DEFAULT_MAX_RELABEL_SHARE,
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
