"""Scoring benchmark: alweb's MC-dropout engine against one plain pass and against baal's predict_on_dataset.

Reference model: 4 conv + 2 linear layers, dropout only in the head, 3x64x64 inputs, 10 classes, random weights;
T = 20 MC iterations, 2 torch threads. Measured in one run:

(a) one plain deterministic pass of the whole model over N items (the floor: no MC at all);
(b) baal 2.1 ``ModelWrapper.predict_on_dataset`` with default arguments (TrainingArgs() defaults: batch 32,
    4 loader workers, replicate in memory), timed on a subset and counted per item (it runs ~25 items/s);
(c) alweb's engine (fast path, chunked) over the same N items;
peak RSS of the engine scoring N and 10*N items, each in a fresh subprocess with data generated lazily per chunk
(so the data itself never grows RSS); BALD from the engine against baal's BALD fed the same samples; and the text
path (dropout MLP head over cached 384-d embeddings) in items/s.

Timings are best-of-k over alternating repetitions of (a) and (c): the machine is shared, and the best run is the
one least disturbed by other processes. Last line: ``RESULT {json}``.

    .venv/bin/python bench/scoring.py --quick        # N = 2048
    .venv/bin/python bench/scoring.py                # N = 4096
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import resource
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from engine.architectures import ReferenceCNN, TextHead  # noqa: E402
from engine.scoring import Batch, MCDropout, score_chunks  # noqa: E402

THREADS = 2
T = 20
BATCH = 256
SHAPE = (3, 64, 64)


def make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return ReferenceCNN(num_classes=10).eval()


def chunk_data(lo: int, hi: int) -> torch.Tensor:
    """Deterministic synthetic images for items [lo, hi): generated on demand, never kept."""
    gen = torch.Generator().manual_seed(lo)
    return torch.randn(hi - lo, *SHAPE, generator=gen)


def lazy_batches(n: int, batch: int = BATCH) -> Iterator[Batch]:
    for lo in range(0, n, batch):
        hi = min(lo + batch, n)
        yield Batch(functools.partial(chunk_data, lo, hi), size=hi - lo)


def peak_rss_mb() -> float:
    """Peak RSS of this process's own address space, in MiB.

    VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss across execve, so a child spawned by this (large)
    benchmark process would report the parent's RSS at spawn time as its own peak, hiding what the child used.
    """
    with contextlib.suppress(OSError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def rss_child(n: int) -> None:
    """Subprocess body: score n lazily generated items with the engine, keep only the uncertainties."""
    torch.set_num_threads(THREADS)
    sampler = MCDropout(make_model(), iterations=T)
    baseline = peak_rss_mb()  # interpreter + torch + baal + model, before any item is scored
    kept = np.empty(n, dtype=np.float64)
    for chunk in score_chunks(sampler, lazy_batches(n), heuristic="bald"):
        kept[chunk.start : chunk.start + len(chunk)] = chunk.uncertainty  # what a caller would write to the DB
    print(json.dumps({"n": n, "peak_rss_mb": peak_rss_mb(), "baseline_rss_mb": baseline, "mode": sampler.mode}))


def measure_rss(n: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--rss-child", str(n)], check=True, capture_output=True, text=True, cwd=ROOT
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def plain_pass_rate(model: torch.nn.Module, data: torch.Tensor) -> float:
    started = time.perf_counter()
    with torch.inference_mode():
        for lo in range(0, len(data), BATCH):
            model(data[lo : lo + BATCH])
    return len(data) / (time.perf_counter() - started)


def engine_rate(model: torch.nn.Module, data: torch.Tensor) -> tuple[float, np.ndarray, np.ndarray, str]:
    sampler = MCDropout(model, iterations=T)
    batches = [Batch(data[lo : lo + BATCH]) for lo in range(0, len(data), BATCH)]
    scores, samples = [], []
    started = time.perf_counter()
    for chunk in score_chunks(sampler, batches, heuristic="bald", keep_samples=True):
        scores.append(chunk.uncertainty)
        assert chunk.samples is not None
        samples.append(chunk.samples)
    rate = len(data) / (time.perf_counter() - started)
    return rate, np.concatenate(scores), np.concatenate(samples), str(sampler.mode)


def baal_rate(model: torch.nn.Module, data: torch.Tensor) -> float:
    from baal.bayesian.dropout import patch_module
    from baal.modelwrapper import ModelWrapper, TrainingArgs
    from torch.utils.data import TensorDataset

    wrapper = ModelWrapper(patch_module(model, inplace=False), TrainingArgs())
    dataset = TensorDataset(data)
    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # baal's tqdm bar must not end up after the RESULT line
        preds = wrapper.predict_on_dataset(dataset, iterations=T)
    elapsed = time.perf_counter() - started
    assert preds.shape == (len(data), 10, T), preds.shape
    return len(data) / elapsed


def text_rate(n: int) -> float:
    torch.manual_seed(0)
    head = TextHead(num_classes=10, in_dim=384, hidden=256).eval()
    emb = torch.nn.functional.normalize(torch.randn(n, 384, generator=torch.Generator().manual_seed(1)), dim=1)
    sampler = MCDropout(head, iterations=T)
    batches = [Batch(emb[lo : lo + 1024]) for lo in range(0, n, 1024)]
    started = time.perf_counter()
    for _ in score_chunks(sampler, batches, heuristic="bald"):
        pass
    return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="N = 2048")
    parser.add_argument("--n", type=int, default=None, help="items scored (default 4096, --quick 2048)")
    parser.add_argument("--baal-items", type=int, default=None, help="subset timed for baal (default 128 / 256)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating repetitions of (a) and (c); best kept")
    parser.add_argument("--rss-child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child is not None:
        rss_child(args.rss_child)
        return

    warnings.filterwarnings("ignore")
    torch.set_num_threads(THREADS)
    n = args.n or (2048 if args.quick else 4096)
    baal_items = args.baal_items or (128 if args.quick else 256)
    model = make_model()
    data = torch.cat([chunk_data(lo, min(lo + BATCH, n)) for lo in range(0, n, BATCH)])

    with torch.inference_mode():
        model(data[:BATCH])  # warm-up: first-call allocations are not what we measure
    plain_rates, engine_rates = [], []
    bald, samples, mode = np.empty(0), np.empty(0), ""
    for _ in range(args.repeats):
        plain_rates.append(plain_pass_rate(model, data))
        rate, bald, samples, mode = engine_rate(model, data)
        engine_rates.append(rate)
        print(f"plain {plain_rates[-1]:.1f} items/s, engine {rate:.1f} items/s ({mode})", file=sys.stderr)
    a_rate, c_rate = max(plain_rates), max(engine_rates)

    b_rate = baal_rate(model, data[:baal_items])
    print(f"baal predict_on_dataset {b_rate:.1f} items/s over {baal_items} items", file=sys.stderr)

    from baal.active.heuristics import BALD

    bald_baal = BALD().get_uncertainties(samples.astype(np.float64))
    bald_diff = float(np.max(np.abs(bald - bald_baal)))

    child_n, child_10n = measure_rss(n), measure_rss(10 * n)
    rss_n, rss_10n = float(child_n["peak_rss_mb"]), float(child_10n["peak_rss_mb"])
    print(f"peak RSS {rss_n:.0f} MiB for {n} items, {rss_10n:.0f} MiB for {10 * n}", file=sys.stderr)

    t_rate = max(text_rate(20480) for _ in range(2))

    result: dict[str, Any] = {
        "ratio_to_single_pass": round(c_rate / a_rate, 4),
        "speedup_vs_baal": round(c_rate / b_rate, 2),
        "mem_ratio_10x": round(rss_10n / rss_n, 4),
        "bald_max_abs_diff": bald_diff,
        "single_pass_items_per_s": round(a_rate, 1),
        "engine_items_per_s": round(c_rate, 1),
        "baal_items_per_s": round(b_rate, 2),
        "baal_items_timed": baal_items,
        "rss_n_mib": round(rss_n, 1),
        "rss_10n_mib": round(rss_10n, 1),
        "rss_before_scoring_mib": round(float(child_n["baseline_rss_mb"]), 1),
        "text_items_per_s": round(t_rate, 1),
        "engine_mode": mode,
        "n": n,
        "iterations": T,
        "threads": THREADS,
        "batch_size": BATCH,
        "plain_rates": [round(r, 1) for r in plain_rates],
        "engine_rates": [round(r, 1) for r in engine_rates],
        "torch": torch.__version__,
    }
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
