"""WideResNet (Zagoruyko & Komodakis) for 32x32 images: the shared backbone of every head.

WRN-d-k has (d-4)/6 pre-activation basic blocks in each of three stages of widths 16k, 32k, 64k;
its feature vector (after global average pooling) has 64k entries: 128 for WRN-40-2, the paper's.

    >>> import torch
    >>> net = WideResNet(depth=10, widen_factor=1, base_width=4)
    >>> net.forward_features(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 16])
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from auxtune.robust.config import ModelConfig

# Per-channel statistics of CIFAR-10's training set: inputs arrive in [0, 1] and are standardised
# inside the network, so every transform and corruption works on plain images.
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


class BasicBlock(nn.Module):
    """Pre-activation residual block: BN-ReLU-conv3x3-BN-ReLU-(dropout)-conv3x3, plus a shortcut."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.dropout = dropout
        self.shortcut = (
            None
            if in_ch == out_ch and stride == 1
            else nn.Conv2d(in_ch, out_ch, 1, stride, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))
        # The projection shortcut sees the pre-activated input, as in the reference WRN.
        residual = x if self.shortcut is None else self.shortcut(pre)
        out = self.conv1(pre)
        out = F.relu(self.bn2(out))
        if self.dropout:
            out = F.dropout(out, p=self.dropout, training=self.training)
        return self.conv2(out) + residual


class WideResNet(nn.Module):
    """WRN-depth-widen_factor backbone; ``forward_features`` returns the pooled feature vector."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self, depth: int = 16, widen_factor: int = 2, dropout: float = 0.0, base_width: int = 16
    ) -> None:
        super().__init__()
        ModelConfig(depth, widen_factor, dropout, base_width)  # validates (6n+4 depth, ranges)
        blocks_per_stage = (depth - 4) // 6
        widths = [base_width, base_width * widen_factor, 2 * base_width * widen_factor]
        widths.append(4 * base_width * widen_factor)
        self.register_buffer("mean", torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CIFAR_STD).view(1, 3, 1, 1), persistent=False)
        self.stem = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        stages = []
        for stage, stride in enumerate((1, 2, 2)):
            in_ch, out_ch = widths[stage], widths[stage + 1]
            blocks = [
                BasicBlock(in_ch if i == 0 else out_ch, out_ch, stride if i == 0 else 1, dropout)
                for i in range(blocks_per_stage)
            ]
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.bn = nn.BatchNorm2d(widths[-1])
        self.num_features = widths[-1]
        self._init_weights()

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> WideResNet:
        return cls(cfg.depth, cfg.widen_factor, cfg.dropout, cfg.base_width)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1], shape (N, 3, 32, 32) -> features (N, num_features)."""
        x = self.stem((images - self.mean) / self.std)
        x = F.relu(self.bn(self.stages(x)))
        return F.adaptive_avg_pool2d(x, 1).flatten(1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_features(images)
