"""Per-cycle item embeddings (the engine's penultimate features), kept as one .npz per scoring chunk in storage.

A million 128-float rows don't belong in Postgres rows; diversity-aware selection only reads the chunks that
hold its candidates.
"""

from __future__ import annotations

import io
from collections import defaultdict

import numpy as np
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from numpy.typing import NDArray


def _name(cycle_id: int, chunk: int) -> str:
    return f"cycles/{cycle_id}/embeddings/{chunk:06d}.npz"


def embeddings_save(*, cycle_id: int, chunk: int, item_ids: NDArray[np.int64], features: NDArray[np.floating]) -> None:
    """Write (or overwrite, on a redelivered chunk) the chunk's embeddings, as float16 to halve the size."""
    buf = io.BytesIO()
    np.savez(buf, ids=np.asarray(item_ids, dtype=np.int64), x=np.asarray(features, dtype=np.float16))
    name = _name(cycle_id, chunk)
    if default_storage.exists(name):
        default_storage.delete(name)
    default_storage.save(name, ContentFile(buf.getvalue()))


def embeddings_for(*, cycle_id: int, item_ids: list[int], chunk_of: dict[int, int]) -> NDArray[np.float32] | None:
    """Embeddings of `item_ids` in that order, or None when the cycle stored none (e.g. an external model)."""
    wanted: dict[int, list[int]] = defaultdict(list)
    for item_id in item_ids:
        wanted[chunk_of[item_id]].append(item_id)
    found: dict[int, NDArray[np.float32]] = {}
    for chunk, ids in wanted.items():
        name = _name(cycle_id, chunk)
        if not default_storage.exists(name):
            return None
        with default_storage.open(name, "rb") as fh:
            data = np.load(io.BytesIO(fh.read()))
        index = {int(i): n for n, i in enumerate(data["ids"])}
        for item_id in ids:
            if item_id not in index:
                return None
            found[item_id] = data["x"][index[item_id]].astype(np.float32)
    return np.stack([found[i] for i in item_ids]) if item_ids else np.empty((0, 0), dtype=np.float32)
