"""Rotation prediction (Gidaris et al.): rotate by 0/90/180/270 degrees, predict which.

By default each image gets one random quarter-turn; ``tasks.rotation_all_four`` trains all four
quarter-turns of every image instead (a view four times the batch), as the seed paper's code does.
"""

from __future__ import annotations

from functools import partial

import torch

from auxtune.robust.tasks.base import ClassificationTask, select_per_image
from auxtune.robust.tasks.config import TasksConfig
from auxtune.robust.tasks.registry import register_task


def rotate(images: torch.Tensor, quarter_turns: int) -> torch.Tensor:
    """Rotate (N, C, H, W) images counter-clockwise by ``quarter_turns`` x 90 degrees."""
    return torch.rot90(images, quarter_turns, dims=(2, 3))


@register_task
class RotationTask(ClassificationTask):
    name = "rotation"
    num_classes = 4

    def __init__(self, num_features: int, cfg: TasksConfig) -> None:
        super().__init__(num_features, cfg)
        self.all_four = cfg.rotation_all_four

    def make_inputs(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.all_four:
            return super().make_inputs(images)
        turns = torch.arange(self.num_classes, device=images.device)
        views = torch.cat([rotate(images, k) for k in range(self.num_classes)])
        return views, turns.repeat_interleave(images.shape[0])

    def transform(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        turns = [partial(rotate, quarter_turns=k) for k in range(4)]
        return select_per_image(images, labels, turns)
