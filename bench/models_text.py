"""Text fine-tuning arms of the models benchmark (issue 19): fine-tuned MiniLM vs the frozen-MiniLM head, and
confined MC dropout (``mc_layers``) vs MC dropout through the whole network.

``finetune_auc_gain``: on the text sets of the learning benchmark (``bench/learning_data.py``), with its protocol
(``bench/learning.py``): per paired seed the same split, the same seeded initial labels, random labels each cycle
(identical for both arms: random picks never read the model), validation labels counted on the x axis, both curves
on one grid, a 95% paired bootstrap interval over the seeds. Arm "frozen": the product's default head on cached
MiniLM embeddings (``bench.learning.train_and_test``). Arm "finetune": the product's fine-tuning recipe
(``engine.text_finetune`` + ``engine.recipes.train_config``: encoder at 5e-5, head at 2e-3, 3 epochs stretched to
at least 40 steps, batches of 16) on the shipped all-MiniLM-L6-v2 from its pretrained weights each cycle, with
``mc_layers`` set as a project would. Gain = AUC(finetune) - AUC(frozen), mean over datasets.

``mc_layers_speedup``: seconds of MC scoring (T = 20, the same items, the same fine-tuned weights, batches of 16
as the product scores) through the whole network (every dropout sampled: T full passes) divided by the seconds
with MC confined to the top N = 0.5 layers (everything below the top layer's feed-forward block once per item, that
block and the head T times); N = 1 and 2 are timed beside it. ``mc_layers_rank_corr``: Spearman correlation of the
confined BALD scores with the whole network's on those items (``rank_corr_full_vs_full``: two whole-network runs
with other masks, the agreement MC noise alone allows).

CPU cost is bounded, and said in the RESULT (``bounds``): the pool is capped, cycles are fewer than the learning
benchmark's, test sets are capped, sequences are cut at 128 tokens (``--quick``: 64 tokens and a shorter
schedule: 1 seed, 2 cycles).

    .venv/bin/python bench/models_text.py --quick
    .venv/bin/python bench/models_text.py
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.learning import THREADS, train_and_test  # noqa: E402
from bench.learning_arms import ARMS, Context  # noqa: E402
from bench.learning_data import CACHE, DATASETS, Dataset  # noqa: E402
from bench.learning_report import write_dataset_plots  # noqa: E402
from engine.learning_protocol import (  # noqa: E402
    FloatArray,
    auc_gain_stat,
    initial_labeled,
    labels_spent,
    make_split,
    mean_gain_over_datasets,
    normalised_auc,
    on_grid,
    paired_bootstrap,
    seed_for,
)
from engine.recipes import train_config  # noqa: E402
from engine.scoring import MCDropout, concat_chunks, iter_batches, score_chunks  # noqa: E402
from engine.text import shipped_model_dir  # noqa: E402
from engine.text_finetune import SCORE_BATCH, TextFinetuneModel, new_finetune_model  # noqa: E402
from engine.training import train_classifier  # noqa: E402

TEXT_SETS = ("support-topics", "debian-sections")
FROZEN, FINETUNE = "frozen", "finetune"
MC_ITERATIONS = 20
MC_LAYERS = 1  # the learning-curve arm's N (its picks are random: N changes only the scoring time)
# Confined MC timed against the whole network: N = 0.5 samples only the top layer's feed-forward block and the head
# (the RESULT's mc_layers_speedup), N = 1 and 2 whole top layers.
MC_LAYERS_TIMED = (0.5, 1, 2)
MC_LAYERS_SPEED = 0.5
N_BOOT = 2000


@dataclasses.dataclass(frozen=True)
class Bounds:
    seeds: int
    cycles: int
    pool_cap: int
    test_cap: int
    max_length: int
    min_steps: int | None  # None: the product recipe's
    speed_items: int

    def note(self) -> str:
        steps = "the recipe's" if self.min_steps is None else str(self.min_steps)
        return (
            f"{self.seeds} seeds, {self.cycles} cycles after the initial labels, pool <= {self.pool_cap}, test <= "
            f"{self.test_cap}, max_length {self.max_length}, min_steps {steps}; speed on {self.speed_items} items"
        )


QUICK = Bounds(seeds=1, cycles=2, pool_cap=150, test_cap=120, max_length=64, min_steps=12, speed_items=24)
# Two cores shared with other work: a Debian fine-tuning cycle at 128 tokens is ~5 minutes, so the full run is two
# paired seeds of four points each (about 45 minutes), not the learning benchmark's five seeds of ten.
FULL = Bounds(seeds=2, cycles=3, pool_cap=300, test_cap=150, max_length=128, min_steps=None, speed_items=48)


def encoder_dir() -> Path:
    """The encoder both arms start from: the shipped all-MiniLM-L6-v2 (the frozen arm's embeddings are its)."""
    return shipped_model_dir()


def finetune_model(ds: Dataset, bounds: Bounds, seed: int, mc_layers: float | None = MC_LAYERS) -> TextFinetuneModel:
    return new_finetune_model(
        encoder_dir(), len(ds.labels), mc_layers=mc_layers, max_length=bounds.max_length, seed=seed
    )


def finetune_and_test(
    ds: Dataset, tokens: np.ndarray, bounds: Bounds, pos: tuple[np.ndarray, np.ndarray, np.ndarray], seed: int
) -> tuple[float, float, TextFinetuneModel]:
    """(test macro-F1, training seconds, model): the product's fine-tuning recipe, weights drawn from ``seed``."""
    train, valid, test = pos
    model = finetune_model(ds, bounds, seed_for(seed, 4))
    config = train_config(model, seed=seed_for(seed, 5), min_steps=bounds.min_steps)

    def data(idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(tokens[idx]), torch.from_numpy(ds.y[idx])

    started = time.perf_counter()
    result = train_classifier(
        model, data(train), data(valid), num_classes=len(ds.labels), test=data(test), config=config
    )
    assert result.test is not None
    return float(result.test.macro_f1), time.perf_counter() - started, result.model  # type: ignore[return-value]


def mc_run(model: TextFinetuneModel, x: np.ndarray, seed: int = 0) -> tuple[float, FloatArray]:
    """(seconds, BALD per item) of MC-scoring ``x`` (T = 20, batches of 16, as the product does), after a 2-item
    warm-up that also settles the engine's split check."""
    sampler = MCDropout(model, iterations=MC_ITERATIONS)
    sampler(torch.from_numpy(x[:2]))
    started = time.perf_counter()
    # The masks are drawn from (seed, batch index) by the engine, as the product draws them per chunk.
    chunk = concat_chunks(score_chunks(sampler, iter_batches(x, SCORE_BATCH), heuristic="bald", seed=seed))
    assert len(chunk.ids) == len(x) and np.isfinite(chunk.uncertainty).all()
    return time.perf_counter() - started, np.asarray(chunk.uncertainty, dtype=np.float64)


def mc_seconds(model: TextFinetuneModel, x: np.ndarray) -> float:
    return mc_run(model, x)[0]


def run_dataset(ds: Dataset, bounds: Bounds, first_seed: int) -> dict[str, Any]:
    """Both arms' curves on every seed, plus per-cycle seconds of the fine-tuned arm and its MC scoring."""
    plan = dataclasses.replace(ds.plan, cycles=bounds.cycles, n_test=min(ds.plan.n_test, bounds.test_cap))
    probe = finetune_model(ds, bounds, 0)
    tokens = probe.tokenize(list(ds.texts))
    raw: dict[str, list[FloatArray]] = {FROZEN: [], FINETUNE: []}
    trained: TextFinetuneModel | None = None
    seconds: dict[str, list[float]] = {"finetune_train_s": [], "frozen_train_s": [], "finetune_score_s": []}
    for seed in range(first_seed, first_seed + bounds.seeds):
        split = make_split(len(ds.y), n_test=plan.n_test, n_valid=plan.n_valid, seed=seed)
        pool = split.pool[: bounds.pool_cap]
        labeled = initial_labeled(len(pool), plan.initial, seed=seed)
        rows: dict[str, list[tuple[float, float]]] = {FROZEN: [], FINETUNE: []}
        for cycle in range(plan.cycles + 1):
            spent = labels_spent(len(labeled), plan.n_valid)
            cycle_seed = seed_for(seed, cycle)
            started = time.perf_counter()
            frozen = train_and_test(ds, pool, labeled, split.valid, split.test, cycle_seed)
            seconds["frozen_train_s"].append(time.perf_counter() - started)
            f1, train_s, model = finetune_and_test(
                ds, tokens, bounds, (pool[labeled], split.valid, split.test), cycle_seed
            )
            seconds["finetune_train_s"].append(train_s)
            rows[FROZEN].append((spent, frozen.test.macro_f1))
            rows[FINETUNE].append((spent, f1))
            unlabeled = np.setdiff1d(np.arange(len(pool)), labeled)
            if cycle == 0 and seed == first_seed:  # one cycle's pool scoring, confined MC as a project runs it
                seconds["finetune_score_s"].append(mc_seconds(model, tokens[pool[unlabeled]]))
            if seed == first_seed:
                trained = model  # the speed comparison scores with a fine-tuned model, not a random classifier
            print(
                f"  {ds.name} seed {seed} cycle {cycle}: {spent} labels, frozen {rows[FROZEN][-1][1]:.3f}, "
                f"finetune {f1:.3f} ({train_s:.0f}s)",
                flush=True,
            )
            if cycle == plan.cycles:
                break
            budget = min(plan.step, len(unlabeled))
            picks = ARMS["random"].pick(Context(budget=budget, seed=seed_for(seed, cycle, 3), n=len(unlabeled)))
            labeled = np.concatenate([labeled, unlabeled[np.asarray(picks, dtype=np.int64)]])
        for arm in raw:
            raw[arm].append(np.asarray(rows[arm], dtype=np.float64))
    grid = raw[FROZEN][0][:, 0]
    curves = {a: np.stack([on_grid(c[:, 0], c[:, 1], grid) for c in cs]) for a, cs in raw.items()}
    return {
        "grid": grid,
        "curves": curves,
        "n_valid": plan.n_valid,
        "model": trained,
        "auc_frozen": round(normalised_auc(grid, curves[FROZEN].mean(axis=0)), 4),
        "auc_finetune": round(normalised_auc(grid, curves[FINETUNE].mean(axis=0)), 4),
        "auc_gain": paired_bootstrap(curves, auc_gain_stat(grid, FINETUNE, FROZEN), n_boot=N_BOOT).as_json(),
        "final": {a: round(float(c[:, -1].mean()), 4) for a, c in curves.items()},
        "seconds_per_cycle": {k: round(float(np.mean(v)), 2) for k, v in seconds.items() if v},
        "labels": [int(g) for g in grid],
    }


def speedup(ds: Dataset, bounds: Bounds, model: TextFinetuneModel) -> dict[str, Any]:
    """Full-network MC vs MC confined to the top N layers: the same (fine-tuned) weights, items and T. Beside each
    ratio, how closely the confined scores rank the items as the whole network's do (Spearman), against the
    agreement of two whole-network runs with other dropout masks: MC noise alone keeps that below 1."""
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    x = model.tokenize([ds.texts[i] for i in rng.choice(len(ds.texts), bounds.speed_items, replace=False)])
    full = model.with_mc_layers(None).eval()
    full_s, full_u = mc_run(full, x)
    out: dict[str, Any] = {"items": len(x), "iterations": MC_ITERATIONS, "full_s": round(full_s, 2)}
    out["rank_corr_full_vs_full"] = round(float(spearmanr(full_u, mc_run(full, x, seed=1)[1]).statistic), 3)
    for n in MC_LAYERS_TIMED:
        top_s, top_u = mc_run(model.with_mc_layers(n).eval(), x, seed=1)
        # The ratio of the unrounded times: a tiny run's confined pass rounds to 0.00 s.
        out[f"top{n}_s"], out[f"speedup_top{n}"] = round(top_s, 2), round(full_s / top_s, 2)
        out[f"rank_corr_top{n}"] = round(float(spearmanr(full_u, top_u).statistic), 3)
    return out


def speed_only(*, quick: bool, first_seed: int, dataset: str) -> dict[str, Any]:
    """Only the scoring-speed keys: the model fine-tuned on the seed's initial labels (the learning curves' first
    point, same split and recipe), then ``speedup``. Minutes instead of the curves' three quarters of an hour."""
    bounds = QUICK if quick else FULL
    torch.set_num_threads(THREADS)
    ds = DATASETS[dataset]()
    plan = dataclasses.replace(ds.plan, n_test=min(ds.plan.n_test, bounds.test_cap))
    split = make_split(len(ds.y), n_test=plan.n_test, n_valid=plan.n_valid, seed=first_seed)
    pool = split.pool[: bounds.pool_cap]
    labeled = initial_labeled(len(pool), plan.initial, seed=first_seed)
    tokens = finetune_model(ds, bounds, 0).tokenize(list(ds.texts))
    f1, _, model = finetune_and_test(ds, tokens, bounds, (pool[labeled], split.valid, split.test), first_seed)
    speed = speedup(ds, bounds, model)
    return {
        "mc_layers_speedup": speed[f"speedup_top{MC_LAYERS_SPEED}"],
        "mc_layers_n": MC_LAYERS_SPEED,
        "mc_layers_rank_corr": speed[f"rank_corr_top{MC_LAYERS_SPEED}"],
        "mc_layers_timing": {**speed, "dataset": dataset, "model_macro_f1": round(f1, 4)},
    }


def mean_gain(runs: dict[str, dict[str, Any]]) -> list[float]:
    """Mean over datasets of AUC(finetune) - AUC(frozen), with its paired 95% interval."""
    return mean_gain_over_datasets(runs, FINETUNE, FROZEN, n_boot=N_BOOT)


def measure(
    *, quick: bool, first_seed: int = 0, datasets: tuple[str, ...] = TEXT_SETS, plot_dir: Path | None = None
) -> dict[str, Any]:
    """The text keys of bench/models.py's RESULT, and their details (and figures of the curves in ``plot_dir``)."""
    bounds = QUICK if quick else FULL
    torch.set_num_threads(THREADS)
    started = time.perf_counter()
    runs: dict[str, dict[str, Any]] = {}
    for name in datasets:
        runs[name] = run_dataset(DATASETS[name](), bounds, first_seed)
    speed = speedup(DATASETS[datasets[-1]](), bounds, runs[datasets[-1]]["model"])
    gain = mean_gain(runs)
    last = first_seed + bounds.seeds - 1
    title = f"{{name}}: fine-tuned MiniLM vs frozen head (seeds {first_seed}-{last})"
    plots = write_dataset_plots(runs, plot_dir, prefix="text-finetune", title=title) if plot_dir else []
    return {
        "finetune_plots": plots,
        "finetune_auc_gain": gain[0],
        "finetune_auc_gain_ci": gain[1:],
        "mc_layers_speedup": speed[f"speedup_top{MC_LAYERS_SPEED}"],
        "mc_layers_n": MC_LAYERS_SPEED,
        "mc_layers_rank_corr": speed[f"rank_corr_top{MC_LAYERS_SPEED}"],
        "mc_layers_timing": {**speed, "dataset": datasets[-1]},
        "finetune_per_dataset": {
            n: {k: v for k, v in r.items() if k not in ("grid", "curves", "model", "n_valid")} for n, r in runs.items()
        },
        "finetune_bounds": bounds.note(),
        "finetune_minutes": round((time.perf_counter() - started) / 60, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 seed, 2 cycles, 64 tokens: about 5 minutes")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--datasets", default=",".join(TEXT_SETS))
    parser.add_argument("--speed-only", action="store_true", help="only mc_layers_speedup (last dataset): minutes")
    parser.add_argument("--plot-dir", type=Path, default=None, help="write each dataset's curves there (PNG)")
    args = parser.parse_args()
    datasets = tuple(args.datasets.split(","))
    if args.speed_only:
        print("RESULT " + json.dumps(speed_only(quick=args.quick, first_seed=args.first_seed, dataset=datasets[-1])))
        return
    out = measure(quick=args.quick, first_seed=args.first_seed, datasets=datasets, plot_dir=args.plot_dir)
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / f"models-text-{'quick' if args.quick else 'full'}.json").write_text(json.dumps(out, indent=1))
    print("RESULT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
