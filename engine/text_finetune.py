"""Fine-tuning a Hugging Face text encoder with a classification head, scored with MC dropout (issue 19).

The network is the encoder (embeddings + L transformer layers), mean pooling over the real tokens, dropout and a
linear classifier, trained end to end (the encoder at a lower learning rate than the new classifier). Like the text
seed, MC dropout samples the dropout modules that baal's ``patch_module`` switches to always-on.

``mc_layers = N`` confines the sampling to the top N layers and the head, and splits the network along the
``FeaturesHeadModel`` contract (``forward(x) == head(features(x))``):

- ``features``: embeddings + the first L - N layers, their dropout active in training only (``TrainOnlyDropout``,
  which baal does not patch), so it is deterministic at scoring and runs once per item;
- ``head``: the top N layers + pooling + dropout + classifier, run T times on the replicated hidden states by
  ``engine.scoring``'s fast path.

N may end in a half (0.5, 1.5, ...): the layer below the top whole ones is split between its two residual blocks.
Its self-attention (a third of a layer's work at 128 tokens, and the part whose cost grows with length squared)
runs once per item in ``features``; only its feed-forward block, with the hidden-state dropout after it, is
sampled in ``head``. With six layers, N = 1 caps the speedup over whole-network MC near 4.8x at T = 20
(6T layers against 5 + T); N = 0.5 lifts that cap to about 7x.

The attention mask must follow the hidden states through that split and its T-fold replication, so ``features``
returns one tensor: the hidden states with the mask appended as a last channel ``[n, length, H + 1]``. The model's
input is one tensor too, ``[n, 2, max_length]`` int64 (token ids, attention mask), made by ``tokenize``; it carries
its tokenizer, so a model reloaded from MLflow tokenizes exactly as it was trained. Without ``mc_layers`` every
dropout (embeddings included) is sampled: MC dropout through the whole network, the plain path's T full passes.

Only the hidden-state dropout modules are sampled: Hugging Face's attention applies its dropout probability
functionally and only in training mode, so attention dropout stays off at scoring whatever is patched.

Supported encoders are the BERT family layout (``.embeddings`` and ``.encoder.layer``: BERT, MiniLM, RoBERTa,
ELECTRA, ...); ``encoder_problem`` says why another folder cannot be fine-tuned.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import nn

from engine.architectures import FeaturesHeadModel
from engine.text import load_pretrained, mean_pool

# Training recipe (CPU: minutes for a few hundred labels). 128 tokens covers most labeling texts (a Debian
# description averages ~60); a 256-token sequence costs about twice as much per step.
MAX_LENGTH = 128
EPOCHS = 3
# With 30 labels an epoch is two steps: the new classifier needs more than six steps to leave its random start.
MIN_STEPS = 40
BATCH_SIZE = 16
HEAD_LR = 2e-3  # the new classifier: from scratch, a head's learning rate
ENCODER_LR = 5e-5  # the pretrained layers: small steps (the usual 2e-5 to 5e-5 for BERT fine-tuning)
SCORE_BATCH = 16  # items per MC batch: 16 x T=20 replicated sequences bound the attention memory


class EncoderError(ValueError):
    """A Hugging Face folder that cannot serve as a fine-tunable encoder, said in plain words."""


class TrainOnlyDropout(nn.Module):
    """Dropout in training, the identity at scoring. Not an ``nn.Dropout`` on purpose: baal's ``patch_module``
    leaves it alone, so layers below ``mc_layers`` stay deterministic when the model is MC-sampled. Keeps ``p``
    (Hugging Face attention reads ``self.dropout.p``)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.p, self.training)


def _set_dropouts(module: nn.Module, *, train_only: bool) -> None:
    """Swap every dropout below ``module`` to ``TrainOnlyDropout`` (``train_only``) or back to ``nn.Dropout``."""
    for name, child in module.named_children():
        if train_only and isinstance(child, nn.Dropout):
            setattr(module, name, TrainOnlyDropout(child.p))
        elif not train_only and isinstance(child, TrainOnlyDropout):
            setattr(module, name, nn.Dropout(child.p))
        else:
            _set_dropouts(child, train_only=train_only)


def encoder_parts(encoder: Any) -> tuple[nn.Module, nn.ModuleList]:
    """(embeddings, transformer layers) of a BERT-family encoder, or EncoderError."""
    embeddings = getattr(encoder, "embeddings", None)
    layers = getattr(getattr(encoder, "encoder", None), "layer", None)
    if not isinstance(embeddings, nn.Module) or not isinstance(layers, nn.ModuleList) or len(layers) == 0:
        kind = type(encoder).__name__
        raise EncoderError(f"is a {kind}: fine-tuning needs a BERT-family encoder (embeddings + encoder.layer)")
    return embeddings, layers


def _layer_mask(hf_config: Any, hidden: torch.Tensor, mask: torch.Tensor) -> Any:
    from transformers.masking_utils import create_bidirectional_mask

    # The 2-D padding mask in the layers' format (additive, boolean or None for sdpa with no padding).
    return create_bidirectional_mask(config=hf_config, inputs_embeds=hidden, attention_mask=mask.long())


def _run_layers(
    layers: nn.ModuleList,
    hf_config: Any,
    hidden: torch.Tensor,
    mask: torch.Tensor,
    *,
    then_attention: nn.Module | None = None,
) -> torch.Tensor:
    """``layers`` in order, then (``then_attention``) the self-attention block of the split layer above them."""
    if len(layers) == 0 and then_attention is None:
        return hidden
    attention = _layer_mask(hf_config, hidden, mask)
    for layer in layers:
        out = layer(hidden, attention)
        hidden = out[0] if isinstance(out, tuple) else out
    if then_attention is not None:
        hidden = then_attention(hidden, attention)[0]
    return hidden


def _feed_forward(layer: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """A BERT-family layer's second residual block (intermediate, output: dense, dropout, residual LayerNorm) on
    the hidden states its self-attention returned."""
    intermediate, output = cast(nn.Module, layer.intermediate), cast(nn.Module, layer.output)
    return cast(torch.Tensor, output(intermediate(hidden), hidden))


class TokenFeatures(nn.Module):
    """Embeddings + the lower layers: ``[n, 2, length]`` token ids and mask in, ``[n, length', H + 1]`` out
    (hidden states, then the mask), trimmed to the batch's longest real sequence (padding is wasted attention)."""

    embeddings: nn.Module
    layers: nn.ModuleList
    split_attention: nn.Module | None

    def __init__(
        self, embeddings: nn.Module, layers: Sequence[nn.Module], hf_config: Any, split: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.embeddings = embeddings
        self.layers = nn.ModuleList(layers)
        self.hf_config = hf_config
        # The split layer's self-attention (the same module as in the head's ``split``: one set of weights).
        self.split_attention = None if split is None else cast(nn.Module, split.attention)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.long()  # inputs may arrive as floats (a stacked prediction batch): ids are exact below 2**24
        ids, mask = x[:, 0], x[:, 1]
        length = max(1, int(mask.sum(dim=1).max())) if mask.numel() else 1
        ids, mask = ids[:, :length], mask[:, :length]
        hidden = self.embeddings(input_ids=ids)
        hidden = _run_layers(self.layers, self.hf_config, hidden, mask, then_attention=self.split_attention)
        return torch.cat([hidden, mask.unsqueeze(-1).to(hidden.dtype)], dim=-1)


class TokenHead(nn.Module):
    """The top layers + mean pooling + dropout + classifier, on ``TokenFeatures``' output (its T-fold replica)."""

    layers: nn.ModuleList
    classifier: nn.Linear
    split: nn.Module | None

    def __init__(
        self,
        layers: Sequence[nn.Module],
        hf_config: Any,
        num_classes: int,
        dropout: float,
        split: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.split = split  # the layer whose feed-forward block alone is sampled (a half in mc_layers)
        self.layers = nn.ModuleList(layers)
        self.hf_config = hf_config
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(int(hf_config.hidden_size), num_classes)  # last Linear: the embeddings' input

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        hidden, mask = z[..., :-1], z[..., -1]
        if self.split is not None:
            hidden = _feed_forward(self.split, hidden)
        hidden = _run_layers(self.layers, self.hf_config, hidden, mask)
        return self.classifier(self.dropout(mean_pool(hidden, mask)))


class TextFinetuneModel(FeaturesHeadModel):
    """A fine-tunable encoder with a classification head; see the module docstring."""

    features: TokenFeatures
    head: TokenHead
    config: dict[str, Any]
    score_batch_size = SCORE_BATCH  # read by the product's scoring (campaigns.services.inference.model_score)

    def __init__(
        self,
        encoder: Any,
        tokenizer: Any,
        num_classes: int,
        *,
        mc_layers: float | None = None,
        dropout: float | None = None,
        max_length: int = MAX_LENGTH,
        encoder_lr: float = ENCODER_LR,
        source: str = "",
    ) -> None:
        super().__init__()
        embeddings, layers = encoder_parts(encoder)
        hf_config = encoder.config
        depth = len(layers)
        if mc_layers is not None and (not 0.5 <= mc_layers <= depth or mc_layers * 2 != int(mc_layers * 2)):
            raise EncoderError(f"mc_layers must be from 0.5 to {depth} in steps of 0.5, the encoder's layers")
        top = depth if mc_layers is None else int(mc_layers)  # whole layers sampled
        below = depth - top
        split = layers[below - 1] if mc_layers is not None and mc_layers != int(mc_layers) else None
        p = float(getattr(hf_config, "hidden_dropout_prob", 0.1)) if dropout is None else float(dropout)
        lower = list(layers[: below - 1 if split is not None else below])
        self.features = TokenFeatures(embeddings, lower, hf_config, split)
        self.head = TokenHead(list(layers[below:]), hf_config, num_classes, p, split)
        if mc_layers is not None:
            _set_dropouts(self.features, train_only=True)
        self.tokenizer = tokenizer
        positions = int(getattr(hf_config, "max_position_embeddings", max_length))
        self.max_length = min(max_length, positions)
        self.encoder_lr = encoder_lr
        self.config = {
            "num_classes": num_classes,
            "mc_layers": mc_layers,
            "layers": depth,
            "dropout": p,
            "max_length": self.max_length,
            "encoder_lr": encoder_lr,
            "source": source,
        }

    def tokenize(self, texts: Sequence[str]) -> NDArray[np.int64]:
        """The model's input for ``texts``: ``[n, 2, max_length]`` int64 (token ids, attention mask)."""
        return tokenize(self.tokenizer, texts, self.max_length)

    def optimizer_groups(self, lr: float) -> list[dict[str, Any]]:
        """For engine.training: the pretrained layers at ``encoder_lr``, the new classifier at ``lr``."""
        head = set(self.head.classifier.parameters())
        encoder = [p for p in self.parameters() if p.requires_grad and p not in head]
        return [{"params": encoder, "lr": self.encoder_lr}, {"params": [p for p in head if p.requires_grad], "lr": lr}]

    def with_mc_layers(self, mc_layers: float | None) -> TextFinetuneModel:
        """A copy with the same weights whose MC sampling covers the top ``mc_layers`` layers (None: the whole
        network): the benchmark's like-for-like comparison of confined and full MC."""
        parts = copy.deepcopy(self)
        split = [] if parts.head.split is None else [parts.head.split]
        layers = [*parts.features.layers, *split, *parts.head.layers]
        _set_dropouts(parts.features, train_only=False)
        shell = _Shell(parts.features.embeddings, layers, parts.features.hf_config)
        out = TextFinetuneModel(
            shell,
            parts.tokenizer,
            self.head.classifier.out_features,
            mc_layers=mc_layers,
            dropout=float(self.head.dropout.p),
            max_length=self.max_length,
            encoder_lr=self.encoder_lr,
            source=str(self.config["source"]),
        )
        out.head.classifier.load_state_dict(parts.head.classifier.state_dict())
        return out.eval()


class _Shell(nn.Module):
    """The BERT-family attributes ``encoder_parts`` reads, around layers already built."""

    def __init__(self, embeddings: nn.Module, layers: Sequence[nn.Module], hf_config: Any) -> None:
        super().__init__()
        self.embeddings = embeddings
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList(layers)
        self.config = hf_config


def new_finetune_model(
    model_dir: str | Path,
    num_classes: int,
    *,
    mc_layers: float | None = None,
    dropout: float | None = None,
    max_length: int = MAX_LENGTH,
    seed: int | None = None,
    source: str = "",
) -> TextFinetuneModel:
    """The encoder from ``model_dir`` (pretrained weights) with a new classifier drawn from ``seed`` alone."""
    tokenizer, encoder = load_pretrained(model_dir)
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        return TextFinetuneModel(
            encoder,
            tokenizer,
            num_classes,
            mc_layers=mc_layers,
            dropout=dropout,
            max_length=max_length,
            source=source or str(model_dir),
        )


def tokenize(tokenizer: Any, texts: Sequence[str], max_length: int) -> NDArray[np.int64]:
    """``[n, 2, max_length]`` int64: token ids and attention mask, padded to ``max_length`` (one array shape for
    every batch and chunk; the model trims each batch to its longest real sequence)."""
    texts = [t if isinstance(t, str) else "" for t in texts]
    if not texts:
        return np.zeros((0, 2, max_length), dtype=np.int64)
    enc = tokenizer(texts, padding="max_length", truncation=True, max_length=max_length, return_tensors="np")
    return np.stack([enc["input_ids"], enc["attention_mask"]], axis=1).astype(np.int64)


@lru_cache(maxsize=2)
def _folder_tokenizer(model_dir: str, version: str) -> tuple[Any, int]:
    del version  # part of the cache key only
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(model_dir, local_files_only=True)
    positions = int(getattr(config, "max_position_embeddings", MAX_LENGTH))
    return AutoTokenizer.from_pretrained(model_dir, local_files_only=True), min(MAX_LENGTH, positions)


def folder_tokens(model_dir: str | Path, texts: Sequence[str], *, version: str = "") -> NDArray[np.int64]:
    """The input a model fine-tuned from ``model_dir`` takes, when that model is not at hand (the same tokenizer
    and length ``new_finetune_model`` gives it). ``version`` names the folder's content: the tokenizer is kept per
    path and version, so a folder replaced in place under the same path is read afresh."""
    tokenizer, length = _folder_tokenizer(str(model_dir), version)
    return tokenize(tokenizer, texts, length)


def encoder_width(model_dir: str | Path) -> int:
    """The encoder's hidden size (its embeddings' width), from its config.json alone."""
    from transformers import AutoConfig

    return int(AutoConfig.from_pretrained(str(model_dir), local_files_only=True).hidden_size)
