"""Inpainting (context encoders): blank the centre 8x8 patch, predict it."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from auxtune.robust.config import TasksConfig
from auxtune.robust.tasks.base import AuxTask, register_task
from auxtune.robust.tasks.decoders import PatchDecoder

PATCH = 8
CENTRE = slice(12, 12 + PATCH)  # rows/columns 12..19 of a 32x32 image


@register_task
class InpaintingTask(AuxTask):
    name = "inpainting"

    def __init__(self, num_features: int, cfg: TasksConfig) -> None:
        super().__init__(num_features, cfg)
        self.decoder = PatchDecoder(num_features, cfg.decoder_width // 2)

    def make_inputs(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        target = images[:, :, CENTRE, CENTRE].clone()
        blanked = images.clone()
        blanked[:, :, CENTRE, CENTRE] = 0.0
        return blanked, target

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.decoder(features)

    def loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(prediction.float(), target.float())
