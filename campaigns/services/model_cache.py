"""Model versions kept warm in each worker process: loaded from MLflow once, then reused by every chunk this process
scores (loading takes seconds; a chunk often less).

The cache is per process (each prefork child, each `--pool solo` worker holds its own) and bounded: at most
ALWEB_MODEL_CACHE_SIZE models, the least recently used evicted first, since a worker serving several projects
would otherwise keep every model it ever scored with. A key is the version's row *and* where its weights live
(tracking URI, model URI): a version re-pointed at other weights, or a process switched to another MLflow store,
misses instead of scoring with stale weights. The models are only read (MC dropout scores a patched copy), so one
loaded model serves every thread.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from cachetools import LRUCache
from django.conf import settings

from campaigns.services.inference import model_load
from models_registry.models import ModelVersion

log = logging.getLogger(__name__)

CacheKey = tuple[str, int, str]

_lock = threading.Lock()
_cache: LRUCache[CacheKey, Any] | None = None


def _key(model_version: ModelVersion) -> CacheKey:
    return (str(settings.MLFLOW_TRACKING_URI), int(model_version.pk), str(model_version.model_uri))


def _store() -> LRUCache[CacheKey, Any]:
    global _cache
    size = max(1, int(settings.ALWEB_MODEL_CACHE_SIZE))
    if _cache is None or _cache.maxsize != size:
        _cache = LRUCache(maxsize=size)  # a changed size (tests, a reconfigured worker) starts afresh
    return _cache


def model_cached(*, model_version: ModelVersion) -> Any:
    """The model behind `model_version`, loaded on the first call in this process and reused after."""
    key = _key(model_version)
    with _lock:  # one load per key even when threads ask at once; loads of other keys wait (rare: one per version)
        store = _store()
        model = store.get(key)
        if model is None:
            log.info("loading model version %s (%s) into this worker", model_version.pk, model_version.model_uri)
            model = model_load(model_version=model_version)
            store[key] = model
        return model


def model_cache_drop(*, model_version_id: int) -> int:
    """Forget every cached model of a version (its weights replaced or deleted); returns how many were dropped."""
    with _lock:
        store = _store()
        keys = [k for k in store if k[1] == model_version_id]
        for k in keys:
            del store[k]
        return len(keys)


def model_cache_clear() -> None:
    with _lock:
        _store().clear()


def model_cache_keys() -> list[CacheKey]:
    """The keys cached in this process now."""
    with _lock:
        return list(_store().keys())
