"""Decoders from the pooled feature vector back to image-shaped predictions (the paper's appendix)."""

from __future__ import annotations

import torch
from torch import nn


def _up(in_ch: int, out_ch: int) -> list[nn.Module]:
    # kernel 4, stride 2, padding 1 doubles the spatial size exactly
    return [
        nn.ConvTranspose2d(in_ch, out_ch, 4, 2, 1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(),
    ]


def paper_stem(num_features: int) -> nn.Module:
    """The Linear+ReLU the seed paper's code puts before its reconstruction-type decoders."""
    return nn.Sequential(nn.Linear(num_features, num_features), nn.ReLU())


class ConvDecoder(nn.Module):
    """features (N, F) -> (N, out_channels, 32, 32) through widths w, w/2, w/4 (256-128-64 by default).

    The feature vector is read as a 1x1 map, expanded to 4x4, then doubled three times to 32x32.
    ``stem`` runs first on the feature vector (the paper's heads: :func:`paper_stem`);
    ``final_bias=False`` drops the last layer's bias, as the paper's code does.
    """

    def __init__(
        self,
        num_features: int,
        out_channels: int,
        width: int = 256,
        *,
        stem: nn.Module | None = None,
        final_bias: bool = True,
    ) -> None:
        super().__init__()
        w = [width, width // 2, width // 4]
        self.stem = stem if stem is not None else nn.Identity()
        self.net = nn.Sequential(
            nn.ConvTranspose2d(num_features, w[0], 4, 1, 0, bias=False),  # 1x1 -> 4x4
            nn.BatchNorm2d(w[0]),
            nn.ReLU(),
            *_up(w[0], w[1]),  # 8x8
            *_up(w[1], w[2]),  # 16x16
            nn.ConvTranspose2d(w[2], out_channels, 4, 2, 1, bias=final_bias),  # 32x32
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(self.stem(features)[:, :, None, None])


class PatchDecoder(nn.Module):
    """features (N, F) -> (N, 3, 8, 8) in [0, 1]: the small decoder of the inpainting task."""

    def __init__(self, num_features: int, width: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.ConvTranspose2d(num_features, width, 4, 1, 0, bias=False),  # 4x4
            nn.BatchNorm2d(width),
            nn.ReLU(),
            *_up(width, width // 2),  # 8x8
            nn.Conv2d(width // 2, 3, 3, 1, 1),
            nn.Sigmoid(),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features[:, :, None, None])


class PaperPatchDecoder(nn.Module):
    """The seed paper's inpainting head: features (N, F) -> (N, 3, 8, 8) in [0, 1].

    Linear+ReLU, a 4x4 expansion to ``width`` channels (64 in the paper), then one transposed
    convolution straight to 8x8 (auxtune's :class:`PatchDecoder` adds a layer and a 3x3 conv).
    """

    def __init__(self, num_features: int, width: int = 64) -> None:
        super().__init__()
        self.stem = paper_stem(num_features)
        self.net = nn.Sequential(
            nn.ConvTranspose2d(num_features, width, 4, 1, 0, bias=False),  # 4x4
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.ConvTranspose2d(width, 3, 4, 2, 1, bias=False),  # 8x8
            nn.Sigmoid(),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(self.stem(features)[:, :, None, None])
