"""Where the engine's tensors live: ``ALWEB_DEVICE`` (``auto`` by default: CUDA when this process sees a GPU, else
the CPU), read once per training or scoring call so a worker's environment decides, not the code.

Mixed precision (``autocast``) is used on CUDA only: on the CPU bfloat16 autocast is slower than float32 for these
small heads and changes results, and the CPU path is the one every test and the benchmarks check bit for bit.
"""

from __future__ import annotations

import os
import re
from contextlib import AbstractContextManager, nullcontext

import torch

ENV = "ALWEB_DEVICE"
CHOICES = "auto, cpu, cuda or cuda:N"
_CUDA = re.compile(r"^cuda(:\d+)?$")


class DeviceConfigError(ValueError):
    """``ALWEB_DEVICE`` names no device this process can use: a configuration error, said in plain words."""


def resolve_device(value: str | torch.device | None = None) -> torch.device:
    """The device for ``value`` (default: the ``ALWEB_DEVICE`` environment variable, else ``auto``).

    ``auto`` picks CUDA when available, else the CPU. An explicit ``cuda`` on a machine without one is refused
    rather than silently run on the CPU: a worker routed to a GPU queue that quietly trains on its CPU is a
    misconfiguration someone should hear about.
    """
    if isinstance(value, torch.device):
        return value
    raw = os.environ.get(ENV, "auto") if value is None else value
    name = raw.strip().lower() or "auto"
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if _CUDA.match(name):
        if not torch.cuda.is_available():
            raise DeviceConfigError(f"{ENV}={raw!r}: this machine has no CUDA device (use auto or cpu)")
        index = int(name.split(":", 1)[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise DeviceConfigError(f"{ENV}={raw!r}: only {torch.cuda.device_count()} CUDA device(s) here")
        return torch.device(name)
    raise DeviceConfigError(f"{ENV}={raw!r} is not a device: use {CHOICES}")


def autocast(device: torch.device) -> AbstractContextManager[object]:
    """Mixed precision on CUDA (bfloat16 where the GPU has it, else float16), nothing elsewhere."""
    if device.type != "cuda":
        return nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast(device_type="cuda", dtype=dtype)


def needs_grad_scaler(device: torch.device) -> bool:
    """float16 autocast (older GPUs) needs loss scaling against underflowing gradients; bfloat16 does not."""
    return device.type == "cuda" and not torch.cuda.is_bf16_supported()


RngState = tuple[torch.Tensor, torch.Tensor | None]


def rng_state(device: torch.device) -> RngState:
    """The generators dropout draws from on ``device``: the CPU's, and the GPU's when it runs there."""
    return torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def set_rng_state(device: torch.device, state: RngState) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


def rng_devices() -> list[int]:
    """CUDA devices whose generator a seeded block forks and restores, so the caller's stream is untouched there
    too; none on a CPU-only machine (or before CUDA was first used)."""
    return list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
