"""The classifier a user deploys: a trained network's backbone and main head on raw images.

    >>> from auxtune.robust.config import ModelConfig, TasksConfig
    >>> from auxtune.robust.model import MultiHeadNet
    >>> net = MultiHeadNet(ModelConfig(depth=10, widen_factor=1, base_width=4), TasksConfig(), 10)
    >>> images = torch.zeros((2, 32, 32, 3), dtype=torch.uint8)
    >>> ImageClassifier(net).eval()(images).shape
    torch.Size([2, 10])

The self-supervised heads are left out: they train the backbone and are no part of a prediction.
"""

from __future__ import annotations

import torch
from torch import nn

from auxtune.robust.data_utils import to_model_input
from auxtune.robust.model import MultiHeadNet


class ImageClassifier(nn.Module):
    """uint8 images (N, 32, 32, 3), as CIFAR stores them -> class logits (N, classes)."""

    def __init__(self, net: MultiHeadNet) -> None:
        super().__init__()
        self.backbone, self.classifier = net.backbone, net.classifier

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.backbone.forward_features(to_model_input(images)))
