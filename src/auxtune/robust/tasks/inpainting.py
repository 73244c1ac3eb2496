"""Inpainting (context encoders): blank the centre 8x8 patch, predict it.

The hole is black with auxtune's decoder; ``tasks.decoders=paper`` fills it white (0.9999, the
seed paper's code) and predicts it with the paper's smaller head (:class:`PaperPatchDecoder`).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from auxtune.robust.tasks.base import AuxTask
from auxtune.robust.tasks.config import TasksConfig
from auxtune.robust.tasks.decoders import PaperPatchDecoder, PatchDecoder
from auxtune.robust.tasks.registry import register_task

PATCH = 8
CENTRE = slice(12, 12 + PATCH)  # rows/columns 12..19 of a 32x32 image
PAPER_FILL = 0.9999  # the hole's value in the paper's code (images in [0, 1])


@register_task
class InpaintingTask(AuxTask):
    name = "inpainting"

    def __init__(self, num_features: int, cfg: TasksConfig) -> None:
        super().__init__(num_features, cfg)
        paper = cfg.decoders == "paper"
        self.fill = PAPER_FILL if paper else 0.0
        self.decoder: nn.Module = (
            PaperPatchDecoder(num_features, cfg.decoder_width // 4)
            if paper
            else PatchDecoder(num_features, cfg.decoder_width // 2)
        )

    def make_inputs(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        target = images[:, :, CENTRE, CENTRE].clone()
        blanked = images.clone()
        blanked[:, :, CENTRE, CENTRE] = self.fill
        return blanked, target

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.decoder(features)

    def loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(prediction.float(), target.float())
