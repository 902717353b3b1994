"""The evaluation protocol of learning-efficiency comparisons (``bench/learning.py`` and the product's strategy
comparison, ``campaigns.services.comparison``) as plain numpy, so each rule is tested on tiny data.

Rules (issue 14, section 5): every seed resamples the split; the initial labeled set depends on the seed only, never
on the arm; validation labels are spent labels (the x axis starts at ``initial + validation``); every arm's curve is
interpolated onto one common label grid by the same function; intervals come from a paired bootstrap over seeds
(one resample of seed indices applied to every arm at once, so arm differences keep their pairing).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.floating[Any]]
IntArray = NDArray[np.int64]
NEVER = math.inf  # "labels needed" of a curve that never reaches the target


@dataclass(frozen=True)
class Split:
    """Positions into the dataset: the unlabeled pool, the validation labels (spent) and the test set (never
    used for any choice, only for the curve)."""

    pool: IntArray
    valid: IntArray
    test: IntArray


def seed_for(*parts: int) -> int:
    """One 32-bit seed from a tuple (seed, cycle, ...): independent streams per part, reproducible across runs."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def make_split(n: int, *, n_test: int, n_valid: int, seed: int) -> Split:
    """An i.i.d. random split: test and validation are plain random samples of the same set as the pool, so they
    share its class distribution (imbalance included). Not stratified: a team labeling an evaluation sample cannot
    stratify by labels it does not have yet."""
    if n_test + n_valid >= n:
        raise ValueError(f"n_test + n_valid ({n_test} + {n_valid}) leaves no pool out of {n}")
    order = np.random.default_rng(seed_for(seed, 1)).permutation(n).astype(np.int64)
    return Split(pool=order[n_test + n_valid :], valid=order[n_test : n_test + n_valid], test=order[:n_test])


def initial_labeled(pool_size: int, k: int, *, seed: int) -> IntArray:
    """The first labeled set, as positions into the pool. A function of (pool size, k, seed) only: every arm of a
    seed starts from exactly these items, so the cold start is not part of what an arm is credited for."""
    rng = np.random.default_rng(seed_for(seed, 2))
    return np.sort(rng.choice(pool_size, size=min(k, pool_size), replace=False)).astype(np.int64)


def labels_spent(train_labels: int, n_valid: int) -> int:
    """The x axis: every label a person entered, training and validation alike (validation labels cost the same)."""
    return int(train_labels) + int(n_valid)


def on_grid(x: FloatArray, y: FloatArray, grid: FloatArray) -> FloatArray:
    """One curve interpolated linearly onto ``grid`` (no extrapolation beyond its ends: the grid must lie inside
    the curve's span). The only interpolation used for every arm."""
    x, y, grid = np.asarray(x, float), np.asarray(y, float), np.asarray(grid, float)
    if grid.min() < x.min() - 1e-9 or grid.max() > x.max() + 1e-9:
        raise ValueError("grid outside the curve's label range: that would be extrapolation")
    return np.asarray(np.interp(grid, x, y), dtype=np.float64)


def normalised_auc(grid: FloatArray, y: FloatArray) -> float:
    """Trapezoid area under the curve divided by the label span: the curve's mean macro-F1 over the budget."""
    g, v = np.asarray(grid, float), np.asarray(y, float)
    span = float(g[-1] - g[0])
    if span <= 0:
        raise ValueError("the grid needs at least two distinct label counts")
    return float(np.sum((v[1:] + v[:-1]) * np.diff(g)) / 2.0 / span)


def labels_to_reach(grid: FloatArray, y: FloatArray, target: float) -> float:
    """Labels at which the curve first reaches ``target``, linear between grid points; ``NEVER`` if it does not.
    A curve already at the target on its first point needs that point's labels (nothing earlier was measured)."""
    g, v = np.asarray(grid, float), np.asarray(y, float)
    hit = np.flatnonzero(v >= target - 1e-12)
    if hit.size == 0:
        return NEVER
    i = int(hit[0])
    if i == 0:
        return float(g[0])
    frac = (target - v[i - 1]) / (v[i] - v[i - 1])
    return float(g[i - 1] + frac * (g[i] - g[i - 1]))


@dataclass(frozen=True)
class Estimate:
    """A point estimate and its 95% percentile-bootstrap interval (``NEVER`` allowed at either end)."""

    value: float
    low: float
    high: float

    def as_json(self, digits: int = 4) -> list[float | None]:
        return [None if math.isinf(v) or math.isnan(v) else round(v, digits) for v in (self.value, self.low, self.high)]


def _quantile(values: FloatArray, q: float) -> float:
    """Order-statistic quantile that tolerates ``inf`` (np.percentile interpolates inf - inf into NaN)."""
    s = np.sort(values)
    return float(s[min(len(s) - 1, max(0, math.floor(q * (len(s) - 1) + 0.5)))])


CurveStat = Callable[[Mapping[str, FloatArray]], float]


def paired_bootstrap(
    curves: Mapping[str, FloatArray], stat: CurveStat, *, n_boot: int = 2000, seed: int = 0
) -> Estimate:
    """``stat`` on the mean curves of all seeds, and its 95% interval from resampling the seeds with replacement.

    ``curves[arm]`` is [seeds, grid]; one draw of seed indices is applied to every arm (paired), so a statistic
    comparing two arms sees the two arms of the same seeds, as they were run.
    """
    arms = list(curves)
    n_seeds = len(curves[arms[0]])
    if any(len(curves[a]) != n_seeds for a in arms):
        raise ValueError("every arm needs the same seeds")
    point = stat({a: np.asarray(curves[a], float).mean(axis=0) for a in arms})
    rng = np.random.default_rng(seed)
    draws = np.empty(n_boot)
    for b in range(n_boot):
        idx = rng.integers(0, n_seeds, size=n_seeds)
        draws[b] = stat({a: np.asarray(curves[a], float)[idx].mean(axis=0) for a in arms})
    return Estimate(point, _quantile(draws, 0.025), _quantile(draws, 0.975))


def auc_stat(grid: FloatArray, arm: str) -> CurveStat:
    return lambda mean: normalised_auc(grid, mean[arm])


def auc_gain_stat(grid: FloatArray, arm: str, baseline: str) -> CurveStat:
    """AUC(arm) - AUC(baseline): the area is linear in the curve, so this equals the mean of per-seed gains."""
    return lambda mean: normalised_auc(grid, mean[arm]) - normalised_auc(grid, mean[baseline])


def labels_needed_stat(grid: FloatArray, arm: str, baseline: str) -> CurveStat:
    """Labels ``arm`` needs to reach ``baseline``'s final macro-F1 (the mean curve's last point)."""
    return lambda mean: labels_to_reach(grid, mean[arm], float(mean[baseline][-1]))


def labels_fraction_stat(grid: FloatArray, arm: str, baseline: str) -> CurveStat:
    """(labels ``arm`` needs) / (labels ``baseline`` needs) to reach ``baseline``'s final macro-F1: both found by
    the same ``labels_to_reach`` on the same grid, so neither side is favoured by how it is read off the curve."""

    def stat(mean: Mapping[str, FloatArray]) -> float:
        target = float(mean[baseline][-1])
        return labels_to_reach(grid, mean[arm], target) / labels_to_reach(grid, mean[baseline], target)

    return stat


def mean_gain_over_datasets(
    runs: Mapping[str, Mapping[str, Any]],
    arm: str,
    baseline: str,
    *,
    final: bool = False,
    n_boot: int = 2000,
    seed: int = 0,
) -> list[float]:
    """[point, 2.5%, 97.5%] of the mean over datasets of AUC(arm) - AUC(baseline) (with `final`, of the last point's
    difference). Each run holds its "grid" and "curves" {arm: [seeds, points]}; each bootstrap draw resamples every
    dataset's seeds, the same draw for both arms (paired within a dataset), and averages the datasets."""
    rng = np.random.default_rng(seed)

    def gain(run: Mapping[str, Any], idx: IntArray) -> float:
        a, b = run["curves"][arm][idx].mean(axis=0), run["curves"][baseline][idx].mean(axis=0)
        return float(a[-1] - b[-1]) if final else normalised_auc(run["grid"], a) - normalised_auc(run["grid"], b)

    def seeds(run: Mapping[str, Any]) -> int:
        return len(run["curves"][baseline])

    point = float(np.mean([gain(r, np.arange(seeds(r))) for r in runs.values()]))
    draws = [np.mean([gain(r, rng.integers(0, seeds(r), seeds(r))) for r in runs.values()]) for _ in range(n_boot)]
    low, high = np.percentile(draws, [2.5, 97.5])
    return [round(point, 4), round(float(low), 4), round(float(high), 4)]
