"""Model inputs for items: image tensors read through storage, text embeddings from the frozen encoder (cached).

The engine takes arrays; this is where items become arrays. Text embeddings are computed once per item and
encoder and stored in ItemEmbedding, so each cycle only trains and scores the small head.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
from django.core.files.storage import default_storage
from numpy.typing import NDArray
from PIL import Image

from campaigns.models import Item, ItemEmbedding, Project, TaskType
from campaigns.selectors.items import item_vectors
from campaigns.services.backbones import (
    DEFAULT_IMAGE_SIZE,
    Backbone,
    backbone_compute,
    backbone_features,
    backbone_for,
)
from campaigns.services.encoders import EncoderConfigError, encoder_for, is_finetune
from models_registry.models import ModelVersion

# A detector's heatmap is a quarter of the input a side: at 32 px a small object would be one or two cells.
DEFAULT_DETECTION_IMAGE_SIZE = 64
TEXT_ENCODER = "minilm-l6-v2"


class FeatureError(Exception):
    """An item cannot be turned into model input (e.g. a remote URL image alweb cannot fetch)."""


# The item fields `item_inputs` reads: a scoring chunk loads only these (an item's metadata and ground truth can
# outweigh its text, and a million-item pool reads every row once per cycle).
INPUT_FIELDS = ("id", "project_id", "key", "text", "media")

# The ModelVersion param holding the project's model_config as that version was trained with it.
MODEL_CONFIG_PARAM = "model_config"


def project_as_trained(project: Project, model_version: ModelVersion | None) -> Project:
    """`project` as `model_version` was trained on it, for building that model's inputs: a champion trained before
    the config changed its encoder, fine-tuning, backbone or image size keeps reading the inputs it knows. A version
    without the record (an external model, or one trained before alweb kept it) reads the current config. The
    copy is for reading only: it is never saved."""
    config = (model_version.params or {}).get(MODEL_CONFIG_PARAM) if model_version is not None else None
    if not isinstance(config, dict) or config == (project.model_config or {}):
        return project
    as_trained = copy.copy(project)
    as_trained.model_config = config
    return as_trained


def image_config(project: Project) -> tuple[int, int]:
    cfg = project.model_config or {}
    default = DEFAULT_DETECTION_IMAGE_SIZE if project.task_type == TaskType.OBJECT_DETECTION else DEFAULT_IMAGE_SIZE
    return int(cfg.get("image_size", default)), int(cfg.get("channels", 3))


def image_array(item: Item, *, size: int, channels: int) -> NDArray[np.float32]:
    """[C, size, size] floats in [0, 1]."""
    if not item.media:
        raise FeatureError(f"item {item.key!r} has no stored image (URL items are labeled but not scored)")
    with default_storage.open(str(item.media.name), "rb") as fh:
        return image_bytes_array(fh.read(), size=size, channels=channels)


def image_bytes_array(data: bytes, *, size: int, channels: int) -> NDArray[np.float32]:
    """[C, size, size] floats in [0, 1] from encoded image bytes: a stored item's, or one sent for prediction."""
    with Image.open(io.BytesIO(data)) as img:
        resized = img.convert("L" if channels == 1 else "RGB").resize((size, size), Image.Resampling.BILINEAR)
        arr = np.asarray(resized, dtype=np.float32) / 255.0
    return arr[None, :, :] if channels == 1 else arr.transpose(2, 0, 1).copy()


@lru_cache(maxsize=1)
def text_encoder() -> Any:
    """The frozen sentence encoder, loaded once per process (it is ~90 MB)."""
    from engine.text import default_encoder

    return default_encoder()


def _embedder(model_dir: str | None, identity: str) -> Any:
    """The shipped MiniLM (None), or the frozen encoder of a project's `model_config.encoder` folder (two kept per
    process by engine.text.folder_encoder, by path and content: a folder replaced in place is loaded afresh)."""
    from engine.text import folder_encoder

    return text_encoder() if model_dir is None else folder_encoder(model_dir, identity)


def text_embeddings(
    items: Sequence[tuple[int, str]], *, encoder: str = TEXT_ENCODER, model_dir: str | None = None
) -> NDArray[np.float32]:
    """Embeddings for (item id, text) pairs in order; computes and stores only the missing ones. `encoder` is the
    cache key (the encoder's identity), `model_dir` the folder it is read from (None: the shipped MiniLM)."""
    ids = [i for i, _ in items]
    cached = item_vectors(item_ids=ids, key=encoder)
    missing = [(i, t) for i, t in items if i not in cached]
    if missing:
        vectors = np.asarray(_embedder(model_dir, encoder).encode([t for _, t in missing]), dtype=np.float32)
        ItemEmbedding.objects.bulk_create(
            [
                ItemEmbedding(item_id=i, encoder=encoder, vector=v.tobytes())
                for (i, _), v in zip(missing, vectors, strict=True)
            ],
            batch_size=2000,
            ignore_conflicts=True,  # a concurrent or redelivered task may have stored them first
        )
        cached.update({i: v for (i, _), v in zip(missing, vectors, strict=True)})
    if not ids:
        return np.empty((0, _embedder(model_dir, encoder).dim), dtype=np.float32)
    return np.stack([cached[i] for i in ids])


def _text_encoder_of(project: Project) -> Any:
    try:
        return encoder_for(project.model_config or {})
    except EncoderConfigError as exc:
        raise FeatureError(f"model_config.encoder: {exc}") from exc


def project_text_embeddings(project: Project, items: Sequence[Item]) -> NDArray[np.float32]:
    """The frozen encoder's embeddings of `items` (cached per item under the encoder's identity, so a changed
    encoder never reuses another's)."""
    encoder = _text_encoder_of(project)
    model_dir = str(encoder.path) if encoder.source else None
    return text_embeddings([(i.pk, i.text) for i in items], encoder=encoder.identity, model_dir=model_dir)


def text_tokens(project: Project, texts: Sequence[str], model: Any = None) -> NDArray[np.int64]:
    """A fine-tuned text model's input: tokenized by the model's own tokenizer (it travels with the model), or by
    the project's encoder folder's before there is a model."""
    if model is not None and callable(getattr(model, "tokenize", None)):
        return np.asarray(model.tokenize(list(texts)), dtype=np.int64)
    from engine.text_finetune import folder_tokens

    encoder = _text_encoder_of(project)
    return folder_tokens(encoder.path, list(texts), version=encoder.identity)


def image_backbone(project: Project) -> Backbone | None:
    """The project's own pretrained network (either mode), or None."""
    if project.task_type != TaskType.IMAGE_CLASSIFICATION:
        return None
    return backbone_for(project.model_config or {}, default_size=DEFAULT_IMAGE_SIZE)


def frozen_backbone(project: Project) -> Backbone | None:
    """The project's own pretrained network when its features are the model's input (frozen mode), else None. In
    finetune mode the model's input is pixels: the network is part of the model and trains."""
    backbone = image_backbone(project)
    return backbone if backbone is not None and backbone.mode == "frozen" else None


def _pixels(project: Project, items: Sequence[Item]) -> NDArray[np.float32]:
    size, channels = image_config(project)
    if not items:
        return np.empty((0, channels, size, size), dtype=np.float32)
    return np.stack([image_array(i, size=size, channels=channels) for i in items])


def item_inputs(project: Project, items: Sequence[Item], *, model: Any = None) -> NDArray[Any]:
    """Model inputs for `items` (in order) for the project's model kind: text embeddings, a frozen backbone's
    features (both cached per item), pixels, or token ids for a fine-tuned text encoder (`model`'s tokenizer)."""
    if project.task_type == TaskType.TEXT_CLASSIFICATION:
        if is_finetune(project.model_config or {}):
            return text_tokens(project, [i.text for i in items], model)
        return project_text_embeddings(project, items)
    if (backbone := frozen_backbone(project)) is not None:
        by_id = {i.pk: i for i in items}
        return backbone_features(backbone, [i.pk for i in items], lambda ids: _pixels(project, [by_id[i] for i in ids]))
    return _pixels(project, items)


def payload_inputs(project: Project, payloads: Sequence[str | bytes], *, model: Any = None) -> NDArray[Any]:
    """Model inputs for data that is not an item (a prediction request), in order: texts for a text project
    (embedded now, never stored: nothing to key a cache on; tokenized by `model` when it fine-tunes its encoder),
    encoded image bytes otherwise."""
    if project.task_type == TaskType.TEXT_CLASSIFICATION:
        texts = [str(p) for p in payloads]
        if is_finetune(project.model_config or {}):
            return text_tokens(project, texts, model)
        encoder = _text_encoder_of(project)
        embed = _embedder(str(encoder.path) if encoder.source else None, encoder.identity)
        return np.asarray(embed.encode(texts), dtype=np.float32) if texts else np.empty((0, embed.dim), np.float32)
    size, channels = image_config(project)
    images = [p for p in payloads if isinstance(p, bytes)]
    if len(images) != len(payloads):
        raise FeatureError("an image project's inputs are encoded image bytes")
    pixels: NDArray[np.float32] = (
        np.stack([image_bytes_array(p, size=size, channels=channels) for p in images])
        if images
        else np.empty((0, channels, size, size), dtype=np.float32)
    )
    backbone = frozen_backbone(project)
    return pixels if backbone is None else backbone_compute(backbone, pixels)


def raw_features(project: Project, item_ids: Sequence[int]) -> NDArray[np.float32]:
    """One flat vector per item id (in order) before any model exists: pixels, or text embeddings."""
    by_id = Item.objects.in_bulk(list(item_ids))
    items = [by_id[i] for i in item_ids]
    # A fine-tuned text model's input is token ids: distances between items read the frozen encoder's embeddings.
    x = project_text_embeddings(project, items) if project.task_type == TaskType.TEXT_CLASSIFICATION else None
    x = item_inputs(project, items) if x is None else x
    return x.reshape(len(item_ids), -1)


def label_index(project: Project, value: Any) -> int:
    return list(project.labels).index(value)
