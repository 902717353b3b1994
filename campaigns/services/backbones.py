"""A user's pretrained image backbone (`model_config.backbone`): checked when the config is saved, loaded by the
workers, and in frozen mode its features computed once per item and cached in ItemEmbedding, like the text
encoder's (in finetune mode the network trains each cycle on pixels: engine.finetune).

`backbone` is either a file under backbones/ in media storage (TorchScript or torch.export; a plain state_dict
keeps its older meaning: weights for alweb's own CNN, see training._load_backbone) or an MLflow pytorch model URI of
a fixed version. The cache key is the backbone's identity: the file's sha256 (or the immutable URI) plus the
preprocessing, so a changed file or mean/std never reuses stale features.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation, ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from numpy.typing import NDArray
from torch import nn

from campaigns.models import ItemEmbedding
from campaigns.selectors.items import item_vectors
from engine.backbone import (
    BackboneError,
    Format,
    backbone_format,
    default_normalisation,
    feature_dim,
    load_network,
    network_features,
    weight_bytes,
)
from engine.finetune import FineTuneModel, finetune_check, trainable_trunk
from models_registry.registry import ModelRegistry

# "frozen": features computed once per item and cached, only alweb's head trains. "finetune": the whole network
# trains each cycle on pixels (engine.finetune), the backbone at a lower rate than the head.
MODES = ("frozen", "finetune")
# Backbones live in their own folder of media storage: never an item's image (another project's media) or a path
# outside storage. Uploads go to a subfolder per project.
BACKBONE_FOLDER = "backbones/"
_SUFFIX = {"torchscript": "pt", "export": "pt2", "state_dict": "pt"}
# The image side when model_config has no image_size (features.image_config's default for classification).
DEFAULT_IMAGE_SIZE = 32
MLFLOW_SCHEMES = ("runs:/", "models:/")
# Loaded networks kept per worker process: one per project's backbone is typical, a few cover a worker shared by
# several projects; each can be hundreds of MB.
_LOADED_MAX = 2
_loaded: OrderedDict[str, nn.Module] = OrderedDict()
_DIGESTS_MAX = 64
_digests: OrderedDict[tuple[str, int, float], str] = OrderedDict()
_lock = threading.Lock()


@dataclass(frozen=True)
class Backbone:
    """What features depend on: the network (by content) and its preprocessing."""

    source: str
    digest: str  # sha256 of the file, or of the immutable MLflow URI
    mode: str
    size: int
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def identity(self) -> str:
        """The ItemEmbedding.encoder key (64 chars at most): network and preprocessing, hashed together."""
        key = f"{self.digest}|{self.size}|{self.channels}|{self.mean}|{self.std}"
        return "bb:" + hashlib.sha256(key.encode()).hexdigest()[:40]

    def params(self) -> dict[str, Any]:
        """Recorded with each model version (MLflow params), so the head is reloaded with exactly its inputs."""
        return {
            "backbone": self.source,
            "backbone_sha256": self.digest,
            "backbone_mode": self.mode,
            "input_size": self.size,
            "input_channels": self.channels,
            "normalise_mean": list(self.mean),
            "normalise_std": list(self.std),
        }


def is_mlflow_uri(value: str) -> bool:
    return value.startswith(MLFLOW_SCHEMES)


def mlflow_uri_problem(value: str) -> str | None:
    """Only URIs that always name the same model: the features cached under it must stay true."""
    parts = value.split("/")
    logged_model = len(parts) == 2 and parts[1].startswith("m-") and "@" not in parts[1]  # MLflow 3's model ids
    if value.startswith("models:/") and not logged_model and (len(parts) != 3 or not parts[2].isdigit()):
        return "must name a fixed model version (models:/<name>/<version>), not an alias or latest"
    if value.startswith("runs:/") and (len(parts) < 3 or not parts[1]):
        return "must be a run's model URI: runs:/<run_id>/<path>"
    return None


def _check_size(name: str) -> None:
    """Refused before anything reads past ALWEB_MAX_MODEL_BYTES (a state_dict for alweb's CNN too)."""
    limit = int(settings.ALWEB_MAX_MODEL_BYTES)
    try:
        size = default_storage.size(name)
    except (OSError, SuspiciousFileOperation, ValueError) as exc:
        raise BackboneError("is not in media storage") from exc
    if size > limit:
        raise BackboneError(f"is {size} bytes, over ALWEB_MAX_MODEL_BYTES ({limit} bytes)")


def _read_file(name: str) -> bytes:
    _check_size(name)
    with default_storage.open(name, "rb") as fh:
        return bytes(fh.read())


def _file_format(name: str) -> Format | None:
    try:
        with default_storage.open(name, "rb") as fh:
            return backbone_format(fh)  # reads the zip's directory, not the whole file
    except (OSError, SuspiciousFileOperation, ValueError):
        return None


def file_is_network(name: str) -> bool:
    """A TorchScript or torch.export file (False: a state_dict for alweb's CNN, or no file at all)."""
    return is_mlflow_uri(name) or _file_format(name) in ("torchscript", "export")


def _stamp(name: str) -> tuple[str, int, float] | None:
    """The file's name, size and modification time, or None where the storage cannot tell the time."""
    try:
        return name, int(default_storage.size(name)), default_storage.get_modified_time(name).timestamp()
    except (NotImplementedError, OSError, SuspiciousFileOperation, ValueError):
        return None


def _load(source: str) -> tuple[nn.Module, str]:
    """(network, digest). The network is loaded once per digest and process. A file's digest is remembered by its
    name, size and modification time: hashing a large file for every scoring chunk and every Label Studio
    prediction would cost more than the features; any change to the file changes the stamp and is hashed again."""
    data: bytes | None = None
    if is_mlflow_uri(source):
        if problem := mlflow_uri_problem(source):
            raise BackboneError(problem)
        digest = hashlib.sha256(source.encode()).hexdigest()
    else:
        stamp = _stamp(source)
        with _lock:
            known = _digests.get(stamp) if stamp is not None else None
        if known is not None and known in _loaded:
            digest = known
        else:
            data = _read_file(source)
            digest = hashlib.sha256(data).hexdigest()
            if stamp is not None:
                with _lock:
                    _digests[stamp] = digest
                    while len(_digests) > _DIGESTS_MAX:
                        _digests.popitem(last=False)
    with _lock:
        if digest in _loaded:
            _loaded.move_to_end(digest)
            return _loaded[digest], digest
    if data is None and not is_mlflow_uri(source):
        data = _read_file(source)  # evicted between the two looks: read it again
    module = _load_mlflow(source) if data is None else load_network(data)
    with _lock:
        _loaded[digest] = module
        while len(_loaded) > _LOADED_MAX:
            _loaded.popitem(last=False)
    return module, digest


def _load_mlflow(uri: str) -> nn.Module:
    registry = ModelRegistry(settings.MLFLOW_TRACKING_URI, artifact_root=settings.MLFLOW_ARTIFACT_ROOT)
    try:
        module = registry.load_torch(uri)
    except Exception as exc:  # MLflow raises many kinds (missing run, another flavor, unpickling errors)
        raise BackboneError(f"does not load as an MLflow pytorch model: {str(exc)[:200]}") from exc
    if not isinstance(module, nn.Module):
        raise BackboneError(f"is a {type(module).__name__}, not a torch module")
    limit = int(settings.ALWEB_MAX_MODEL_BYTES)
    if (size := weight_bytes(module)) > limit:
        raise BackboneError(f"has {size} bytes of weights, over ALWEB_MAX_MODEL_BYTES ({limit} bytes)")
    module.eval()
    return module


def backbone_for(config: Mapping[str, Any], *, default_size: int) -> Backbone | None:
    """The configured network backbone with its preprocessing, or None (no backbone, or a state_dict for alweb's
    own CNN). Loads the network (once per process) to know its digest."""
    source = config.get("backbone")
    if not isinstance(source, str) or not file_is_network(source):
        return None
    _, digest = _load(source)
    channels = int(config.get("channels", 3))
    mean, std = default_normalisation(channels)
    return Backbone(
        source=source,
        digest=digest,
        mode=str(config.get("backbone_mode", "frozen")),
        size=int(config.get("image_size", default_size)),
        channels=channels,
        mean=tuple(float(v) for v in config.get("mean", mean)),
        std=tuple(float(v) for v in config.get("std", std)),
    )


def backbone_check(config: Mapping[str, Any], *, default_size: int) -> str | None:
    """Why the configured backbone cannot serve (load, a dummy batch of the configured input, finite 2-D float
    features), or None. Run when the config is saved: a bad file is refused then, not after a failed training."""
    source = config.get("backbone")
    try:
        if isinstance(source, str) and not is_mlflow_uri(source):
            _check_size(source)
            if _file_format(source) is None:
                raise BackboneError(
                    "is not a TorchScript file (torch.jit.save), a torch.export program (torch.export.save) or a "
                    "state_dict (torch.save) for alweb's CNN"
                )
        backbone = backbone_for(config, default_size=default_size)
        if backbone is not None:
            backbone_dim(backbone)
            if backbone.mode == "finetune":
                finetune_check(backbone_network(backbone), channels=backbone.channels, size=backbone.size)
        elif config.get("backbone_mode") == "finetune":
            raise BackboneError(
                "is a state_dict for alweb's own CNN (which always trains end to end): backbone_mode finetune needs a "
                "TorchScript file or an MLflow pytorch model"
            )
    except BackboneError as exc:
        return f"backbone {str(source)[:80]!r} {exc}"
    return None


def backbone_dim(backbone: Backbone) -> int:
    module, _ = _load(backbone.source)
    return feature_dim(module, channels=backbone.channels, size=backbone.size, mean=backbone.mean, std=backbone.std)


def backbone_network(backbone: Backbone) -> nn.Module:
    """The loaded network, shared by this process's cache: copy it before training it (engine.finetune does)."""
    module, _ = _load(backbone.source)
    return module


def backbone_finetune_model(backbone: Backbone, *, num_classes: int, dropout: float) -> FineTuneModel:
    """A private trainable copy of the backbone under alweb's dropout head, its normalisation built in (the
    model's input is pixels in [0, 1])."""
    return FineTuneModel(
        trainable_trunk(backbone_network(backbone)),
        num_classes,
        feature_dim=backbone_dim(backbone),
        mean=backbone.mean,
        std=backbone.std,
        dropout=dropout,
    )


def backbone_compute(backbone: Backbone, images: NDArray[np.float32]) -> NDArray[np.float32]:
    """Features of images not stored as items (a prediction request): computed, never cached."""
    module, _ = _load(backbone.source)
    return network_features(module, images, mean=backbone.mean, std=backbone.std)


def backbone_features(
    backbone: Backbone, item_ids: Sequence[int], load_images: Callable[[list[int]], NDArray[np.float32]]
) -> NDArray[np.float32]:
    """Features of the items in order; only the missing ones run through the network (`load_images(ids)` gives
    their [n, C, H, W] pixels in [0, 1]), and are stored for every later cycle."""
    key = backbone.identity
    cached = item_vectors(item_ids=item_ids, key=key)
    missing = [i for i in item_ids if i not in cached]
    if missing:
        vectors = backbone_compute(backbone, load_images(missing))
        ItemEmbedding.objects.bulk_create(
            [ItemEmbedding(item_id=i, encoder=key, vector=v.tobytes()) for i, v in zip(missing, vectors, strict=True)],
            batch_size=2000,
            ignore_conflicts=True,  # a concurrent or redelivered task may have stored them first
        )
        cached.update(zip(missing, vectors, strict=True))
    if not item_ids:
        return np.empty((0, backbone_dim(backbone)), dtype=np.float32)
    return np.stack([cached[i] for i in item_ids])


def backbone_store(*, project_id: int, upload: IO[bytes], size: int) -> str:
    """Store an uploaded backbone file under backbones/project-<id>/ and return the name `model_config.backbone`
    takes. Named by content (sha256), so uploading the same file twice stores it once. Whether it serves the
    project's input is checked when the config names it (with its image_size and channels)."""
    limit = int(settings.ALWEB_MAX_MODEL_BYTES)
    if size > limit:
        raise ValidationError({"file": f"is {size} bytes, over ALWEB_MAX_MODEL_BYTES ({limit} bytes)"})
    data = upload.read(limit + 1)
    if len(data) > limit:  # the declared size was wrong
        raise ValidationError({"file": f"is over ALWEB_MAX_MODEL_BYTES ({limit} bytes)"})
    kind = backbone_format(data)
    if kind is None:
        raise ValidationError(
            {
                "file": "is not a TorchScript file (torch.jit.save), a torch.export program (torch.export.save) or a "
                "state_dict (torch.save)"
            }
        )
    name = f"{BACKBONE_FOLDER}project-{project_id}/{hashlib.sha256(data).hexdigest()[:32]}.{_SUFFIX[kind]}"
    if not default_storage.exists(name):
        saved = default_storage.save(name, ContentFile(data))
        if saved != name:  # a concurrent upload of the same file stored it first under this name
            default_storage.delete(saved)
    return name
