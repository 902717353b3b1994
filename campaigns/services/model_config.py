"""A project's `model_config`: the keys training reads, each with the range it may take and why.

Checked when a project is created or changed (API, dashboard, admin: 400 naming `model_config` and the key) and
again when a cycle trains, for rows stored before these bounds existed. A key nobody reads is refused too: stored
silently, a typo ("epoch") would look like a setting that had been applied.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import SuspiciousFileOperation
from django.core.files.storage import default_storage

from campaigns.services.backbones import (
    BACKBONE_FOLDER,
    DEFAULT_IMAGE_SIZE,
    MODES,
    backbone_check,
    is_mlflow_uri,
    mlflow_uri_problem,
)
from campaigns.services.encoders import encoder_check, finetune_problem
from engine.augment import MAX_CROP, MAX_JITTER, PRESETS
from models_registry.policies import CHAMPION_POLICIES

# engine.training.Monitor's values (not imported: that module imports torch, and validating a form should not).
MONITORS = ("val_loss", "val_accuracy", "val_macro_f1")
# The frozen text encoder (all-MiniLM-L6-v2) gives 384 numbers per item: a text head of any other width cannot
# take its embeddings.
ENCODER_DIMS = (384,)
BACKBONE_MAX_CHARS = 255  # a storage name, as in a FileField


@dataclass(frozen=True)
class Bound:
    low: float
    high: float
    integer: bool
    why: str

    def problem(self, name: str, value: Any) -> str | None:
        kind = "an integer" if self.integer else "a number"
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if (
            not is_number
            or (self.integer and not isinstance(value, int))
            or not math.isfinite(value)
            or not self.low <= value <= self.high
        ):
            return f"{name} must be {kind} from {self.low:g} to {self.high:g} ({self.why})"
        return None


BOUNDS = {
    # Every image is resized to image_size x image_size x channels float32s in memory, for training and for every
    # scored pool item: 512 is 3 MiB an image, and 100,000 would be 120 GB. Below 8 there is nothing left to pool.
    "image_size": Bound(8, 512, True, "images are resized to this many pixels a side and held in memory"),
    "channels": Bound(1, 3, True, "1 for grey, 3 for RGB"),
    # Time: each epoch is a pass over every label; a cycle's task is stopped after CELERY_TASK_SOFT_TIME_LIMIT.
    "epochs": Bound(1, 1000, True, "passes over the labels; training must end within the task's time limit"),
    "min_steps": Bound(0, 100_000, True, "optimizer steps training is stretched to; bounded by the time limit"),
    # 1 would drop every unit of the head; MC dropout samples this rate, so past 0.9 predictions are mostly noise.
    "dropout": Bound(0, 0.9, False, "the share of the head's units dropped; 1 would drop them all"),
}
# Training augmentation (engine.augment) of image networks trained end to end.
AUGMENT_BOUNDS = {
    "crop": Bound(0, MAX_CROP, False, "the largest shift, as a share of the side; past it the object leaves view"),
    "jitter": Bound(0, MAX_JITTER, False, "brightness and contrast scaled by up to 1 +/- this"),
}
KEYS = frozenset(
    {
        *BOUNDS,
        "augment",
        "embedding_dim",
        "monitor",
        "backbone",
        "backbone_mode",
        "mean",
        "std",
        "freeze_backbone",
        "champion_policy",
        "encoder",
        "finetune",
        "mc_layers",
    }
)


def _backbone_problem(value: Any, *, check_storage: bool) -> str | None:
    """A storage name under backbones/, resolved by the default storage only: no absolute path, no `..`, no
    backslash (a Windows separator on some storages), no NUL; and, when asked, a file that exists."""
    rule = (
        f"backbone must be the name of a file in media storage under {BACKBONE_FOLDER} (a TorchScript file, a "
        "torch.export program, or a state_dict for alweb's CNN) or an MLflow model URI (runs:/ or models:/)"
    )
    if not isinstance(value, str) or not value:
        return rule
    if is_mlflow_uri(value):
        problem = mlflow_uri_problem(value)
        return f"backbone {value[:80]!r} {problem}" if problem else None
    parts = value.split("/")
    if (
        len(value) > BACKBONE_MAX_CHARS
        or not value.startswith(BACKBONE_FOLDER)
        or "\\" in value
        or "\x00" in value
        or re.match(r"^[A-Za-z]:", value)
        or any(part in ("", ".", "..") for part in parts)
    ):
        return f"{rule}: {value[:80]!r} is not such a name"
    if check_storage:
        try:
            exists = default_storage.exists(value)
        except (SuspiciousFileOperation, ValueError):
            exists = False
        if not exists:
            return f"backbone {value[:80]!r} is not in media storage"
    return None


def _preprocessing_problem(config: Mapping[str, Any]) -> str | None:
    """backbone_mode, and mean/std: one number per channel, std above 0 (it divides)."""
    mode = config.get("backbone_mode", "frozen")
    if mode not in MODES:
        return f"backbone_mode must be one of {', '.join(MODES)}"
    if mode == "finetune" and not config.get("backbone"):
        return "backbone_mode finetune needs a backbone (a TorchScript file or an MLflow pytorch model) to fine-tune"
    channels = config.get("channels", 3)
    for name in ("mean", "std"):
        if name not in config:
            continue
        value = config[name]
        numbers = (
            isinstance(value, list)
            and len(value) == channels
            and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value)
        )
        if not numbers or (name == "std" and any(v <= 0 for v in value)):
            kind = "positive numbers" if name == "std" else "numbers"
            return f"{name} must be a list of {channels} {kind}, one per channel (pixels in [0, 1] are normalised)"
    return None


def _augment_problem(value: Any) -> str | None:
    """augment: a preset name, true/false, or an object of flip (boolean), crop and jitter (bounded numbers)."""
    presets = ", ".join(sorted(PRESETS))
    if isinstance(value, bool) or (isinstance(value, str) and value in PRESETS):
        return None
    if not isinstance(value, Mapping):
        return f"augment must be a preset ({presets}), true/false, or an object with flip, crop, jitter"
    unknown = sorted(set(value) - {"flip", "crop", "jitter"})
    if unknown:
        return f"augment has unknown key {str(unknown[0])[:40]!r}: the keys are crop, flip, jitter"
    if not isinstance(value.get("flip", False), bool):
        return (
            "augment.flip must be true or false (mirror images left-right: only where a mirrored item keeps its label)"
        )
    for name, bound in AUGMENT_BOUNDS.items():
        if name in value and (problem := bound.problem(f"augment.{name}", value[name])):
            return problem
    return None


def model_config_problem(config: Any, *, check_storage: bool = True) -> str | None:
    """Why `config` is not a valid `model_config` (naming the key), or None. `check_storage`: the backbone file
    must exist (left to the training itself, which says so, when it reads a stored config)."""
    if not isinstance(config, Mapping):
        return "must be an object"
    unknown = sorted(set(config) - KEYS)
    if unknown:
        names = ", ".join(repr(str(key)[:40]) for key in unknown[:5])
        return f"unknown key {names}: the keys are {', '.join(sorted(KEYS))}"
    for name, bound in BOUNDS.items():
        if name in config and (problem := bound.problem(name, config[name])):
            return problem
    if "channels" in config and config["channels"] not in (1, 3):
        return "channels must be 1 (grey) or 3 (RGB)"
    if "embedding_dim" in config and config["embedding_dim"] not in ENCODER_DIMS:
        return f"embedding_dim must be {' or '.join(map(str, ENCODER_DIMS))}, the text encoder's output size"
    if "monitor" in config and config["monitor"] not in MONITORS:
        return f"monitor must be one of {', '.join(MONITORS)}"
    if "backbone" in config and (problem := _backbone_problem(config["backbone"], check_storage=check_storage)):
        return problem
    if (problem := _preprocessing_problem(config)) is not None:
        return problem
    if "backbone" in config and check_storage and (problem := backbone_check(config, default_size=DEFAULT_IMAGE_SIZE)):
        return problem
    if "augment" in config and (problem := _augment_problem(config["augment"])):
        return problem
    if (problem := finetune_problem(config)) is not None:
        return problem
    if check_storage and ("encoder" in config or "finetune" in config) and (problem := encoder_check(config)):
        return problem
    if not isinstance(config.get("freeze_backbone", False), bool):
        return "freeze_backbone must be true or false"
    if config.get("champion_policy", "if_better") not in CHAMPION_POLICIES:
        # Refused here: MLflow would only refuse it after a whole training run, with the version registered.
        return f"champion_policy must be one of {', '.join(CHAMPION_POLICIES)}"
    return None
