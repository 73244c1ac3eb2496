"""Reconstruction (autoencoding): predict the input image from its feature vector."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from auxtune.robust.tasks.base import AuxTask
from auxtune.robust.tasks.config import TasksConfig
from auxtune.robust.tasks.decoders import ConvDecoder, paper_stem
from auxtune.robust.tasks.registry import register_task


@register_task
class ReconstructionTask(AuxTask):
    name = "reconstruction"

    def __init__(self, num_features: int, cfg: TasksConfig) -> None:
        super().__init__(num_features, cfg)
        paper = cfg.decoders == "paper"
        self.decoder = ConvDecoder(
            num_features,
            3,
            cfg.decoder_width,
            stem=paper_stem(num_features) if paper else None,
            final_bias=not paper,
        )

    def make_inputs(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return images, images

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(features))

    def loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(prediction.float(), target.float())
