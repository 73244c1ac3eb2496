"""Device choice and the CUDA-only speed-ups (bf16 autocast, channels_last)."""

from __future__ import annotations

import contextlib
import os
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


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask: a container's or taskset's share)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def usable_threads(requested: int) -> int:
    """``requested`` torch threads, but never more than :func:`available_cpus` (0 stays 0: torch's
    default). More threads than CPUs only make them wait for each other: 64 on 2 cores ran ~10x
    slower.

    >>> usable_threads(1), usable_threads(0), usable_threads(10**6) == available_cpus()
    (1, 0, True)
    """
    return min(requested, available_cpus())


def autocast_factory(device: torch.device, cfg: RuntimeConfig) -> Callable[[], Any]:
    """A context-manager factory: bf16 autocast on CUDA when enabled, otherwise a no-op."""
    if device.type == "cuda" and cfg.bf16:
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext


def memory_format(device: torch.device, cfg: RuntimeConfig) -> torch.memory_format:
    use = device.type == "cuda" and cfg.channels_last
    return torch.channels_last if use else torch.contiguous_format
