"""Device choice and the CUDA-only speed-ups (bf16 autocast, channels_last)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch

from auxtune.robust.config import RuntimeConfig


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> the first CUDA device when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"runtime.device = {name!r} but CUDA is not available; use runtime.device=auto"
        )
    return device


def autocast_factory(device: torch.device, cfg: RuntimeConfig) -> Callable[[], Any]:
    """A context-manager factory: bf16 autocast on CUDA when enabled, otherwise a no-op."""
    if device.type == "cuda" and cfg.bf16:
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext


def memory_format(device: torch.device, cfg: RuntimeConfig) -> torch.memory_format:
    use = device.type == "cuda" and cfg.channels_last
    return torch.channels_last if use else torch.contiguous_format
