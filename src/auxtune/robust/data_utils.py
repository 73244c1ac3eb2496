"""Turning uint8 image arrays into model input on the device: conversion, augmentation, batches."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

PAD = 4  # random-crop padding in pixels (the standard CIFAR augmentation)


def as_tensor(array: np.ndarray | torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """numpy or torch -> torch tensor on ``device`` (no copy when already there)."""
    tensor = (
        torch.from_numpy(np.ascontiguousarray(array)) if isinstance(array, np.ndarray) else array
    )
    return tensor.to(device)


def to_model_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 32, 32, 3) -> float (N, 3, 32, 32) in [0, 1], on the same device."""
    return images.permute(0, 3, 1, 2).float().div_(255.0)


def random_crop_flip(images: torch.Tensor) -> torch.Tensor:
    """Batched random 32x32 crop of the zero-padded image, then a random horizontal flip."""
    n, _, h, w = images.shape
    padded = torch.nn.functional.pad(images, (PAD, PAD, PAD, PAD))
    dy = torch.randint(0, 2 * PAD + 1, (n, 1, 1), device=images.device)
    dx = torch.randint(0, 2 * PAD + 1, (n, 1, 1), device=images.device)
    rows = torch.arange(h, device=images.device).view(1, h, 1) + dy
    cols = torch.arange(w, device=images.device).view(1, 1, w) + dx
    flip = torch.rand(n, 1, 1, device=images.device) < 0.5
    cols = torch.where(flip, cols.flip(-1), cols)
    batch = torch.arange(n, device=images.device).view(n, 1, 1)
    # advanced indexing on dims 0, 2, 3 puts them first: (N, H, W, C) -> back to (N, C, H, W)
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def epoch_batches(
    num: int, batch_size: int, generator: torch.Generator, device: torch.device | str = "cpu"
) -> Iterator[torch.Tensor]:
    """Index tensors of one shuffled epoch; the last partial batch is dropped (BatchNorm needs >1)."""
    order = torch.randperm(num, generator=generator).to(device)
    for start in range(0, num - batch_size + 1, batch_size):
        yield order[start : start + batch_size]


def steps_per_epoch(num: int, batch_size: int) -> int:
    return num // batch_size
