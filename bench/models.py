"""Models benchmark (issue 19): is the product's default head at least as good as a linear probe on its features?

On every frozen-feature dataset of the learning benchmark (``bench/learning_data.py``: the text sets, MiniLM
embeddings), with its protocol (``bench/learning.py``: paired seeds that resample the split, the same seeded
initial labels, validation labels counted): the random arm labels items at random and trains the product's default
head (``engine.recipes``, exactly what a project trains) each cycle; at the same labels, the linear probe
(``engine.probe``: class-balanced logistic regression, one fixed C) is trained and tested on the same test set.

    head_vs_linear_probe_f1 = mean over datasets of [AUC(head) - AUC(probe)]

where AUC is the mean test macro-F1 over the label budget (both curves on the same grid): the head's macro-F1
minus the probe's at equal random labels. Target: >= 0. Also: the same difference at the last point, a 95%
paired bootstrap interval for each, and the time of one frozen-feature cycle (train + MC score) on 10,000 pool
items on this machine's device (``ALWEB_DEVICE``).

``finetune_auc_gain`` and ``mc_layers_speedup`` (text fine-tuning against the frozen head, confined MC dropout's
speed) come from ``bench/models_text.py`` (``--no-text`` skips them); ``ssl_auc_gain`` and ``ssl_auc_gain_ci_low``
(a trunk pretrained without labels on each seed's pool, frozen, against the CNN from scratch, on the image sets)
from ``bench/models_ssl.py`` (``--no-ssl`` skips them).

    .venv/bin/python bench/models.py --quick     # 3 seeds, 4 cycles, pools <= 400: a few minutes on 2 cores
    .venv/bin/python bench/models.py             # 5 seeds, 9 cycles, whole pools (docs/models.md)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.learning import PROBE, THREADS, build_model, has_probe, run_arm  # noqa: E402
from bench.learning_arms import ARMS  # noqa: E402
from bench.learning_data import CACHE, DATASETS, Dataset  # noqa: E402
from engine.device import resolve_device  # noqa: E402
from engine.learning_protocol import (  # noqa: E402
    FloatArray,
    auc_gain_stat,
    mean_gain_over_datasets,
    normalised_auc,
    on_grid,
    paired_bootstrap,
)
from engine.recipes import train_config  # noqa: E402
from engine.scoring import concat_chunks, iter_batches, score_model  # noqa: E402
from engine.training import train_classifier  # noqa: E402

HEAD = "head"
N_BOOT = 2000
MC_ITERATIONS = 20  # the product default (Project.default_mc_iterations)


def curves_for(ds: Dataset, seeds: range, *, cycles: int | None, pool_cap: int | None) -> dict[str, Any]:
    """Head and probe curves at the random arm's labels, every seed, on one grid."""
    plan = dataclasses.replace(ds.plan, cycles=cycles) if cycles else ds.plan
    raw: dict[str, list[FloatArray]] = {HEAD: [], PROBE: []}
    for seed in seeds:
        probe: list[tuple[float, float]] = []
        raw[HEAD].append(run_arm(ds, plan, ARMS["random"], seed, pool_cap, MC_ITERATIONS, {}, probe))
        raw[PROBE].append(np.asarray(probe, dtype=np.float64))
        print(f"  {ds.name} seed {seed}: head {raw[HEAD][-1][-1, 1]:.3f}, probe {probe[-1][1]:.3f}", flush=True)
    grid = raw[HEAD][0][:, 0]
    curves = {a: np.stack([on_grid(c[:, 0], c[:, 1], grid) for c in cs]) for a, cs in raw.items()}
    return {"grid": grid, "curves": curves, "plan": dataclasses.asdict(plan)}


def final_gain(mean: Mapping[str, FloatArray]) -> float:
    return float(mean[HEAD][-1] - mean[PROBE][-1])


def mean_over_datasets(runs: dict[str, dict[str, Any]], *, final: bool) -> list[float]:
    """Point and 95% interval of the mean over datasets of (head - probe), paired within each dataset's seeds."""
    return mean_gain_over_datasets(runs, HEAD, PROBE, final=final, n_boot=N_BOOT)


def cycle_seconds(ds: Dataset, pool_size: int = 10_000, labels: int = 300) -> dict[str, Any]:
    """One frozen-feature cycle as a worker runs it, engine side (features already cached): train the default
    head on ``labels`` labels with the product's recipe, then MC-score ``pool_size`` items (T = 20, embeddings on,
    as ``campaigns.services.inference.model_score`` asks). The pool repeats the dataset's real embeddings: only the
    time is measured here, and it does not depend on which vectors are scored."""
    rng = np.random.default_rng(0)
    pool = ds.x[rng.integers(0, len(ds.x), pool_size)]
    pick = rng.choice(len(ds.x), labels + 5 * len(ds.labels), replace=False)
    train, valid = pick[:labels], pick[labels:]
    started = time.perf_counter()
    model = build_model(ds, 0)
    result = train_classifier(
        model,
        (torch.from_numpy(ds.x[train]), torch.from_numpy(ds.y[train])),
        (torch.from_numpy(ds.x[valid]), torch.from_numpy(ds.y[valid])),
        num_classes=len(ds.labels),
        config=train_config(model, seed=0),
    )
    trained = time.perf_counter()
    chunks = score_model(
        result.model, iter_batches(pool, 512), iterations=MC_ITERATIONS, heuristic="margin", embeddings=True
    )
    scored = len(concat_chunks(chunks).ids)
    done = time.perf_counter()
    assert scored == pool_size
    return {
        "train_s": round(trained - started, 2),
        "score_s": round(done - trained, 2),
        "total_s": round(done - started, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 seeds, 4 cycles, pools of at most 400")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument(
        "--first-seed", type=int, default=0, help="fresh seeds to confirm a choice made on earlier ones"
    )
    parser.add_argument("--datasets", default=",".join(DATASETS), help="frozen-feature ones are kept")
    parser.add_argument("--bayes", action="store_true", help="also MC dropout vs ensemble vs Laplace (models_bayes)")
    parser.add_argument("--no-text", action="store_true", help="skip the text fine-tuning arms (models_text)")
    parser.add_argument("--no-ssl", action="store_true", help="skip the self-supervised trunk arm (models_ssl)")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    started = time.perf_counter()
    seeds = range(args.first_seed, args.first_seed + (args.seeds or (3 if args.quick else 5)))
    cycles, pool_cap = (4, 400) if args.quick else (None, None)
    device = resolve_device()
    print(f"device: {device}; seeds {seeds.start}-{seeds.stop - 1}", flush=True)

    runs: dict[str, dict[str, Any]] = {}
    per_dataset: dict[str, Any] = {}
    timing: dict[str, Any] = {}
    for name in args.datasets.split(","):
        ds = DATASETS[name]()
        if not has_probe(ds):
            continue
        run = runs[name] = curves_for(ds, seeds, cycles=cycles, pool_cap=pool_cap)
        grid, curves = run["grid"], run["curves"]
        per_dataset[name] = {
            "auc_head": round(normalised_auc(grid, curves[HEAD].mean(axis=0)), 4),
            "auc_probe": round(normalised_auc(grid, curves[PROBE].mean(axis=0)), 4),
            "auc_gain": paired_bootstrap(curves, auc_gain_stat(grid, HEAD, PROBE), n_boot=N_BOOT).as_json(),
            "final_gain": paired_bootstrap(curves, final_gain, n_boot=N_BOOT).as_json(),
            "mean_curves": {a: [round(float(v), 4) for v in c.mean(axis=0)] for a, c in curves.items()},
            "grid": [float(g) for g in grid],
            "items": len(ds.y),
            "classes": len(ds.labels),
        }
        print(f"  {name}: {json.dumps({k: per_dataset[name][k] for k in ('auc_head', 'auc_probe', 'auc_gain')})}")
        if not timing:
            timing = {"dataset": name, **cycle_seconds(ds)}
    if not runs:
        raise SystemExit("no frozen-feature dataset among --datasets")

    auc = mean_over_datasets(runs, final=False)
    final = mean_over_datasets(runs, final=True)
    out: dict[str, Any] = {
        "head_vs_linear_probe_f1": auc[0],
        "head_vs_linear_probe_f1_ci": auc[1:],
        "head_vs_linear_probe_final_f1": final[0],
        "head_vs_linear_probe_final_f1_ci": final[1:],
        "datasets": list(runs),
        "seeds": len(seeds),
        "first_seed": args.first_seed,
        "mode": "quick" if args.quick else "full",
        "device": str(device),
        "cycle_seconds_frozen_10k": timing.get("total_s"),
        "cycle_timing": timing,
        # The self-supervised trunk vs the CNN from scratch (bench/models_ssl.py) fills these unless --no-ssl.
        "ssl_auc_gain": None,
        "ssl_auc_gain_ci_low": None,
        # Text fine-tuning (bench/models_text.py) fills these unless --no-text.
        "finetune_auc_gain": None,
        "mc_layers_speedup": None,
        "per_dataset": {
            n: {k: v for k, v in d.items() if k not in ("mean_curves", "grid")} for n, d in per_dataset.items()
        },
        "minutes": round((time.perf_counter() - started) / 60, 2),
    }
    if args.bayes:  # issue 19's other Bayesian heads: bench/models_bayes.py, the same datasets and seeds
        from bench.models_bayes import measure

        out = {**out, **measure(list(runs), seeds, quick=args.quick)[0]}
        out["minutes"] = round((time.perf_counter() - started) / 60, 2)
    if not args.no_text:  # fine-tuned MiniLM vs the frozen head, and confined MC's speed: bench/models_text.py
        from bench.models_text import measure as measure_text

        out = {**out, **measure_text(quick=args.quick, first_seed=args.first_seed)}
        out["minutes"] = round((time.perf_counter() - started) / 60, 2)
    if not args.no_ssl:  # SSL-pretrained trunk, frozen, vs the CNN from scratch on the image sets: bench/models_ssl.py
        from bench.models_ssl import measure as measure_ssl

        out = {
            **out,
            **measure_ssl(seeds, cycles=cycles, pool_cap=pool_cap, datasets=args.datasets.split(","), quick=args.quick),
        }
        out["minutes"] = round((time.perf_counter() - started) / 60, 2)
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / f"models-{out['mode']}.json").write_text(json.dumps({"result": out, "details": per_dataset}, indent=1))
    print("RESULT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
