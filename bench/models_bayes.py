"""Bayesian heads on frozen features (issue 19): MC dropout against a deep ensemble and a last-layer Laplace.

On every frozen-feature dataset of the learning benchmark (``bench/learning_data.py``: the two text sets), with its
protocol and its own loop (``bench/learning.run_arm``: paired seeds that resample the split, the same seeded initial
labels, validation labels counted, one grid), the product's default acquisition (heuristic, strategy, T: read from
the product as ``bench/learning.py`` does) is driven by three approximations of the head's posterior
(``engine.bayes_heads``):

- ``mc_dropout``: the product today, T dropout samples of the head; its curve is the learning benchmark's own;
- ``ensemble``: 5 heads, same recipe, member seeds from the cycle's seed (member 0 is the head ``mc_dropout``
  trains); the curve is the members' mean prediction. ``ensemble-member0`` is that run's member 0 alone, so the
  gain from *acquisition* can be told from the gain of averaging five models;
- ``laplace``: the same trained head (the MAP), a Gaussian on its last layer (prior precision by marginal
  likelihood), T weight samples; the curve is the MAP's prediction, so it differs from ``mc_dropout`` only by
  which items were acquired.

    bayes_auc_gain_<method> = mean over datasets of [AUC(method) - AUC(mc_dropout)]

with a 95% interval (each bootstrap draw resamples every dataset's seeds, paired across methods, and averages the
datasets). Also: the test-set calibration (ECE, NLL) of each method's predictive at the last cycle, and each
method's train / fit / scoring seconds on the same 10,000-item pool.

    .venv/bin/python bench/models_bayes.py --quick            # 2 seeds, 2 cycles, pools <= 400: under 5 minutes
    .venv/bin/python bench/models_bayes.py                    # development seeds 0-4, whole pools
    .venv/bin/python bench/models_bayes.py --first-seed 5     # fresh seeds 5-9: the confirming run (docs/models.md)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.learning import THREADS, build_model, has_probe, run_arm, tensors, train_and_test  # noqa: E402
from bench.learning_arms import default_arm, product_default  # noqa: E402
from bench.learning_data import CACHE, DATASETS, Dataset  # noqa: E402
from engine.bayes_heads import (  # noqa: E402
    ENSEMBLE_SIZE,
    EnsembleSampler,
    LaplaceSampler,
    calibration,
    fit_laplace,
    member_seed,
    train_ensemble,
)
from engine.learning_protocol import (  # noqa: E402
    FloatArray,
    IntArray,
    mean_gain_over_datasets,
    normalised_auc,
    on_grid,
    seed_for,
)
from engine.metrics import ClassificationMetrics, classification_metrics  # noqa: E402
from engine.recipes import train_config  # noqa: E402
from engine.scoring import MCDropout, Sampler  # noqa: E402

MC, ENS, LAP = "mc_dropout", "ensemble", "laplace"
MEMBER0 = "ensemble-member0"
N_BOOT = 2000


@dataclasses.dataclass
class Fitted:
    """One cycle's model under one method: what ``run_arm`` reads (``model``, ``test``) and how it samples."""

    model: torch.nn.Module  # the single head (the MAP; member 0 of an ensemble)
    test: ClassificationMetrics  # the method's own prediction on the test set
    sampler: Callable[[int, bool], Sampler]  # (T, embeddings?) -> an engine.scoring sampler
    member0: ClassificationMetrics | None = None
    fit_seconds: float = 0.0


class Method:
    """A trainer for ``run_arm`` that also remembers its last fit (the last cycle's, for calibration)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.last: Fitted | None = None
        self.test_positions: IntArray | None = None
        self.member0_rows: list[tuple[float, float]] = []

    def train(self, ds: Dataset, pool: IntArray, labeled: IntArray, valid: IntArray, test: IntArray, seed: int) -> Any:
        if self.name == ENS:
            fitted = self._ensemble(ds, pool, labeled, valid, test, seed)
        else:
            result = train_and_test(ds, pool, labeled, valid, test, seed)
            model = result.model
            if self.name == LAP:
                started = time.perf_counter()
                lap = fit_laplace(model, *tensors(ds, pool[labeled]), num_classes=len(ds.labels))
                fitted = Fitted(
                    model, result.test, lambda t, e: LaplaceSampler(lap, samples=t, seed=seed, embeddings=e)
                )
                fitted.fit_seconds = time.perf_counter() - started
            else:
                fitted = Fitted(model, result.test, lambda t, e: MCDropout(model, iterations=t, embeddings=e))
        self.last, self.test_positions = fitted, test
        return fitted

    def _ensemble(
        self, ds: Dataset, pool: IntArray, labeled: IntArray, valid: IntArray, test: IntArray, seed: int
    ) -> Fitted:
        # Member k's weights and recipe seeds derive from the ones train_and_test uses: member 0 *is* that head.
        def build(k: int) -> tuple[torch.nn.Module, Any]:
            model = build_model(ds, member_seed(seed_for(seed, 4), k))
            return model, train_config(model, seed=member_seed(seed_for(seed, 5), k))

        members = train_ensemble(
            build, tensors(ds, pool[labeled]), tensors(ds, valid), num_classes=len(ds.labels), test=tensors(ds, test)
        )
        models = [m.model for m in members]
        sampler = EnsembleSampler(models)
        probs = sampler(torch.from_numpy(ds.x[test]))[0].mean(axis=2)
        metrics = classification_metrics(ds.y[test], probs.argmax(axis=1), len(ds.labels))
        return Fitted(models[0], metrics, lambda _t, e: EnsembleSampler(models, embeddings=e), members[0].test)

    def sampler_for(self, fitted: Any, t: int, embeddings: bool) -> Sampler:
        return fitted.sampler(t, embeddings)

    def calibration(self, ds: Dataset, t: int, seed: int) -> dict[str, float]:
        """ECE and NLL of the last fit's predictive (mean of its samples) on its test set."""
        assert self.last is not None and self.test_positions is not None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            samples = self.last.sampler(t, False)(torch.from_numpy(ds.x[self.test_positions]))[0]
        return calibration(samples.mean(axis=2), ds.y[self.test_positions])


def curves_for(
    ds: Dataset, seeds: range, *, cycles: int | None, pool_cap: int | None, heuristic: str | None
) -> dict[str, Any]:
    spec, _ = product_default()
    if heuristic:
        spec = {**spec, "heuristic": heuristic}
    arm, t = default_arm(spec), int(spec["mc_iterations"])
    plan = dataclasses.replace(ds.plan, cycles=cycles) if cycles else ds.plan
    raw: dict[str, list[FloatArray]] = {MC: [], ENS: [], LAP: [], MEMBER0: []}
    calib: dict[str, list[dict[str, float]]] = {MC: [], ENS: [], LAP: []}
    for seed in seeds:
        for name in (MC, ENS, LAP):
            method = Method(name)
            rows: list[tuple[float, float]] = []

            def train(*args: Any, method: Method = method, rows: list[tuple[float, float]] = rows) -> Any:
                fitted = method.train(*args)
                if fitted.member0 is not None:
                    rows.append((0.0, fitted.member0.macro_f1))
                return fitted

            curve = run_arm(ds, plan, arm, seed, pool_cap, t, {}, None, train, method.sampler_for)
            raw[name].append(curve)
            if name == ENS:
                raw[MEMBER0].append(np.column_stack([curve[:, 0], [f for _, f in rows]]))
            calib[name].append(method.calibration(ds, ENSEMBLE_SIZE if name == ENS else t, seed_for(seed, 6)))
        finals = {n: round(float(c[-1][-1, 1]), 3) for n, c in raw.items()}
        print(f"  {ds.name} seed {seed}: final macro-F1 {finals}", flush=True)
    grid = raw[MC][0][:, 0]
    curves = {a: np.stack([on_grid(c[:, 0], c[:, 1], grid) for c in cs]) for a, cs in raw.items()}
    mean_calib = {n: {k: round(float(np.mean([c[k] for c in cs])), 4) for k in cs[0]} for n, cs in calib.items()}
    return {
        "grid": grid,
        "curves": curves,
        "calibration": mean_calib,
        "plan": dataclasses.asdict(plan),
        "arm": arm.note,
    }


def mean_gain(runs: dict[str, dict[str, Any]], arm: str, base: str, *, final: bool = False) -> list[float]:
    """[point, 2.5%, 97.5%] of the mean over datasets of AUC(arm) - AUC(base) (or of the last point's difference),
    paired within each dataset's seeds."""
    return mean_gain_over_datasets(runs, arm, base, final=final, n_boot=N_BOOT)


def seconds(ds: Dataset, t: int, pool_size: int = 10_000, labels: int = 300) -> dict[str, dict[str, float]]:
    """Each method's cycle on one pool: train (5 heads for the ensemble), fit (Laplace), then score ``pool_size``
    items (the dataset's embeddings repeated: only time is measured), T samples (K members for the ensemble)."""
    rng = np.random.default_rng(0)
    pool = torch.from_numpy(ds.x[rng.integers(0, len(ds.x), pool_size)])
    positions = np.arange(len(ds.y))
    pick = rng.choice(len(ds.y), labels + 5 * len(ds.labels), replace=False)
    labeled, valid = np.sort(pick[:labels]), pick[labels:]
    out: dict[str, dict[str, float]] = {}
    for name in (MC, ENS, LAP):
        method = Method(name)
        started = time.perf_counter()
        fitted = method.train(ds, positions, labeled, valid, valid, 0)
        trained = time.perf_counter()
        sampler = fitted.sampler(t, False)
        for lo in range(0, pool_size, 512):  # the engine's batches
            sampler(pool[lo : lo + 512])
        done = time.perf_counter()
        out[name] = {
            "train_s": round(trained - started - fitted.fit_seconds, 2),
            "fit_s": round(fitted.fit_seconds, 2),
            "score_s": round(done - trained, 2),
        }
    return out


def measure(
    datasets: list[str], seeds: range, *, quick: bool, heuristic: str | None = None, cycles: int | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``bayes_*`` keys of the models RESULT (and per-dataset details) on the frozen-feature datasets;
    ``cycles``: the first acquisitions of each dataset's plan only (None: all of them)."""
    pool_cap = 400 if quick else None
    cycles = 2 if quick else cycles
    runs: dict[str, dict[str, Any]] = {}
    timing: dict[str, Any] = {}
    for name in datasets:
        ds = DATASETS[name]()
        if not has_probe(ds):
            continue
        t0 = time.perf_counter()
        runs[name] = run = curves_for(ds, seeds, cycles=cycles, pool_cap=pool_cap, heuristic=heuristic)
        run["auc"] = {a: round(normalised_auc(run["grid"], c.mean(axis=0)), 4) for a, c in run["curves"].items()}
        run["gain"] = {a: mean_gain({name: run}, a, MC) for a in (ENS, LAP, MEMBER0)}
        run["minutes"] = round((time.perf_counter() - t0) / 60, 2)
        timing[name] = seconds(ds, 20)
        print(f"  {name}: auc {run['auc']} gain {run['gain']} calibration {run['calibration']}", flush=True)
    if not runs:
        raise SystemExit("no frozen-feature dataset among --datasets")
    keys: dict[str, Any] = {}
    for method in (ENS, LAP, MEMBER0):
        key = "bayes_auc_gain_" + method.replace("-", "_")
        auc, final = mean_gain(runs, method, MC), mean_gain(runs, method, MC, final=True)
        keys |= {key: auc[0], f"{key}_ci": auc[1:], f"{key}_final": final[0], f"{key}_final_ci": final[1:]}
    keys["bayes_credible"] = [m for m in (ENS, LAP) if keys[f"bayes_auc_gain_{m}_ci"][0] > 0]
    keys["bayes_calibration"] = {n: r["calibration"] for n, r in runs.items()}
    keys["bayes_seconds"] = timing
    keys["bayes_acquisition"] = next(iter(runs.values()))["arm"]
    details = {
        n: {
            **{k: v for k, v in r.items() if k not in ("curves", "grid")},
            "grid": [float(g) for g in r["grid"]],
            "mean_curves": {a: [round(float(v), 4) for v in c.mean(axis=0)] for a, c in r["curves"].items()},
        }
        for n, r in runs.items()
    }
    return keys, details


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 seeds, 2 cycles, pools of at most 400")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--first-seed", type=int, default=0, help="fresh seeds (5) confirm a choice made on 0-4")
    parser.add_argument("--datasets", default=",".join(DATASETS), help="frozen-feature ones are kept")
    parser.add_argument("--heuristic", default=None, help="instead of the product's default heuristic")
    parser.add_argument("--cycles", type=int, default=None, help="the plans' first N acquisitions (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    started = time.perf_counter()
    seeds = range(args.first_seed, args.first_seed + (args.seeds or (2 if args.quick else 5)))
    keys, details = measure(
        args.datasets.split(","), seeds, quick=args.quick, heuristic=args.heuristic, cycles=args.cycles
    )
    out = {
        **keys,
        "seeds": len(seeds),
        "first_seed": args.first_seed,
        "mode": "quick" if args.quick else "full",
        "cycles": args.cycles,
        "per_dataset": {n: {"auc": d["auc"], "gain": d["gain"]} for n, d in details.items()},
        "minutes": round((time.perf_counter() - started) / 60, 2),
    }
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"models-bayes-{out['mode']}-{args.first_seed}-{args.heuristic or 'default'}.json"
    path.write_text(json.dumps({"result": out, "details": details}, indent=1))
    print("RESULT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
