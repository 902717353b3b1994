"""A text project's encoder (`model_config.encoder`): a Hugging Face model folder in media storage, or the shipped
all-MiniLM-L6-v2 by default; checked when the config is saved, found on disk by the workers, and named by content
so the embeddings cached under it (ItemEmbedding.encoder) are never those of another model.

`finetune: true` trains the encoder itself with a classification head (engine.text_finetune): the model's input
is then token ids from the model's own tokenizer, not cached embeddings; `mc_layers` confines MC dropout to the top
layers. Cold start and diversity before a model still read the frozen encoder's embeddings (`raw_features`).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation
from django.core.files.storage import default_storage

# Encoders live in their own folder of media storage, like backbones: never an item's file or a path outside it.
ENCODER_FOLDER = "encoders/"
ENCODER_MAX_CHARS = 255
# The shipped MiniLM keeps the key its embeddings were always cached under.
DEFAULT_IDENTITY = "minilm-l6-v2"
MC_LAYERS_MAX = 48  # deeper than any encoder a CPU worker fine-tunes; the encoder's own depth is checked on save
WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")
TOKENIZER = ("tokenizer.json", "vocab.txt", "spiece.model", "sentencepiece.bpe.model", "vocab.json")
_DIGESTS_MAX = 32
_digests: OrderedDict[tuple[Any, ...], str] = OrderedDict()
_lock = threading.Lock()


class EncoderConfigError(ValueError):
    """The configured encoder cannot serve; the message completes "encoder '<name>' ..."."""


@dataclass(frozen=True)
class TextEncoder:
    source: str  # the storage name, "" for the shipped MiniLM
    path: Path  # a local folder transformers reads
    identity: str  # ItemEmbedding.encoder key (64 chars at most)

    def params(self) -> dict[str, Any]:
        """Recorded with each model version, so a reload knows which encoder it was trained on."""
        return {"encoder": self.source or "all-MiniLM-L6-v2 (shipped)", "encoder_identity": self.identity}


def encoder_name_problem(value: Any) -> str | None:
    """A storage folder name under encoders/ (no absolute path, `..`, backslash or NUL), or None."""
    rule = f"encoder must be the name of a Hugging Face model folder in media storage under {ENCODER_FOLDER}"
    if not isinstance(value, str) or not value:
        return rule
    parts = value.rstrip("/").split("/")
    if (
        len(value) > ENCODER_MAX_CHARS
        or not value.startswith(ENCODER_FOLDER)
        or len(parts) < 2
        or "\\" in value
        or "\x00" in value
        or re.match(r"^[A-Za-z]:", value)
        or any(part in ("", ".", "..") for part in parts)
    ):
        return f"{rule}: {value[:80]!r} is not such a name"
    return None


def _files(name: str) -> list[str]:
    """The folder's files (top level: what transformers reads), sorted; EncoderConfigError if it is no folder."""
    try:
        _, files = default_storage.listdir(name)
    except (OSError, SuspiciousFileOperation, ValueError, NotImplementedError) as exc:
        raise EncoderConfigError("is not a folder in media storage") from exc
    if not files:
        raise EncoderConfigError("is not a folder in media storage (or is empty)")
    return sorted(files)


def _stamp(name: str, files: list[str]) -> tuple[Any, ...] | None:
    try:
        return tuple(
            (f, int(default_storage.size(f"{name}/{f}")), default_storage.get_modified_time(f"{name}/{f}").timestamp())
            for f in files
        )
    except (NotImplementedError, OSError, SuspiciousFileOperation, ValueError):
        return None


def _digest(name: str, files: list[str]) -> str:
    """sha256 over the files' names and contents, remembered by their names, sizes and modification times: hashing
    a 100 MB folder per scoring chunk would cost more than the scoring."""
    stamp = _stamp(name, files)
    with _lock:
        if stamp is not None and stamp in _digests:
            return _digests[stamp]
    total = hashlib.sha256()
    for f in files:
        total.update(f.encode() + b"\x00")
        with default_storage.open(f"{name}/{f}", "rb") as fh:
            while block := fh.read(1 << 20):
                total.update(block)
    digest = total.hexdigest()
    if stamp is not None:
        with _lock:
            _digests[stamp] = digest
            while len(_digests) > _DIGESTS_MAX:
                _digests.popitem(last=False)
    return digest


def _local(name: str, files: list[str], digest: str) -> Path:
    """A local folder holding the encoder: the storage's own (filesystem) or a copy by digest (S3)."""
    try:
        return Path(default_storage.path(name))
    except NotImplementedError:
        pass
    target = Path(tempfile.gettempdir()) / "alweb-encoders" / digest[:32]
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix="partial-", dir=target.parent))
        for f in files:
            with default_storage.open(f"{name}/{f}", "rb") as src, (partial / f).open("wb") as dst:
                shutil.copyfileobj(src, dst)
        try:
            partial.rename(target)
        except OSError:  # another process copied it first
            shutil.rmtree(partial, ignore_errors=True)
    return target


@lru_cache(maxsize=1)
def _shipped() -> TextEncoder:
    from engine.text import shipped_model_dir

    return TextEncoder(source="", path=shipped_model_dir(), identity=DEFAULT_IDENTITY)


def encoder_for(config: Mapping[str, Any]) -> TextEncoder:
    """The project's encoder, found on disk and named by content; EncoderConfigError if it cannot be."""
    source = config.get("encoder")
    if not source:
        return _shipped()
    if problem := encoder_name_problem(source):
        raise EncoderConfigError(problem)
    name = str(source).rstrip("/")
    files = _files(name)
    limit = int(settings.ALWEB_MAX_MODEL_BYTES)
    size = sum(int(default_storage.size(f"{name}/{f}")) for f in files)
    if size > limit:
        raise EncoderConfigError(f"is {size} bytes, over ALWEB_MAX_MODEL_BYTES ({limit} bytes)")
    digest = _digest(name, files)
    return TextEncoder(source=name, path=_local(name, files, digest), identity="hf:" + digest[:40])


def is_finetune(config: Mapping[str, Any]) -> bool:
    return config.get("finetune") is True


def encoder_check(config: Mapping[str, Any]) -> str | None:
    """Why the configured encoder cannot serve (no folder, no tokenizer, no weights, weights or tokenizer that do
    not load, too few layers for mc_layers, not fine-tunable), or None. Run when the config is saved."""
    source = config.get("encoder")
    label = f"encoder {str(source)[:80]!r}" if source else "encoder (the shipped all-MiniLM-L6-v2)"
    try:
        encoder = encoder_for(config)
        if source:
            present = {p.name for p in encoder.path.iterdir()}
            if "config.json" not in present:
                raise EncoderConfigError("has no config.json (not a Hugging Face model folder)")
            if not present & set(TOKENIZER):
                raise EncoderConfigError(f"has no tokenizer (one of {', '.join(TOKENIZER)})")
            if not present & set(WEIGHTS):
                raise EncoderConfigError(f"has no weights (one of {', '.join(WEIGHTS)})")
        _check_loads(encoder.path, finetune=is_finetune(config), mc_layers=config.get("mc_layers"))
    except EncoderConfigError as exc:
        return f"{label} {exc}"
    return None


def _check_loads(path: Path, *, finetune: bool, mc_layers: Any) -> None:
    from engine.text import load_pretrained
    from engine.text_finetune import EncoderError, encoder_parts

    try:
        tokenizer, model = load_pretrained(path)
        tokenizer(["a check"], truncation=True, max_length=8)
    except Exception as exc:  # transformers raises many kinds (OSError, ValueError, safetensors errors)
        raise EncoderConfigError(f"does not load as a Hugging Face tokenizer and model: {str(exc)[:200]}") from exc
    if not finetune:
        return
    try:
        _, layers = encoder_parts(model)
    except EncoderError as exc:
        raise EncoderConfigError(str(exc)) from exc
    if isinstance(mc_layers, int | float) and mc_layers > len(layers):
        raise EncoderConfigError(f"has {len(layers)} layers: mc_layers must be from 0.5 to {len(layers)}")


def finetune_problem(config: Mapping[str, Any]) -> str | None:
    """The keys' types and how they go together (no storage read)."""
    if "finetune" in config and not isinstance(config["finetune"], bool):
        return "finetune must be true or false"
    if "mc_layers" in config:
        value = config["mc_layers"]
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not 0.5 <= value <= MC_LAYERS_MAX
            or value * 2 != int(value * 2)
        ):
            return (
                f"mc_layers must be a number from 0.5 to {MC_LAYERS_MAX} in steps of 0.5 (top transformer layers"
                " MC-sampled; a half samples a layer's feed-forward block and runs its attention once)"
            )
        if not is_finetune(config):
            return "mc_layers needs finetune: true (a frozen encoder's embeddings are computed once, not sampled)"
    if "encoder" in config and (problem := encoder_name_problem(config["encoder"])):
        return problem
    return None


def text_network(config: Mapping[str, Any], num_classes: int) -> Any:
    """A text project's network: the dropout head on the frozen encoder's embeddings, or the encoder itself
    fine-tuned with a classification head (`finetune: true`, MC dropout in the top `mc_layers` layers). Seed the
    caller's RNG first: the new layers' weights are drawn from it."""
    from engine.recipes import new_network
    from engine.text_finetune import EncoderError, encoder_width, new_finetune_model

    encoder = encoder_for(config)
    if is_finetune(config):
        try:
            return new_finetune_model(
                encoder.path,
                num_classes,
                mc_layers=config.get("mc_layers"),
                dropout=config.get("dropout"),
                source=encoder.identity,
            )
        except (EncoderError, OSError) as exc:
            raise EncoderConfigError(f"encoder {encoder.source or 'all-MiniLM-L6-v2'!r} {exc}") from exc
    width = encoder_width(encoder.path) if encoder.source else int(config.get("embedding_dim", 384))
    return new_network("text", num_classes, in_dim=width, dropout=config.get("dropout"))


def text_params(config: Mapping[str, Any]) -> dict[str, Any]:
    """What a text model version was trained from (MLflow params): the encoder by content, and its mode."""
    encoder = encoder_for(config)
    params: dict[str, Any] = {**encoder.params(), "finetune": is_finetune(config)}
    if is_finetune(config):
        params["mc_layers"] = config.get("mc_layers") or "all"
    return params
