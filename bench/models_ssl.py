"""The self-supervised arm of the models benchmark (issue 19): does pretraining the trunk on the pool pay?

On the image datasets of the learning benchmark (``bench/learning_data.py``: digits-iid, digits-longtail), with its
protocol (``bench/learning.py``: the seed resamples the split, the same seeded initial labels, random labels each
cycle, validation labels counted, every curve on the random arm's grid), two arms label the same items:

- **scratch**: the product's default image model, the compact CNN trained end to end (``engine.recipes``);
- **ssl** (frozen): per seed, the trunk is pretrained with SimCLR (``engine.ssl``) on that seed's pool images alone
  (no label, no validation or test image), then frozen; each cycle trains the product's head on its cached
  features (the frozen-backbone path: ``TextHead`` with the head recipe), what ``backbone_mode: "frozen"`` gets;
- **ssl-finetune**: the same trunk, exported as the product exports it (TorchScript) and used as the starting
  point of a network fine-tuned each cycle on pixels: the product's ``backbone_mode: "finetune"`` path
  (``engine.finetune``: ``trainable_trunk`` + ``FineTuneModel``, backbone at 0.1x the head's rate, the recipe of
  ``engine.recipes.train_config``), what a project with ``{backbone: <the trunk file>, backbone_mode: "finetune"}``
  trains.

    ssl_auc_gain = mean over image datasets of [AUC(reported arm) - AUC(scratch)]

with a 95% paired bootstrap over seeds (``ssl_auc_gain_ci_low``, its lower bound), and the pretraining seconds.
``--arm`` picks the reported arm (``frozen`` or ``finetune``; default ``DEFAULT_ARM``, the mode the product sets
when a pretraining is used); both arms' gains and the training CPU seconds per cycle of every arm are reported too.

    .venv/bin/python bench/models_ssl.py --quick            # 3 seeds, 4 cycles, pools <= 400
    .venv/bin/python bench/models_ssl.py --first-seed 10    # fresh seeds 10-14, whole pools (docs/models.md)
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

from bench.learning import THREADS, Trainer, run_arm, tensors, train_and_test  # noqa: E402
from bench.learning_arms import ARMS  # noqa: E402
from bench.learning_data import CACHE, DATASETS, Dataset, Plan  # noqa: E402
from bench.learning_report import write_dataset_plots  # noqa: E402
from engine.backbone import load_network, network_features  # noqa: E402
from engine.device import resolve_device  # noqa: E402
from engine.finetune import FineTuneModel, trainable_trunk  # noqa: E402
from engine.learning_protocol import (  # noqa: E402
    FloatArray,
    auc_gain_stat,
    make_split,
    mean_gain_over_datasets,
    normalised_auc,
    on_grid,
    paired_bootstrap,
    seed_for,
)
from engine.recipes import TEXT_DROPOUT, train_config  # noqa: E402
from engine.ssl import SSLConfig, SSLResult, export_torchscript, pretrain  # noqa: E402
from engine.training import Keep, train_classifier  # noqa: E402

# Curve names: the CNN from scratch, the frozen SSL trunk + head, the SSL trunk fine-tuned each cycle.
SCRATCH, SSL, SSL_FT = "scratch", "ssl", "ssl-finetune"
# --arm value -> curve name. DEFAULT_ARM: what the RESULT key reports unless --arm says otherwise (docs/models.md).
ARM_CURVES = {"frozen": SSL, "finetune": SSL_FT}
DEFAULT_ARM = "frozen"
N_BOOT = 2000
MC_ITERATIONS = 20
QUICK_STEPS = 150
# Handwritten digits change meaning in a mirror: flips are off for them, as a user would set for such data.
MIRROR_SAFE = False


def ssl_config(seed: int, **overrides: Any) -> SSLConfig:
    """The product's defaults (``engine.ssl.SSLConfig``) unless a dev run overrides one; seeded per benchmark seed."""
    strength = overrides.pop("strength", None)
    aug = dataclasses.replace(
        SSLConfig().augment, flip=MIRROR_SAFE, **({} if strength is None else {"strength": strength})
    )
    return dataclasses.replace(SSLConfig(), augment=aug, seed=seed_for(seed, 7), **overrides)


def frozen_dataset(ds: Dataset, result: SSLResult) -> Dataset:
    """``ds`` with every image replaced by the features of the pretrained trunk (the frozen arm's input)."""
    feats = network_features(result.trunk, ds.x, mean=result.mean, std=result.std)
    # kind "text" makes bench.learning build the frozen-feature head (TextHead + the head recipe): the model the
    # product trains on a frozen backbone's cached features (campaigns.services.training._new_model).
    return dataclasses.replace(ds, x=feats, kind="text")


def finetune_trainer(result: SSLResult, keep: Keep | None = None) -> Trainer:
    """Trains a cycle's model the way a project with ``backbone_mode: "finetune"`` on this trunk does: the trunk
    goes through the product's file format (``export_torchscript`` -> ``load_network``, what the pretraining stores
    and ``backbones._load`` reads), each cycle takes a private trainable copy (``trainable_trunk``) under alweb's
    dropout head (``FineTuneModel``, the product's default dropout 0.3 and normalisation), and trains with the
    product's recipe for it (``train_config``; campaigns.services.training.build_model seeds the head the same
    way). Same seeds as ``bench.learning.train_and_test``: every arm of a cycle draws its head from one seed.
    ``keep`` (a dev question, not the product's recipe): replaces the recipe's checkpoint rule."""
    network = load_network(export_torchscript(result.trunk))

    def train(
        ds: Dataset, pool: np.ndarray, labeled: np.ndarray, valid: np.ndarray, test: np.ndarray, seed: int
    ) -> Any:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed_for(seed, 4))
            model = FineTuneModel(
                trainable_trunk(network),
                len(ds.labels),
                feature_dim=result.feature_dim,
                mean=result.mean,
                std=result.std,
                dropout=TEXT_DROPOUT,  # _new_model's default for a backbone: model_config.get("dropout", 0.3)
            )
        config = train_config(model, seed=seed_for(seed, 5))
        return train_classifier(
            model,
            tensors(ds, pool[labeled]),
            tensors(ds, valid),
            num_classes=len(ds.labels),
            test=tensors(ds, test),
            config=config if keep is None else dataclasses.replace(config, keep=keep),
        )

    return train


def timed(train: Trainer, seconds: list[float]) -> Trainer:
    """``train`` that appends each call's CPU seconds to ``seconds`` (one call per cycle). CPU time of this process,
    not wall time: on a shared host the wall clock counts other jobs' turns, and a paused benchmark (SIGSTOP while
    another one is timed) its pause; with one torch thread the CPU time is the training's own cost."""

    def wrapped(*args: Any) -> Any:
        started = time.process_time()
        try:
            return train(*args)
        finally:
            seconds.append(time.process_time() - started)

    return wrapped


def scratch_curve(
    ds: Dataset, plan: Plan, seed: int, pool_cap: int | None, cache: bool
) -> tuple[FloatArray, list[float]]:
    """The from-scratch CNN's curve for one seed, with its training seconds per cycle. It does not depend on any
    SSL setting, so ``cache`` (a dev aid: several SSL settings against the same seeds) keeps both on disk; stale if
    the CNN's recipe changes since (the cached CPU seconds are those of the run that computed them)."""
    path = CACHE / f"ssl-scratch-{ds.name}-s{seed}-c{plan.cycles}-p{pool_cap}.npy"
    timing = path.with_suffix(".cpu-seconds.json")
    if cache and path.exists():
        seconds = json.loads(timing.read_text()) if timing.exists() else []
        return np.asarray(np.load(path), dtype=np.float64), seconds
    seconds = []
    curve = run_arm(ds, plan, ARMS["random"], seed, pool_cap, MC_ITERATIONS, {}, train=timed(train_and_test, seconds))
    if cache:
        CACHE.mkdir(parents=True, exist_ok=True)
        np.save(path, curve)
        timing.write_text(json.dumps(seconds))
    return curve, seconds


def curves_for(
    ds: Dataset,
    seeds: range,
    *,
    cycles: int | None,
    pool_cap: int | None,
    overrides: dict[str, Any],
    cache: bool = False,
    arms: tuple[str, ...] = (SSL,),
    finetune_keep: Keep | None = None,
) -> dict[str, Any]:
    """Per seed: the scratch curve and the curve of each SSL arm in ``arms`` (``SSL``: frozen, ``SSL_FT``:
    fine-tuned), all from one trunk pretrained on that seed's pool; training seconds of every cycle per arm."""
    plan = dataclasses.replace(ds.plan, cycles=cycles) if cycles else ds.plan
    raw: dict[str, list[FloatArray]] = {SCRATCH: [], **{a: [] for a in arms}}
    train_seconds: dict[str, list[float]] = {a: [] for a in raw}
    seconds: list[float] = []  # pretraining, wall (engine.ssl's own clock)
    pretrain_cpu: list[float] = []  # pretraining, CPU seconds of this process
    for seed in seeds:
        curve, secs_scratch = scratch_curve(ds, plan, seed, pool_cap, cache)
        raw[SCRATCH].append(curve)
        train_seconds[SCRATCH] += secs_scratch
        split = make_split(len(ds.y), n_test=plan.n_test, n_valid=plan.n_valid, seed=seed)
        pool = split.pool[:pool_cap] if pool_cap else split.pool  # the pool run_arm will use, by the same rule
        cpu = time.process_time()
        result = pretrain(ds.x[pool], ssl_config(seed, **overrides))
        seconds.append(result.seconds)
        pretrain_cpu.append(time.process_time() - cpu)
        for arm in arms:
            data, train = (
                (frozen_dataset(ds, result), train_and_test)
                if arm == SSL
                else (ds, finetune_trainer(result, finetune_keep))
            )
            timer = timed(train, train_seconds[arm])
            raw[arm].append(run_arm(data, plan, ARMS["random"], seed, pool_cap, MC_ITERATIONS, {}, train=timer))
        finals = ", ".join(f"{a} {cs[-1][-1, 1]:.3f}" for a, cs in raw.items())
        print(f"  {ds.name} seed {seed}: {finals} (pretrained in {result.seconds:.1f}s)", flush=True)
    grid = raw[SCRATCH][0][:, 0]
    curves = {a: np.stack([on_grid(c[:, 0], c[:, 1], grid) for c in cs]) for a, cs in raw.items()}
    return {
        "grid": grid,
        "curves": curves,
        "pretrain_seconds": seconds,
        "pretrain_cpu_seconds": pretrain_cpu,
        "train_seconds": train_seconds,
    }


def gain_over_datasets(runs: dict[str, dict[str, Any]], arm: str = SSL) -> list[float]:
    """Mean over datasets of AUC(arm) - AUC(scratch), with its paired 95% interval."""
    return mean_gain_over_datasets(runs, arm, SCRATCH, n_boot=N_BOOT)


def _mean_seconds(values: list[float]) -> float | None:
    return round(float(np.mean(values)), 3) if values else None


def measure(
    seeds: range,
    *,
    cycles: int | None,
    pool_cap: int | None,
    datasets: list[str],
    quick: bool = False,
    cache: bool = False,
    arm: str = DEFAULT_ARM,
    compare: bool = False,
    finetune_keep: Keep | None = None,
    plot_dir: Path | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """The ssl keys of the models RESULT, for the image datasets among ``datasets``: ``ssl_auc_gain`` is the gain
    of ``arm`` ("frozen" or "finetune"); with ``compare`` the other arm runs too (same trunks, same seeds) and
    ``ssl_arms`` holds both gains. ``quick``: pretraining cut to QUICK_STEPS optimizer steps (the keys then say
    less about the default; the full run measures it)."""
    if quick:
        overrides = {"min_steps": QUICK_STEPS, **overrides}
    reported = ARM_CURVES[arm]
    arms = tuple(ARM_CURVES.values()) if compare else (reported,)
    runs: dict[str, dict[str, Any]] = {}
    per_dataset: dict[str, Any] = {}
    for name in datasets:
        ds = DATASETS[name]()
        if ds.kind != "image":
            continue
        run = runs[name] = curves_for(
            ds,
            seeds,
            cycles=cycles,
            pool_cap=pool_cap,
            overrides=overrides,
            cache=cache,
            arms=arms,
            finetune_keep=finetune_keep,
        )
        grid, curves = run["grid"], run["curves"]
        run["n_valid"] = ds.plan.n_valid
        per_dataset[name] = {
            "auc_scratch": round(normalised_auc(grid, curves[SCRATCH].mean(axis=0)), 4),
            **{f"auc_{a}": round(normalised_auc(grid, curves[a].mean(axis=0)), 4) for a in arms},
            **{
                "auc_gain" if a == SSL else f"auc_gain_{a}": paired_bootstrap(
                    curves, auc_gain_stat(grid, a, SCRATCH), n_boot=N_BOOT
                ).as_json()
                for a in arms
            },
            "final_f1": {a: round(float(c.mean(axis=0)[-1]), 4) for a, c in curves.items()},
            "pretrain_seconds_mean": round(float(np.mean(run["pretrain_seconds"])), 2),
            "pretrain_cpu_seconds_mean": _mean_seconds(run["pretrain_cpu_seconds"]),
            "train_cpu_seconds_per_cycle": {a: _mean_seconds(v) for a, v in run["train_seconds"].items()},
        }
        print(f"  {name}: {json.dumps(per_dataset[name])}", flush=True)
    if not runs:
        return {"ssl_auc_gain": None, "ssl_auc_gain_ci_low": None, "ssl_note": "no image dataset selected"}
    gains = {a: gain_over_datasets(runs, c) for a, c in ARM_CURVES.items() if c in arms}
    title = f"{{name}}: SSL trunk vs CNN from scratch (seeds {seeds.start}-{seeds.stop - 1})"
    plots = write_dataset_plots(runs, plot_dir, prefix="ssl", title=title) if plot_dir else []
    seconds = [s for r in runs.values() for s in r["pretrain_seconds"]]
    return {
        "ssl_auc_gain": gains[arm][0],
        "ssl_auc_gain_ci_low": gains[arm][1],
        "ssl_auc_gain_ci": gains[arm][1:],
        "ssl_arm": arm,
        "ssl_arms": gains,
        "ssl_pretrain_seconds": round(float(np.mean(seconds)), 2),
        "ssl_pretrain_cpu_seconds": _mean_seconds([s for r in runs.values() for s in r["pretrain_cpu_seconds"]]),
        "ssl_train_cpu_seconds_per_cycle": {
            a: _mean_seconds([s for r in runs.values() for s in r["train_seconds"][a]]) for a in (SCRATCH, *arms)
        },
        "ssl_config": ssl_config(0, **overrides).params() | {"seed": "per benchmark seed"},
        "ssl_finetune_keep": finetune_keep or "recipe",
        "ssl_per_dataset": per_dataset,
        "ssl_plots": plots,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 seeds, 4 cycles, pools of at most 400")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--datasets", default="digits-iid,digits-longtail")
    parser.add_argument(
        "--arm",
        choices=sorted(ARM_CURVES),
        default=DEFAULT_ARM,
        help=f"the arm ssl_auc_gain reports (default {DEFAULT_ARM}: the mode the product sets on use)",
    )
    parser.add_argument(
        "--finetune-keep",
        choices=("best", "last"),
        default=None,
        help="dev question: the fine-tune arm's checkpoint rule instead of the product recipe's (last)",
    )
    parser.add_argument("--only-arm", action="store_true", help="run the reported arm alone (not both SSL arms)")
    # Dev-seed choices of the defaults (docs/models.md); the product's defaults when not given.
    parser.add_argument("--cache-scratch", action="store_true", help="keep the scratch curves on disk (dev aid)")
    parser.add_argument("--scratch-only", action="store_true", help="only compute (and cache) the scratch curves")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--min-steps", type=int, default=None)
    parser.add_argument("--temperature", type=float, default=None)
    parser.add_argument("--strength", type=float, default=None)
    parser.add_argument("--plot-dir", type=Path, default=None, help="write each image set's curves there (PNG)")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    started = time.perf_counter()
    seeds = range(args.first_seed, args.first_seed + (args.seeds or (3 if args.quick else 5)))
    cycles, pool_cap = (4, 400) if args.quick else (None, None)
    overrides = {
        k: v for k in ("epochs", "min_steps", "temperature", "strength") if (v := getattr(args, k)) is not None
    }
    print(
        f"device: {resolve_device()}; seeds {seeds.start}-{seeds.stop - 1}; overrides {overrides}; "
        f"reported arm {args.arm}{' (alone)' if args.only_arm else ' (both arms run)'}",
        flush=True,
    )
    if args.scratch_only:  # dev aid: the scratch curves of fresh seeds, computed while the SSL settings are chosen
        for name in args.datasets.split(","):
            ds = DATASETS[name]()
            plan = dataclasses.replace(ds.plan, cycles=cycles) if cycles else ds.plan
            for seed in seeds:
                scratch_curve(ds, plan, seed, pool_cap, cache=True)
        return
    datasets = args.datasets.split(",")
    out = measure(
        seeds,
        cycles=cycles,
        pool_cap=pool_cap,
        datasets=datasets,
        quick=args.quick,
        cache=args.cache_scratch,
        arm=args.arm,
        compare=not args.only_arm,
        finetune_keep=args.finetune_keep,
        plot_dir=args.plot_dir,
        **overrides,
    )
    out |= {
        "seeds": len(seeds),
        "first_seed": args.first_seed,
        "mode": "quick" if args.quick else "full",
        "minutes": round((time.perf_counter() - started) / 60, 2),
    }
    CACHE.mkdir(parents=True, exist_ok=True)
    tag = "-".join(f"{k}{v}" for k, v in overrides.items()) + (
        f"-keep{args.finetune_keep}" if args.finetune_keep else ""
    )
    (CACHE / f"models-ssl-{out['mode']}-s{args.first_seed}-{args.arm}{tag}.json").write_text(json.dumps(out, indent=1))
    print("RESULT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
