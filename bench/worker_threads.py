"""Worker threads benchmark: how many intra-op threads should a worker's PyTorch use, on a host it shares?

PyTorch's CPU build runs its operators on an OpenMP pool with one thread per core, whose threads spin while they
wait for each other. Alone on the host that is the fastest; beside any other busy process (a second worker, the
web server, Postgres, a test run) a parallel region waits for whichever of its threads the kernel has descheduled,
and small operators pay that wait thousands of times. A worker is rarely alone on its host.

Each policy below runs each workload in a fresh process (OpenMP reads its environment once, at load), alone on
the host ("idle") and beside one process that spins on a core ("contended"):

- ``torch-default``: one thread per usable core, OpenMP's default waiting (what alweb's workers did before).
  ``OMP_WAIT_POLICY`` is set per policy in the child's environment: the default policy's child has it unset.
- ``one-thread``: ``torch.set_num_threads(1)``; a host's cores are used by more worker processes (prefork
  concurrency, or the chunk tasks of one cycle on several workers).
- ``passive``: one thread per core, ``OMP_WAIT_POLICY=PASSIVE`` (waiting threads sleep instead of spinning).

Workloads, all alweb's own code on synthetic inputs of product shapes:

- ``folds``: the label-quality task's 5-fold training of the digits CNN (80 items, 8 px): small operators.
- ``train``: a training of the 32 px CNN (the product recipe, 100 steps at least) on 128 items per scale.
- ``score``: MC-dropout BALD scoring (T = 20) of a pool through the 32 px CNN.
- ``encode``: MiniLM embeddings of short texts (a text project's features).

The rule, fixed before the first run: the default is the policy with the smallest worst-case regret, i.e. the
largest ratio, over workloads and both loads, of its time to the fastest policy's time in the same cell.

    RESULT {"cpus", "seconds": {policy: {workload: {load: s}}}, "contended_slowdown": {policy: max contended/idle},
            "idle_cost": {policy: max idle / torch-default idle}, "regret": {policy: worst ratio}, "chosen"}

    .venv/bin/python bench/worker_threads.py --quick   # 1 run per cell, small workloads: about 3 minutes on 2 cores
    .venv/bin/python bench/worker_threads.py           # 3 runs per cell (median), twice the size: about 15 minutes
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
POLICIES: dict[str, dict[str, str]] = {
    "torch-default": {"ALWEB_TORCH_THREADS": "cores"},
    "one-thread": {"ALWEB_TORCH_THREADS": "1"},
    "passive": {"ALWEB_TORCH_THREADS": "cores", "OMP_WAIT_POLICY": "PASSIVE"},
}
WORKLOADS = ("folds", "train", "score", "encode")
LOADS = ("idle", "contended")


def _workload(name: str, *, scale: int) -> float:
    """Seconds of one run of workload `name` in this process (its threads set from ALWEB_TORCH_THREADS)."""
    sys.path.insert(0, str(ROOT))
    import numpy as np
    import torch

    from engine.threads import configure_threads

    configure_threads(os.environ.get("ALWEB_TORCH_THREADS"), processes=1)
    rng = np.random.default_rng(0)
    if name == "encode":
        from engine.text import MiniLMEncoder

        encoder = MiniLMEncoder()
        words = ["label", "model", "cycle", "image", "budget", "score", "pool", "annotation", "worker", "queue"]
        texts = [" ".join(rng.choice(words, size=int(rng.integers(8, 40)))) for _ in range(64 * scale)]
        start = time.perf_counter()
        encoder.encode(texts)
        return time.perf_counter() - start
    from engine.label_quality import out_of_fold_probs
    from engine.recipes import new_network, train_config
    from engine.scoring import iter_batches, score_model
    from engine.training import train_classifier

    size = 8 if name == "folds" else 32
    channels = 1 if name == "folds" else 3
    n = {"folds": 80, "train": 128 * scale, "score": 256 * scale}[name]
    x = torch.as_tensor(rng.random((n, channels, size, size), dtype=np.float32))
    y = torch.as_tensor(rng.integers(0, 10, n))

    def make(seed: int) -> torch.nn.Module:
        torch.manual_seed(seed)
        return new_network("image", 10, image_size=size, channels=channels, dropout=None)

    start = time.perf_counter()
    if name == "folds":
        config = train_config(make(0), seed=0, epochs=5, min_steps=60)
        out_of_fold_probs(make, x, y, num_classes=10, config=config, folds=5)
    elif name == "train":
        config = train_config(make(0), seed=0, epochs=3, min_steps=100)
        train_classifier(make(0), (x, y), None, num_classes=10, config=config)
    else:
        for _ in score_model(make(0), iter_batches(x, 64), iterations=20):
            pass
    return time.perf_counter() - start


def _run(policy: str, workload: str, load: str, *, scale: int) -> float:
    # The policy's settings alone: whatever the caller's shell sets for threads would blur the comparison.
    inherited = {k: v for k, v in os.environ.items() if k not in {"ALWEB_TORCH_THREADS", "OMP_WAIT_POLICY"}}
    # The child never imports alweb, so nothing sets a wait policy there but this environment.
    env = {**inherited, **POLICIES[policy], "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if load == "contended" else None
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--child", workload, "--scale", str(scale)],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    return float(out.strip().splitlines()[-1])


def summarize(seconds: dict[str, dict[str, dict[str, float]]]) -> dict[str, Any]:
    """The ratios the rule reads (module docstring), from {policy: {workload: {load: seconds}}}."""
    workloads = list(next(iter(seconds.values())))
    best = {(w, load): min(s[w][load] for s in seconds.values()) for w in workloads for load in LOADS}
    regret = {p: max(s[w][load] / best[w, load] for w in workloads for load in LOADS) for p, s in seconds.items()}
    base = seconds["torch-default"]
    return {
        "contended_slowdown": {p: max(s[w]["contended"] / s[w]["idle"] for w in workloads) for p, s in seconds.items()},
        "idle_cost": {p: max(s[w]["idle"] / base[w]["idle"] for w in workloads) for p, s in seconds.items()},
        "regret": regret,
        "chosen": min(regret, key=lambda p: regret[p]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--quick", action="store_true", help="one run per cell, half the size (about 3 minutes on 2 cores)"
    )
    parser.add_argument("--repeats", type=int, default=None, help="runs per cell, the median kept (default 3, 1 quick)")
    parser.add_argument("--child", choices=WORKLOADS, help=argparse.SUPPRESS)
    parser.add_argument("--scale", type=int, default=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(_workload(args.child, scale=args.scale))
        return
    scale = 2 if args.quick else 4
    repeats = args.repeats or (1 if args.quick else 3)
    seconds: dict[str, dict[str, dict[str, float]]] = {p: {w: {} for w in WORKLOADS} for p in POLICIES}
    # Policies interleaved within each cell, so a drift of the host's speed falls on all of them alike.
    for workload in WORKLOADS:
        for load in LOADS:
            runs: dict[str, list[float]] = {p: [] for p in POLICIES}
            for _ in range(repeats):
                for policy in POLICIES:
                    runs[policy].append(_run(policy, workload, load, scale=scale))
            for policy, times in runs.items():
                seconds[policy][workload][load] = round(sorted(times)[len(times) // 2], 3)
                print(f"{workload:7} {load:9} {policy:14} {seconds[policy][workload][load]:8.2f} s", flush=True)
    result = {"cpus": os.cpu_count(), "quick": args.quick, "seconds": seconds, **summarize(seconds)}
    for key in ("contended_slowdown", "idle_cost", "regret"):
        result[key] = {p: round(v, 2) for p, v in result[key].items()}
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
