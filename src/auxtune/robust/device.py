"""Device choice and the speed-ups: bf16 autocast (CUDA only) and channels_last (CUDA and CPU)."""

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


def memory_format(cfg: RuntimeConfig) -> torch.memory_format:
    """channels_last unless ``runtime.channels_last`` is off, on every device: besides CUDA's
    tensor cores, oneDNN's CPU convolutions run faster on it too (one thread, forward + backward:
    WRN-10-1 with 8 stem channels at batch 32 0.75x the time, WRN-16-2 at 64 0.87x, at 128 0.77x;
    the demo's step with two heads 85 ms against 106, 2026-12-02)."""
    return torch.channels_last if cfg.channels_last else torch.contiguous_format
