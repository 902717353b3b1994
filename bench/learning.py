"""Learning-efficiency benchmark: alweb's strategies against random sampling, measured the way the field does.

For each dataset (``bench/learning_data.py``) and each of S paired seeds: the seed resamples the split (pool /
validation / test, i.i.d.), draws the initial labeled set (identical for every arm), and then every arm runs the
same loop with the same model, training budget and validation labels: train (``engine.training``, early stopping on
validation macro-F1 only), record test macro-F1 at ``labels spent = training labels + validation labels``, score
the unlabeled pool with MC dropout (``engine.scoring``) and acquire the next batch (``bench/learning_arms.py``).
Model weights and training shuffles are seeded from (seed, cycle): at a given cycle every arm trains the same
initial network, so arms differ only by which items they labeled.

Per dataset: normalised area under the macro-F1 curve and labels needed to reach random's final macro-F1, each
with a 95% paired bootstrap interval over the seeds (``engine/learning_protocol.py``), and a plot. Last line:

    RESULT {"datasets": n, "seeds": s, "median_labels_fraction": f, "worst_auc_gain_ci_low": g, ...}

f: median over datasets of (labels the default needs / labels random needs to reach random's final macro-F1);
g: the lowest, over datasets, of the 95% lower bound of AUC(default) - AUC(random).

    .venv/bin/python bench/learning.py --quick     # 2 seeds, 4 cycles, 4 arms, pools <= 400: a few minutes
    .venv/bin/python bench/learning.py             # 5 seeds, 9 cycles, every arm: see docs/learning.md
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.learning_arms import ARMS, Arm, Context, default_arm, product_default, same_as  # noqa: E402
from bench.learning_data import CACHE, DATASETS, Dataset, Plan  # noqa: E402
from bench.learning_report import summarise_dataset, write_plot  # noqa: E402
from engine.learning_protocol import (  # noqa: E402
    FloatArray,
    IntArray,
    initial_labeled,
    labels_spent,
    make_split,
    on_grid,
    seed_for,
)
from engine.probe import probe_metrics  # noqa: E402
from engine.recipes import new_network, train_config  # noqa: E402
from engine.scoring import Sampler, concat_chunks, iter_batches, score_chunks, score_model  # noqa: E402
from engine.training import train_classifier  # noqa: E402

THREADS = 1  # two cores shared with other engineers' work: one torch thread, one process
QUICK_ARMS = ("random", "entropy", "bald", "default")
# The class-balanced logistic regression on the same frozen features, at the random arm's labels (engine.probe): the
# floor the default head must reach (issue 19). Drawn and summarised beside the arms; it acquires nothing itself.
PROBE = "linear-probe"


def build_model(ds: Dataset, seed: int) -> torch.nn.Module:
    """The product's network for the task (engine.recipes, as campaigns.services.training builds it), weights
    drawn from ``seed`` alone, so every arm of a cycle starts from the same weights."""
    if ds.kind == "text":
        return new_network("text", len(ds.labels), in_dim=ds.x.shape[1], seed=seed)
    return new_network("image", len(ds.labels), image_size=ds.x.shape[2:], channels=ds.x.shape[1], seed=seed)


def tensors(ds: Dataset, pos: IntArray) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(ds.x[pos]), torch.from_numpy(ds.y[pos])


def train_and_test(ds: Dataset, pool: IntArray, labeled: IntArray, valid: IntArray, test: IntArray, seed: int) -> Any:
    model = build_model(ds, seed_for(seed, 4))
    result = train_classifier(
        model,
        tensors(ds, pool[labeled]),
        tensors(ds, valid),
        num_classes=len(ds.labels),
        test=tensors(ds, test),  # evaluated on the kept checkpoint only: never part of any choice
        # The product's recipe for this kind of model (engine.recipes), identical for every arm.
        config=train_config(model, seed=seed_for(seed, 5)),
    )
    return result


# What trains a cycle's model and what samples its predictions, replaceable so that bench/models_bayes.py runs other
# Bayesian approximations (an ensemble, a Laplace last layer) through this same loop: (ds, pool, labeled, valid,
# test, seed) -> a result with .model and .test, and (that result, T, embeddings?) -> an engine.scoring sampler.
Trainer = Callable[[Dataset, IntArray, IntArray, IntArray, IntArray, int], Any]
SamplerFor = Callable[[Any, int, bool], Sampler]


def has_probe(ds: Dataset) -> bool:
    """Whether ``ds`` is a frozen-feature dataset (text: cached MiniLM embeddings), where the head must reach the
    linear probe; the image CNN learns its own features, so a probe on raw pixels is no floor for it."""
    return ds.kind == "text"


def head_vs_probe(results: dict[str, Any]) -> float | None:
    """Mean over frozen-feature datasets of AUC(random-labeled head) - AUC(linear probe): the default head's
    macro-F1 minus the probe's at equal random labels, averaged over the label budget."""
    gains = [r["auc"]["random"][0] - r["auc"][PROBE][0] for r in results.values() if PROBE in r["auc"]]
    return round(float(np.mean(gains)), 4) if gains else None


def context(
    arm: Arm,
    model: torch.nn.Module,
    x_unl: np.ndarray,
    x_lab: np.ndarray,
    budget: int,
    t: int,
    seed: int,
    sampler: Sampler | None = None,
) -> Context:
    """Score the unlabeled pool for ``arm``: MC dropout (or ``sampler``) for its heuristic, and the penultimate
    features (the engine's extra pass with dropout off) of the unlabeled and labeled items if the arm needs them."""
    unc = probs = emb = lab_emb = None
    if arm.heuristic is not None or arm.embeddings:
        # Labeled items ride along only for their features (Coreset measures coverage from the labeled set).
        x = np.concatenate([x_unl, x_lab]) if arm.embeddings else x_unl
        heuristic = arm.heuristic or "entropy"
        chunk = concat_chunks(
            score_model(
                model, iter_batches(x, 512), iterations=t, heuristic=heuristic, seed=seed, embeddings=arm.embeddings
            )
            if sampler is None
            else score_chunks(sampler, iter_batches(x, 512), heuristic=heuristic, seed=seed)
        )
        n = len(x_unl)
        unc, probs = chunk.uncertainty[:n], chunk.probs[:n]
        if chunk.embeddings is not None:
            emb, lab_emb = chunk.embeddings[:n], chunk.embeddings[n:]
    return Context(
        budget=budget, seed=seed, uncertainty=unc, probs=probs, embeddings=emb, labeled_embeddings=lab_emb, n=len(x_unl)
    )


def run_arm(
    ds: Dataset,
    plan: Plan,
    arm: Arm,
    seed: int,
    pool_cap: int | None,
    t: int,
    first: dict[int, Any],
    probe: list[tuple[float, float]] | None = None,
    train: Trainer = train_and_test,
    sampler_for: SamplerFor | None = None,
) -> FloatArray:
    """One arm, one seed: the test macro-F1 after each cycle, as [labels spent, macro-F1] rows. With ``probe`` (a
    list), the linear probe trained on the same labels at each cycle adds its own row there. ``train`` and
    ``sampler_for`` replace the product's head and its MC dropout (see ``Trainer``)."""
    split = make_split(len(ds.y), n_test=plan.n_test, n_valid=plan.n_valid, seed=seed)
    pool = split.pool[:pool_cap] if pool_cap else split.pool  # the split is a random order: a prefix is random
    labeled = initial_labeled(len(pool), plan.initial, seed=seed)
    rows: list[tuple[float, float]] = []
    for cycle in range(plan.cycles + 1):
        if cycle == 0 and seed in first:  # every arm's first model is the same model: train it once per seed
            result = first[seed]
        else:
            result = train(ds, pool, labeled, split.valid, split.test, seed_for(seed, cycle))
            if cycle == 0:
                first[seed] = result
        rows.append((labels_spent(len(labeled), plan.n_valid), result.test.macro_f1))
        if probe is not None:
            x_lab, y_lab = ds.x[pool[labeled]], ds.y[pool[labeled]]
            fit = probe_metrics(x_lab, y_lab, ds.x[split.test], ds.y[split.test], len(ds.labels))
            probe.append((rows[-1][0], fit.macro_f1))
        if cycle == plan.cycles:
            break
        unlabeled = np.setdiff1d(np.arange(len(pool)), labeled)
        budget = min(plan.step, len(unlabeled))
        scores = arm.heuristic is not None or arm.embeddings
        sampler = sampler_for(result, t, arm.embeddings) if sampler_for is not None and scores else None
        ctx = context(
            arm, result.model, ds.x[pool[unlabeled]], ds.x[pool[labeled]], budget, t, seed_for(seed, cycle, 3), sampler
        )
        picks = np.asarray(arm.pick(ctx), dtype=np.int64)
        if len(np.unique(picks)) != len(picks) or len(picks) != budget:
            raise RuntimeError(
                f"arm {arm.name} picked {len(picks)} items ({len(np.unique(picks))} distinct), not {budget}"
            )
        labeled = np.concatenate([labeled, unlabeled[picks]])
    return np.asarray(rows, dtype=np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 seeds, 4 cycles, 4 arms, pools of at most 400")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument(
        "--first-seed", type=int, default=0, help="fresh seeds to confirm a default chosen on earlier ones"
    )
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--arms", default=None, help="comma-separated arm names (default: all; --quick: 4)")
    parser.add_argument(
        "--plots", type=Path, default=None, help="plot folder (default: docs/learning, or var/ in --quick)"
    )
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    started = time.perf_counter()
    seeds = args.seeds or (2 if args.quick else 5)
    pool_cap, cycles = (400, 4) if args.quick else (None, None)
    plots = args.plots or (CACHE / "plots-quick" if args.quick else ROOT / "docs" / "learning")

    spec, source = product_default()
    default = default_arm(spec)
    alias = same_as(spec)
    wanted = args.arms.split(",") if args.arms else list(QUICK_ARMS if args.quick else [*ARMS, "default"])
    arms: dict[str, Arm] = {}
    skipped: dict[str, str] = {}
    for name in wanted:
        arm = default if name == "default" else ARMS[name]
        if (why := arm.missing()) is not None:
            skipped[name] = why
        else:
            arms[name] = arm
    # The default is computed by its twin when one exists (same heuristic, same picker): identical by construction.
    runs = [n for n in arms if not (n == "default" and alias in arms)]
    print(
        f"default: {default.note} (from {source}); computed as arm {alias!r}" if alias else f"default: {default.note}",
        flush=True,
    )
    print(f"arms: {', '.join(arms)}; skipped: {skipped or 'none'}", flush=True)

    results: dict[str, Any] = {}
    for dname in args.datasets.split(","):
        t0 = time.perf_counter()
        ds = DATASETS[dname]()
        plan = dataclasses.replace(ds.plan, cycles=cycles) if cycles else ds.plan
        curves_raw: dict[str, list[FloatArray]] = {n: [] for n in arms}
        with_probe = has_probe(ds) and "random" in runs
        if with_probe:
            curves_raw[PROBE] = []
        for seed in range(args.first_seed, args.first_seed + seeds):
            first: dict[int, Any] = {}
            for name in runs:
                probe: list[tuple[float, float]] | None = [] if with_probe and name == "random" else None
                rows = run_arm(ds, plan, arms[name], seed, pool_cap, spec["mc_iterations"], first, probe)
                curves_raw[name].append(rows)
                if probe is not None:
                    curves_raw[PROBE].append(np.asarray(probe, dtype=np.float64))
            if "default" in arms and "default" not in runs:
                curves_raw["default"].append(curves_raw[str(alias)][-1])
            finals = {n: round(float(c[-1][-1][1]), 3) for n, c in curves_raw.items()}
            print(f"  {dname} seed {seed}: final macro-F1 {finals} ({time.perf_counter() - t0:.0f}s)", flush=True)
        # One common grid for every arm (the cycle points), every curve put on it by the same interpolation.
        grid = curves_raw["random"][0][:, 0]
        curves = {n: np.stack([on_grid(c[:, 0], c[:, 1], grid) for c in cs]) for n, cs in curves_raw.items()}
        summary = summarise_dataset(grid, curves, baseline="random", default="default")
        summary["dataset"] = {**ds.describe(), "plan": dataclasses.asdict(plan), "pool_cap": pool_cap}
        summary["seconds"] = round(time.perf_counter() - t0, 1)
        results[dname] = summary
        write_plot(plots / f"{dname}.png", grid, curves, title=f"{dname} ({seeds} seeds)", n_valid=plan.n_valid)
        print(f"  {dname}: {json.dumps({k: summary[k] for k in ('labels_fraction', 'auc_gain')})}", flush=True)

    fractions = [r["labels_fraction"][0] for r in results.values()]
    fractions_num = [math.inf if f is None else f for f in fractions]
    median_fraction = statistics.median(fractions_num)
    lows = [r["auc_gain"][1] for r in results.values()]
    out: dict[str, Any] = {
        "datasets": len(results),
        "seeds": seeds,
        "first_seed": args.first_seed,
        "median_labels_fraction": None if math.isinf(median_fraction) else round(median_fraction, 4),
        "worst_auc_gain_ci_low": min(lows),
        # null fractions above mean "never reached random's final macro-F1 within the budget" on these datasets.
        "default_never_reached": [n for n, f in zip(results, fractions, strict=True) if f is None],
        "default": default.note,
        "default_source": source,
        "mode": "quick" if args.quick else "full",
        "skipped_arms": skipped,
        "per_dataset": {
            n: {
                "labels_fraction": r["labels_fraction"],
                "auc_gain": r["auc_gain"],
                "random_final_f1": r["random_final_f1"],
                "labels_needed": r["labels_needed"],
                "items": r["dataset"]["items"],
                "classes": r["dataset"]["classes"],
            }
            for n, r in results.items()
        },
        "auc": {n: {a: v[0] for a, v in r["auc"].items()} for n, r in results.items()},
        # issue 19's floor: the default head's macro-F1 minus the linear probe's, at equal random labels (AUC).
        "head_vs_linear_probe_f1": head_vs_probe(results),
        "minutes": round((time.perf_counter() - started) / 60, 2),
    }
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / f"learning-{out['mode']}.json").write_text(json.dumps({"result": out, "details": results}, indent=1))
    print("RESULT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
