"""Selection strategies as plain numpy: given candidates (ids, uncertainties, predictions, embeddings), pick a batch.

Every strategy is deterministic for a seed, returns candidate positions in rank order (rank 0 = first to label),
and never imports Django, so it is tested and benchmarked on its own.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Positions = NDArray[np.int64]


def power_sample(uncertainty: NDArray[np.floating], budget: int, *, seed: int, power: float = 1.0) -> Positions:
    """Stochastic acquisition (PowerBALD-style): sample without replacement with probability ∝ uncertainty^power.

    Gumbel-top-k: adding Gumbel noise to log-weights and taking the top k samples exactly that distribution.
    """
    rng = np.random.default_rng(seed)
    u = np.clip(np.nan_to_num(np.asarray(uncertainty, dtype=np.float64), nan=0.0), 1e-12, None)
    keys = power * np.log(u) + rng.gumbel(size=u.shape)
    k = min(budget, len(u))
    top = np.argpartition(-keys, k - 1)[:k] if k else np.empty(0, dtype=np.int64)
    return top[np.argsort(-keys[top], kind="stable")].astype(np.int64)


def k_center_greedy(embeddings: NDArray[np.floating], budget: int, *, start: int = 0) -> Positions:
    """Core-set selection: repeatedly take the candidate farthest from everything taken so far.

    Starts at `start` (the most uncertain candidate when candidates come sorted by uncertainty), so the batch
    covers the candidates' embedding space instead of piling up near-duplicates.
    """
    x = np.asarray(embeddings, dtype=np.float32)
    n = len(x)
    k = min(budget, n)
    if k == 0:
        return np.empty(0, dtype=np.int64)
    chosen = [start]
    dist = np.linalg.norm(x - x[start], axis=1)
    dist[start] = -1.0
    for _ in range(k - 1):
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(x - x[nxt], axis=1))
        dist[chosen] = -1.0
    return np.asarray(chosen, dtype=np.int64)


def class_quota(
    uncertainty: NDArray[np.floating], predicted: list[str], budget: int, quotas: dict[str, float]
) -> Positions:
    """Top by uncertainty within each predicted class up to its share of the budget, then the best of the rest.

    For imbalanced pools ("90% of images are cars"), so rare predicted classes still reach annotators.
    """
    u = np.asarray(uncertainty, dtype=np.float64)
    order = np.argsort(-u, kind="stable")
    total = sum(quotas.values()) or 1.0
    caps = {label: int(np.floor(budget * share / total)) for label, share in quotas.items()}
    taken: list[int] = []
    used = {label: 0 for label in caps}
    for pos in order:
        label = predicted[pos]
        if label in caps and used[label] < caps[label]:
            used[label] += 1
            taken.append(int(pos))
    taken_set = set(taken)
    rest = [int(p) for p in order if int(p) not in taken_set]
    picked = taken + rest[: max(0, budget - len(taken))]
    picked = picked[:budget]
    return np.asarray(sorted(picked, key=lambda p: (-u[p], p)), dtype=np.int64)


def random_sample(n: int, budget: int, *, seed: int) -> Positions:
    rng = np.random.default_rng(seed)
    return rng.permutation(n)[: min(budget, n)].astype(np.int64)


def kmeans_diverse(embeddings: NDArray[np.floating], budget: int, *, seed: int) -> Positions:
    """Cold start without a model: cluster the pool into `budget` groups and take the item nearest each centre."""
    from sklearn.cluster import MiniBatchKMeans

    x = np.asarray(embeddings, dtype=np.float32)
    k = min(budget, len(x))
    if k == 0:
        return np.empty(0, dtype=np.int64)
    # scikit-learn takes seeds below 2**32; a cycle's seed may be any 63-bit integer, so derive one from it.
    state = int(np.random.SeedSequence(seed).generate_state(1)[0])
    km = MiniBatchKMeans(n_clusters=k, random_state=state, n_init=3, batch_size=max(1024, 3 * k)).fit(x)
    d = np.linalg.norm(x[:, None, :] - km.cluster_centers_[None, :, :], axis=2) if len(x) * k <= 5e7 else None
    if d is None:  # large pools: nearest member of each cluster by label
        picks = [int(np.flatnonzero(km.labels_ == c)[0]) for c in range(k) if (km.labels_ == c).any()]
    else:
        picks = []
        for c in range(k):
            for pos in np.argsort(d[:, c]):
                if int(pos) not in picks:
                    picks.append(int(pos))
                    break
    return np.asarray(picks, dtype=np.int64)
