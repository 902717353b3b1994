"""What a model version was trained on, recorded so a snapshot export can reproduce it exactly and prove it.

The hash is SHA-256 over the training items sorted by key (code point order, as Python sorts strings), one line
per item: the key, a tab, and the label as canonical JSON (sorted keys, no spaces), each line ending in a newline.
Keys are unique in a project and never change, so the sorted lines are one exact description of the set; it is
logged to MLflow with the run and kept in ModelVersion.params. A snapshot export reads the recorded set in the
same order (`TrainingSetItem.position`) and recomputes it over the rows it writes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from campaigns.models import Item, TrainingSetItem
from models_registry.models import ModelVersion

HASH_PARAM = "training_set_hash"
SIZE_PARAM = "training_set_size"
_BATCH = 5000


def canonical_label(label: Any) -> str:
    return json.dumps(label, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class TrainingSetHasher:
    """The training-set hash, fed one item at a time in key order (a snapshot streams its rows through it)."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self.count = 0
        self._last: str | None = None

    def update(self, key: str, label: Any) -> None:
        # Out of order or repeated keys would give another hash for the same set: refuse rather than mislead.
        if self._last is not None and key <= self._last:
            raise ValueError(f"training set keys must come sorted and unique: {key!r} after {self._last!r}")
        self._last = key
        self._sha.update(f"{key}\t{canonical_label(label)}\n".encode())
        self.count += 1

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


def training_set_order(items: Sequence[Item]) -> list[Item]:
    return sorted(items, key=lambda item: item.key)


def training_set_hash(items: Sequence[Item]) -> str:
    hasher = TrainingSetHasher()
    for item in training_set_order(items):
        hasher.update(item.key, item.label)
    return hasher.hexdigest()


def training_set_record(*, model_version: ModelVersion, items: Sequence[Item]) -> None:
    """Store the items and the labels the model saw, in hash order. Called in the transaction that creates the
    version, so a version never exists without its set (and a redelivered training finds both)."""
    rows = [
        TrainingSetItem(model_version=model_version, position=n, item_id=item.pk, label=item.label)
        for n, item in enumerate(training_set_order(items))
    ]
    TrainingSetItem.objects.bulk_create(rows, batch_size=_BATCH)
