"""Rotation prediction (Gidaris et al.): rotate by 0/90/180/270 degrees, predict which."""

from __future__ import annotations

from functools import partial

import torch

from auxtune.robust.tasks.base import ClassificationTask, register_task, select_per_image


def rotate(images: torch.Tensor, quarter_turns: int) -> torch.Tensor:
    """Rotate (N, C, H, W) images counter-clockwise by ``quarter_turns`` x 90 degrees."""
    return torch.rot90(images, quarter_turns, dims=(2, 3))


@register_task
class RotationTask(ClassificationTask):
    name = "rotation"
    num_classes = 4

    def transform(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        turns = [partial(rotate, quarter_turns=k) for k in range(4)]
        return select_per_image(images, labels, turns)
