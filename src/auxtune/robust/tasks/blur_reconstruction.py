"""Blurred reconstruction (deblurring): from a Gaussian-blurred image, predict the clean one.

The seed paper's code blurred with sigma = 7/255 pixels, which leaves a 32x32 image unchanged, so its
"deblurring" duplicated plain reconstruction; here sigma is in pixels (default 1.0).
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from auxtune.robust.tasks.config import TasksConfig
from auxtune.robust.tasks.reconstruction import ReconstructionTask
from auxtune.robust.tasks.registry import register_task


def gaussian_kernel1d(sigma: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Normalised 1-D Gaussian truncated at 3 sigma (at least radius 1)."""
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, H, W) images, per channel, with reflected borders."""
    kernel = gaussian_kernel1d(sigma, images.device, images.dtype)
    r, c = kernel.numel() // 2, images.shape[1]
    rows = kernel.view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    cols = kernel.view(1, 1, -1, 1).repeat(c, 1, 1, 1)
    x = F.conv2d(F.pad(images, (r, r, 0, 0), mode="reflect"), rows, groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), cols, groups=c)


@register_task
class BlurReconstructionTask(ReconstructionTask):
    name = "blur_reconstruction"

    def __init__(self, num_features: int, cfg: TasksConfig) -> None:
        super().__init__(num_features, cfg)
        self.sigma = cfg.blur_sigma

    def make_inputs(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return gaussian_blur(images, self.sigma), images
