"""RGB-channel permutation: shuffle the colour channels by one of the 3! = 6 orders, predict which."""

from __future__ import annotations

import itertools

import torch

from auxtune.robust.tasks.base import ClassificationTask
from auxtune.robust.tasks.registry import register_task

#: Label k means channel c of the output is channel PERMUTATIONS[k][c] of the input.
PERMUTATIONS: tuple[tuple[int, ...], ...] = tuple(itertools.permutations(range(3)))


@register_task
class RGBPermutationTask(ClassificationTask):
    name = "rgb_permutation"
    num_classes = len(PERMUTATIONS)

    def transform(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        order = torch.tensor(PERMUTATIONS, device=images.device)[labels]  # (N, 3)
        index = order[:, :, None, None].expand_as(images)
        return torch.gather(images, 1, index)
