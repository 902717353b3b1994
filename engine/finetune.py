"""Fine-tuning a user's pretrained image backbone (``model_config.backbone_mode: "finetune"``).

The supplied network becomes ``features`` (after the configured normalisation) and alweb's dropout head (the
``TextHead`` frozen features get) goes on top; the whole network trains, the backbone at ``lr_scale`` times the
head's rate (parameter groups: pretrained weights move slowly, the fresh head learns at the full rate).

MC dropout: dropout layers inside the supplied network are made to sample, as baal's ``patch_module`` does for the
head's. A plain module (an MLflow pytorch model) is patched by baal directly. TorchScript code is compiled, so baal
cannot swap its layers: ``ScriptTrunk`` carries a stand-in ``nn.Dropout`` that baal's patch_module swaps like any
other, and once swapped the scripted dropout layers sample at inference. The scoring engine then sees a stochastic
trunk and runs the whole network T times; a backbone without dropout stays in the deterministic prefix, run once per
batch, with only the head run T times (``engine.scoring``).

Saved and reloaded without the user's architecture code: ``ScriptTrunk`` pickles its network as TorchScript bytes
(``torch.jit.save``), so the trained model logs to MLflow with the pickle format like alweb's own models and a
worker reloads it exactly. A ``torch.export`` program cannot be fine-tuned: it is fixed in the mode it was exported
in (it refuses train()/eval(), and its module does not pickle).
"""

from __future__ import annotations

import copy
import io
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from engine.architectures import FeaturesHeadModel, TextHead
from engine.backbone import BackboneError

# The backbone's learning rate as a share of the head's: the usual fine-tuning ratio (pretrained features are
# nudged, not relearned from few labels).
LR_SCALE = 0.1
# TorchScript keeps a compiled submodule's Python class name: these are torch's dropout layers.
_SCRIPTED_DROPOUTS = frozenset(
    {"Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout"}
)


class Normalise(nn.Module):
    """(x - mean) / std per channel, part of the model so a reloaded version needs only pixels in [0, 1]."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        # Buffers: they follow the model to its device and are saved with it.
        self.register_buffer("mean", torch.tensor([float(v) for v in mean]).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor([float(v) for v in std]).view(1, -1, 1, 1))

    mean: torch.Tensor
    std: torch.Tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class ScriptTrunk(nn.Module):
    """A TorchScript network as a trainable, picklable module whose dropout baal's patch_module can switch on."""

    def __init__(self, scripted: torch.jit.ScriptModule) -> None:
        super().__init__()
        self.net = scripted
        self.dropouts = [
            name for name, m in scripted.named_modules() if getattr(m, "original_name", "") in _SCRIPTED_DROPOUTS
        ]
        # The stand-in baal swaps (p = 0: never applied to data itself). Absent without scripted dropout, so such a
        # trunk is deterministic and stays in the prefix the scoring engine runs once.
        self.mc_switch: nn.Module | None = nn.Dropout(0.0) if self.dropouts else None
        self.mc_paused = False  # the scoring engine's pass with every dropout off (its penultimate embeddings)

    @property
    def mc_sampling(self) -> bool:
        """Whether the scripted dropout layers sample at inference: after baal swapped the stand-in."""
        return self.mc_switch is not None and type(self.mc_switch) is not nn.Dropout and not self.mc_paused

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sample = not self.training and self.mc_sampling
        if sample:
            self._dropout_mode(True)
        try:
            return self.net(x)
        finally:
            if sample:
                self._dropout_mode(False)

    def _dropout_mode(self, on: bool) -> None:
        modules = dict(self.net.named_modules())  # ScriptModules have no get_submodule
        for name in self.dropouts:
            modules[name].train(on)

    def __getstate__(self) -> dict[str, Any]:
        # A ScriptModule does not pickle: its compiled code and weights travel as TorchScript bytes instead.
        state = self.__dict__.copy()
        modules = dict(state["_modules"])
        buffer = io.BytesIO()
        torch.jit.save(modules.pop("net"), buffer)
        state["_modules"], state["_script"] = modules, buffer.getvalue()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        script = state.pop("_script")
        super().__setstate__(state)
        self._modules["net"] = torch.jit.load(io.BytesIO(script), map_location="cpu")


class FineTuneModel(FeaturesHeadModel):
    """``head(features(x))``: features = normalisation + the supplied network, head = alweb's dropout head."""

    def __init__(
        self,
        trunk: nn.Module,
        num_classes: int,
        *,
        feature_dim: int,
        mean: Sequence[float],
        std: Sequence[float],
        dropout: float = 0.3,
        lr_scale: float = LR_SCALE,
    ) -> None:
        super().__init__()
        self.config = {"num_classes": num_classes, "feature_dim": feature_dim, "dropout": dropout, "lr_scale": lr_scale}
        self.features = nn.Sequential(Normalise(mean, std), trunk)
        self.head = TextHead(num_classes, in_dim=feature_dim, dropout=dropout)
        self.lr_scale = lr_scale

    def optimizer_groups(self, lr: float) -> list[dict[str, Any]]:
        """AdamW parameter groups: the backbone at ``lr_scale * lr``, the head at ``lr``."""
        backbone = [p for p in self.features.parameters() if p.requires_grad]
        head = [p for p in self.head.parameters() if p.requires_grad]
        return [{"params": backbone, "lr": lr * self.lr_scale}, {"params": head, "lr": lr}]


def trainable_trunk(network: nn.Module) -> nn.Module:
    """A private, trainable copy of a loaded backbone (the loaded one is shared by the worker's cache)."""
    if isinstance(network, torch.jit.ScriptModule):
        # Copied through its own format: copy.deepcopy of a ScriptModule gives weights that are not autograd
        # leaves (torch 2.13), which would never receive a gradient.
        buffer = io.BytesIO()
        torch.jit.save(network, buffer)
        return ScriptTrunk(torch.jit.load(io.BytesIO(buffer.getvalue()), map_location="cpu"))
    if isinstance(network, torch.fx.GraphModule):
        raise BackboneError(
            "is a torch.export program, which is fixed in the mode it was exported in and cannot be fine-tuned: "
            "save it with torch.jit.save (TorchScript) or use backbone_mode frozen"
        )
    return copy.deepcopy(network)


def finetune_check(network: nn.Module, *, channels: int, size: int) -> None:
    """Why the backbone cannot be fine-tuned (raised as BackboneError): it must train (a backward pass on a batch of
    the configured input reaches its weights) and survive the save/reload a model version goes through."""
    trunk = trainable_trunk(network)
    params = [p for p in trunk.parameters() if p.requires_grad]
    if not params:
        raise BackboneError("has no trainable weights to fine-tune")
    trunk.train()
    try:
        out = trunk(torch.rand(2, channels, size, size, generator=torch.Generator().manual_seed(0)))
        out.float().square().mean().backward()
    except Exception as exc:  # TorchScript and autograd raise RuntimeError alike
        raise BackboneError(
            f"does not train (backward pass failed): {str(exc).strip().splitlines()[-1][:200]}"
        ) from exc
    if not any(p.grad is not None and bool(torch.isfinite(p.grad).all()) for p in params):
        raise BackboneError("gives no finite gradient to any of its weights: it cannot be fine-tuned")
