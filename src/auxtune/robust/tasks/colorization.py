"""Colorization (Zhang et al.): from the grayscale image, predict CIELAB a and b, each in 32 bins."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from auxtune.robust.tasks.base import AuxTask
from auxtune.robust.tasks.config import TasksConfig
from auxtune.robust.tasks.decoders import ConvDecoder
from auxtune.robust.tasks.registry import register_task

NUM_BINS = 32  # per channel; a and b span about [-128, 128), so each bin is 8 Lab units wide
AB_RANGE = (-128.0, 128.0)

# sRGB (D65) -> CIE XYZ, and the D65 reference white.
_RGB_TO_XYZ = (
    (0.4124564, 0.3575761, 0.1804375),
    (0.2126729, 0.7151522, 0.0721750),
    (0.0193339, 0.1191920, 0.9503041),
)
_WHITE = (0.95047, 1.0, 1.08883)


def rgb_to_lab(images: torch.Tensor) -> torch.Tensor:
    """sRGB images (N, 3, H, W) in [0, 1] -> CIELAB (N, 3, H, W): L in [0, 100], a and b about +-128."""
    linear = torch.where(images <= 0.04045, images / 12.92, ((images + 0.055) / 1.055) ** 2.4)
    matrix = torch.tensor(_RGB_TO_XYZ, device=images.device, dtype=images.dtype)
    white = torch.tensor(_WHITE, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    # A broadcast multiply-and-sum, not einsum/matmul: autocast leaves it in full precision, so the
    # targets are the same under the trainer's bf16 autocast (einsum there moved ~2% of a/b bins).
    xyz = (matrix.view(1, 3, 3, 1, 1) * linear.unsqueeze(1)).sum(2) / white
    eps = (6 / 29) ** 3
    f = torch.where(xyz > eps, xyz.clamp_min(eps) ** (1 / 3), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    fx, fy, fz = f.unbind(1)
    return torch.stack((116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)), dim=1)


def quantize_ab(ab: torch.Tensor) -> torch.Tensor:
    """Lab a/b values -> bin indices in [0, NUM_BINS)."""
    low, high = AB_RANGE
    bins = torch.floor((ab - low) / (high - low) * NUM_BINS)
    return bins.clamp(0, NUM_BINS - 1).long()


@register_task
class ColorizationTask(AuxTask):
    name = "colorization"

    def __init__(self, num_features: int, cfg: TasksConfig) -> None:
        super().__init__(num_features, cfg)
        # the paper's colorization head has no Linear stem, only a bias-free last layer
        final_bias = cfg.decoders != "paper"
        self.decoder = ConvDecoder(
            num_features, 2 * NUM_BINS, cfg.decoder_width, final_bias=final_bias
        )

    def make_inputs(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lab = rgb_to_lab(images.float())
        gray = (lab[:, :1] / 100).expand(-1, 3, -1, -1).to(images.dtype)
        return gray.contiguous(), quantize_ab(lab[:, 1:])  # targets (N, 2, H, W)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.decoder(features)  # (N, 64, 32, 32): 32 a-logits then 32 b-logits

    def loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        a_logits, b_logits = prediction.float().split(NUM_BINS, dim=1)
        return (
            F.cross_entropy(a_logits, target[:, 0]) + F.cross_entropy(b_logits, target[:, 1])
        ) / 2
