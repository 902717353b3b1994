"""The self-supervised arm of the models benchmark (issue 19): does pretraining the trunk on the pool pay?

On the image datasets of the learning benchmark (``bench/learning_data.py``: digits-iid, digits-longtail), with its
protocol (``bench/learning.py``: the seed resamples the split, the same seeded initial labels, random labels each
cycle, validation labels counted, every curve on the random arm's grid), two arms label the same items:

- **scratch**: the product's default image model, the compact CNN trained end to end (``engine.recipes``);
- **ssl**: per seed, the trunk is pretrained with SimCLR (``engine.ssl``) on that seed's pool images alone (no
  label, no validation or test image), then frozen; each cycle trains the product's head on its cached features
  (the frozen-backbone path: ``TextHead`` with the head recipe), exactly what a project that set ``use`` gets.

    ssl_auc_gain = mean over image datasets of [AUC(ssl) - AUC(scratch)]

with a 95% paired bootstrap over seeds (``ssl_auc_gain_ci_low``, its lower bound), and the pretraining seconds.

    .venv/bin/python bench/models_ssl.py --quick            # 3 seeds, 4 cycles, pools <= 400
    .venv/bin/python bench/models_ssl.py --first-seed 5     # fresh seeds 5-9, whole pools (docs/models.md)
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

from bench.learning import THREADS, run_arm  # noqa: E402
from bench.learning_arms import ARMS  # noqa: E402
from bench.learning_data import CACHE, DATASETS, Dataset, Plan  # noqa: E402
from engine.backbone import network_features  # noqa: E402
from engine.device import resolve_device  # noqa: E402
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
from engine.ssl import SSLConfig, pretrain  # noqa: E402

SCRATCH, SSL = "scratch", "ssl"
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


def frozen_dataset(ds: Dataset, pool: np.ndarray, seed: int, overrides: dict[str, Any]) -> tuple[Dataset, float]:
    """``ds`` with every image replaced by the features of a trunk pretrained on the pool's images only."""
    result = pretrain(ds.x[pool], ssl_config(seed, **overrides))
    feats = network_features(result.trunk, ds.x, mean=result.mean, std=result.std)
    # kind "text" makes bench.learning build the frozen-feature head (TextHead + the head recipe): the model the
    # product trains on a frozen backbone's cached features (campaigns.services.training._new_model).
    return dataclasses.replace(ds, x=feats, kind="text"), result.seconds


def scratch_curve(ds: Dataset, plan: Plan, seed: int, pool_cap: int | None, cache: bool) -> FloatArray:
    """The from-scratch CNN's curve for one seed. It does not depend on any SSL setting, so ``cache`` (a dev aid:
    several SSL settings against the same seeds) keeps it on disk; stale if the CNN's recipe changes since."""
    path = CACHE / f"ssl-scratch-{ds.name}-s{seed}-c{plan.cycles}-p{pool_cap}.npy"
    if cache and path.exists():
        return np.asarray(np.load(path), dtype=np.float64)
    curve = run_arm(ds, plan, ARMS["random"], seed, pool_cap, MC_ITERATIONS, {})
    if cache:
        CACHE.mkdir(parents=True, exist_ok=True)
        np.save(path, curve)
    return curve


def curves_for(
    ds: Dataset,
    seeds: range,
    *,
    cycles: int | None,
    pool_cap: int | None,
    overrides: dict[str, Any],
    cache: bool = False,
) -> dict[str, Any]:
    plan = dataclasses.replace(ds.plan, cycles=cycles) if cycles else ds.plan
    raw: dict[str, list[FloatArray]] = {SCRATCH: [], SSL: []}
    seconds: list[float] = []
    for seed in seeds:
        raw[SCRATCH].append(scratch_curve(ds, plan, seed, pool_cap, cache))
        split = make_split(len(ds.y), n_test=plan.n_test, n_valid=plan.n_valid, seed=seed)
        pool = split.pool[:pool_cap] if pool_cap else split.pool  # the pool run_arm will use, by the same rule
        frozen, secs = frozen_dataset(ds, pool, seed, dict(overrides))
        seconds.append(secs)
        raw[SSL].append(run_arm(frozen, plan, ARMS["random"], seed, pool_cap, MC_ITERATIONS, {}))
        print(
            f"  {ds.name} seed {seed}: scratch {raw[SCRATCH][-1][-1, 1]:.3f}, ssl {raw[SSL][-1][-1, 1]:.3f} "
            f"(pretrained in {secs:.1f}s)",
            flush=True,
        )
    grid = raw[SCRATCH][0][:, 0]
    curves = {a: np.stack([on_grid(c[:, 0], c[:, 1], grid) for c in cs]) for a, cs in raw.items()}
    return {"grid": grid, "curves": curves, "pretrain_seconds": seconds}


def gain_over_datasets(runs: dict[str, dict[str, Any]]) -> list[float]:
    """Mean over datasets of AUC(ssl) - AUC(scratch), with its paired 95% interval."""
    return mean_gain_over_datasets(runs, SSL, SCRATCH, n_boot=N_BOOT)


def measure(
    seeds: range,
    *,
    cycles: int | None,
    pool_cap: int | None,
    datasets: list[str],
    quick: bool = False,
    cache: bool = False,
    **overrides: Any,
) -> dict[str, Any]:
    """The ssl keys of the models RESULT, for the image datasets among ``datasets``. ``quick``: pretraining cut to
    QUICK_STEPS optimizer steps (the keys then say less about the default; the full run measures it)."""
    if quick:
        overrides = {"min_steps": QUICK_STEPS, **overrides}
    runs: dict[str, dict[str, Any]] = {}
    per_dataset: dict[str, Any] = {}
    for name in datasets:
        ds = DATASETS[name]()
        if ds.kind != "image":
            continue
        run = runs[name] = curves_for(ds, seeds, cycles=cycles, pool_cap=pool_cap, overrides=overrides, cache=cache)
        grid, curves = run["grid"], run["curves"]
        per_dataset[name] = {
            "auc_scratch": round(normalised_auc(grid, curves[SCRATCH].mean(axis=0)), 4),
            "auc_ssl": round(normalised_auc(grid, curves[SSL].mean(axis=0)), 4),
            "auc_gain": paired_bootstrap(curves, auc_gain_stat(grid, SSL, SCRATCH), n_boot=N_BOOT).as_json(),
            "final_f1": {a: round(float(c.mean(axis=0)[-1]), 4) for a, c in curves.items()},
            "pretrain_seconds_mean": round(float(np.mean(run["pretrain_seconds"])), 2),
        }
        print(f"  {name}: {json.dumps(per_dataset[name])}", flush=True)
    if not runs:
        return {"ssl_auc_gain": None, "ssl_auc_gain_ci_low": None, "ssl_note": "no image dataset selected"}
    gain = gain_over_datasets(runs)
    seconds = [s for r in runs.values() for s in r["pretrain_seconds"]]
    return {
        "ssl_auc_gain": gain[0],
        "ssl_auc_gain_ci_low": gain[1],
        "ssl_auc_gain_ci": gain[1:],
        "ssl_pretrain_seconds": round(float(np.mean(seconds)), 2),
        "ssl_config": ssl_config(0, **overrides).params() | {"seed": "per benchmark seed"},
        "ssl_per_dataset": per_dataset,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 seeds, 4 cycles, pools of at most 400")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--datasets", default="digits-iid,digits-longtail")
    # Dev-seed choices of the defaults (docs/models.md); the product's defaults when not given.
    parser.add_argument("--cache-scratch", action="store_true", help="keep the scratch curves on disk (dev aid)")
    parser.add_argument("--scratch-only", action="store_true", help="only compute (and cache) the scratch curves")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--min-steps", type=int, default=None)
    parser.add_argument("--temperature", type=float, default=None)
    parser.add_argument("--strength", type=float, default=None)
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    started = time.perf_counter()
    seeds = range(args.first_seed, args.first_seed + (args.seeds or (3 if args.quick else 5)))
    cycles, pool_cap = (4, 400) if args.quick else (None, None)
    overrides = {
        k: v for k in ("epochs", "min_steps", "temperature", "strength") if (v := getattr(args, k)) is not None
    }
    print(f"device: {resolve_device()}; seeds {seeds.start}-{seeds.stop - 1}; overrides {overrides}", flush=True)
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
        **overrides,
    )
    out |= {
        "seeds": len(seeds),
        "first_seed": args.first_seed,
        "mode": "quick" if args.quick else "full",
        "minutes": round((time.perf_counter() - started) / 60, 2),
    }
    CACHE.mkdir(parents=True, exist_ok=True)
    tag = "-".join(f"{k}{v}" for k, v in overrides.items())
    (CACHE / f"models-ssl-{out['mode']}-s{args.first_seed}{tag}.json").write_text(json.dumps(out, indent=1))
    print("RESULT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
