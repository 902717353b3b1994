"""Per-cycle item embeddings (the engine's deterministic penultimate features) and mean class probabilities, kept as
one .npz per scoring chunk in storage, plus one for the labeled items the cycle's model was trained on.

A million 128-float rows don't belong in Postgres rows; diversity-aware selection only reads the chunks that
hold its candidates. The labeled items' embeddings seed k-center (Coreset): a candidate next to a labeled item is
already covered.
"""

from __future__ import annotations

import io
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from numpy.typing import NDArray

# Coreset needs every labeled item's distance, but a seeded sample of this many covers the space nearly as well
# when a team imported a large labeled set, and keeps the file and the distance pass bounded.
LABELED_MAX = 20_000


def _name(cycle_id: int, chunk: int) -> str:
    return f"cycles/{cycle_id}/embeddings/{chunk:06d}.npz"


def _labeled_name(cycle_id: int) -> str:
    return f"cycles/{cycle_id}/embeddings/labeled.npz"


def _write(name: str, item_ids: NDArray[np.int64], features: NDArray[np.floating], probs: object) -> None:
    """Write (or overwrite, on a redelivered chunk) one file, as float16 to halve the size."""
    buf = io.BytesIO()
    arrays = {"ids": np.asarray(item_ids, dtype=np.int64), "x": np.asarray(features, dtype=np.float16)}
    if probs is not None:
        arrays["p"] = np.asarray(probs, dtype=np.float16)
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    if default_storage.exists(name):
        default_storage.delete(name)
    default_storage.save(name, ContentFile(buf.getvalue()))


def embeddings_save(
    *,
    cycle_id: int,
    chunk: int,
    item_ids: NDArray[np.int64],
    features: NDArray[np.floating],
    probs: NDArray[np.floating] | None = None,
) -> None:
    """Store a scored chunk's embeddings and (for BADGE's gradient embeddings) its mean class probabilities."""
    _write(_name(cycle_id, chunk), item_ids, features, probs)


def embeddings_save_labeled(*, cycle_id: int, item_ids: NDArray[np.int64], features: NDArray[np.floating]) -> None:
    _write(_labeled_name(cycle_id), item_ids, features, None)


def embeddings_labeled_stored(*, cycle_id: int) -> bool:
    return bool(default_storage.exists(_labeled_name(cycle_id)))


def embeddings_labeled(*, cycle_id: int) -> NDArray[np.float32] | None:
    """The labeled items' embeddings stored when the cycle was scored, or None (an external model, an older cycle)."""
    name = _labeled_name(cycle_id)
    if not default_storage.exists(name):
        return None
    with default_storage.open(name, "rb") as fh:
        return np.asarray(np.load(io.BytesIO(fh.read()))["x"], dtype=np.float32)


def _rows_for(cycle_id: int, item_ids: list[int], chunk_of: dict[int, int], key: str) -> NDArray[np.float32] | None:
    wanted: dict[int, list[int]] = defaultdict(list)
    for item_id in item_ids:
        wanted[chunk_of[item_id]].append(item_id)

    def read(chunk: int) -> tuple[NDArray[np.int64], NDArray[np.floating]] | None:
        """The chunk's rows for its wanted items, in their order; None when the file or a row is missing."""
        name = _name(cycle_id, chunk)
        if not default_storage.exists(name):
            return None
        with default_storage.open(name, "rb") as fh:
            data = np.load(io.BytesIO(fh.read()))
        if key not in data:
            return None
        ids, want = data["ids"], np.asarray(wanted[chunk], dtype=np.int64)
        if len(ids) == 0:
            return None
        order = np.argsort(ids, kind="stable")
        at = np.searchsorted(ids, want, sorter=order).clip(max=len(ids) - 1)
        rows = order[at]
        if not np.array_equal(ids[rows], want):
            return None
        return want, data[key][rows]

    # The candidates of a large pool sit in hundreds of chunk files: reading them is waiting on storage (a disk,
    # S3), so a few threads overlap it (1.15 s for 489 files at a million items on one thread).
    with ThreadPoolExecutor(max_workers=8) as pool:
        parts = list(pool.map(read, list(wanted)))
    if any(p is None for p in parts):
        return None
    found: dict[int, NDArray[np.float32]] = {}
    for want, values in (p for p in parts if p is not None):
        found.update(zip(want.tolist(), values.astype(np.float32), strict=True))
    return np.stack([found[i] for i in item_ids]) if item_ids else np.empty((0, 0), dtype=np.float32)


def embeddings_for(*, cycle_id: int, item_ids: list[int], chunk_of: dict[int, int]) -> NDArray[np.float32] | None:
    """Embeddings of `item_ids` in that order, or None when the cycle stored none (e.g. an external model)."""
    return _rows_for(cycle_id, item_ids, chunk_of, "x")


def probabilities_for(*, cycle_id: int, item_ids: list[int], chunk_of: dict[int, int]) -> NDArray[np.float32] | None:
    """Mean class probabilities of `item_ids` in that order, or None when the cycle stored none (scored before
    they were kept, or by an external model)."""
    return _rows_for(cycle_id, item_ids, chunk_of, "p")
