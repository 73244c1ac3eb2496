"""Turning uint8 image arrays into model input on the device: conversion, augmentation, batches."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

PAD = 4  # random-crop padding in pixels (the standard CIFAR augmentation)
UNLABELED = -1  # the label of a training image whose label the main loss must not see


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


class LabelledBatches:
    """The main loss's batches when only some training images are labelled.

    An epoch still walks every image (the auxiliary tasks' batches); step k's main batch is the
    k-th batch of the labelled images, which are cycled through in a new seeded order each time
    round. The batch depends on (seed, k) alone: a resumed run draws the same ones, and runs of
    one seed with and without auxiliary tasks see the same labelled batches (paired seeds).
    """

    def __init__(self, labelled: torch.Tensor, batch_size: int, seed: int) -> None:
        self.labelled, self.batch_size, self.seed = labelled, batch_size, seed
        self.per_cycle = len(labelled) // batch_size  # 0: no batch (the trainer refuses it)
        self._cycle, self._order = -1, labelled

    @classmethod
    def of(cls, labels: torch.Tensor, batch_size: int, seed: int) -> LabelledBatches | None:
        """None when every image is labelled (the main batch is then the tasks' batch)."""
        labelled = torch.nonzero(labels != UNLABELED).flatten()
        return None if len(labelled) == len(labels) else cls(labelled, batch_size, seed)

    def batch(self, step: int) -> torch.Tensor:
        """Indices of step ``step``'s main batch (on the labels' device)."""
        cycle, k = divmod(step, self.per_cycle)
        if cycle != self._cycle:
            order = np.random.default_rng([self.seed, cycle, 0x1AB]).permutation(len(self.labelled))
            self._cycle, self._order = cycle, self.labelled[torch.from_numpy(order)]
        return self._order[k * self.batch_size : (k + 1) * self.batch_size]
