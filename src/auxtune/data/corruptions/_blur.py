"""Blur: defocus, glass, motion, zoom and gaussian."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from torch import Generator, Tensor

from auxtune.data.corruptions._ops import (
    apply_operator,
    correlate2d,
    gaussian_filter,
    kron_operator,
    zoom_matrix,
)
from auxtune.data.corruptions._ops import motion_blur as _motion_blur
from auxtune.data.corruptions._registry import register


@lru_cache
def disk_kernel(radius: float, alias_blur: float) -> Tensor:
    """The original's anti-aliased disk: pixels within `radius`, normalised, then a 3x3 Gaussian.

    The original draws it on a 17x17 grid; only floor(radius)+1 pixels around the centre can be
    non-zero, so the kernel is cut to that size (same values, less work).
    """
    half = math.floor(radius) + 1
    offsets = torch.arange(-half, half + 1, dtype=torch.float64)
    disk = ((offsets[:, None] ** 2 + offsets[None, :] ** 2) <= radius**2).double()
    disk /= disk.sum()
    # cv2.GaussianBlur with ksize 3: taps exp(-i^2 / 2 sigma^2), i = -1, 0, 1 (zero border).
    taps = torch.exp(-(torch.arange(-1.0, 2.0, dtype=torch.float64) ** 2) / (2 * alias_blur**2))
    taps /= taps.sum()
    disk = torch.nn.functional.conv2d(disk[None, None], taps[None, None, :, None], padding=(1, 0))
    disk = torch.nn.functional.conv2d(disk, taps[None, None, None, :], padding=(0, 1))
    return disk[0, 0].float()


@register("defocus_blur", stochastic=False, radius=(0.3, 0.4, 0.5, 1, 1.5),
          alias_blur=(0.4, 0.5, 0.6, 0.2, 0.1))  # fmt: skip
def defocus_blur(x: Tensor, p, gen: Generator) -> Tensor:
    # cv2.filter2D: correlation with BORDER_REFLECT_101.
    return correlate2d(x, disk_kernel(p.radius, p.alias_blur), "mirror")


@register("glass_blur", sigma=(0.05, 0.25, 0.4, 0.25, 0.4), max_delta=(1, 1, 1, 1, 1),
          iterations=(1, 1, 1, 2, 2))  # fmt: skip
def glass_blur(x: Tensor, p, gen: Generator) -> Tensor:
    if p.max_delta != 1:
        raise ValueError(f"glass_blur's pixel walk supports max_delta 1, got {p.max_delta}")
    x = gaussian_filter(x, p.sigma)
    x = torch.floor(x * 255 + 1e-3) / 255  # the original truncates to uint8 before the walk
    n, _, h, w = x.shape
    for _ in range(p.iterations):
        # np.random.randint(-1, 1) per axis and visited pixel: 0 or -1.
        dy, dx = torch.randint(-1, 1, (2, n, h - 2, w - 2), generator=gen, device=x.device)
        x = pixel_walk(x, dy, dx)
    return gaussian_filter(x, p.sigma)


def pixel_walk(x: Tensor, dy: Tensor, dx: Tensor) -> Tensor:
    """One pass of the original's pixel walk, as it behaves rather than as its comment says.

    The original visits rows H-1..2 and, in each, columns W-1..2 (bottom-right to top-left) and
    runs `x[h, w], x[h2, w2] = x[h2, w2], x[h, w]` with (h2, w2) = (h + dy, w + dx), dy and dx
    in {-1, 0}. On numpy views that statement copies x[h2, w2] into x[h, w] and leaves x[h2, w2]
    as it was: the released CIFAR-10-C duplicates neighbours instead of swapping them. As the
    source is up or left of the visited pixel, it is not visited yet, so every visited pixel
    takes its neighbour's value from before the pass: one gather for the whole batch.
    dy, dx: (N, H-2, W-2) offsets of the visited pixels, rows and columns 2..H-1 ascending.
    """
    n, _, h, w = x.shape
    rows = torch.arange(2, h, device=x.device)[:, None] + dy
    cols = torch.arange(2, w, device=x.device)[None, :] + dx
    images = torch.arange(n, device=x.device)[:, None, None]
    out = x.clone()
    out[:, :, 2:, 2:] = x[images, :, rows, cols].permute(0, 3, 1, 2)
    return out


@register("motion_blur", radius=(6, 6, 6, 8, 9), sigma=(1, 1.5, 2, 2, 2.5))
def motion_blur(x: Tensor, p, gen: Generator) -> Tensor:
    angles = torch.rand(len(x), generator=gen, device=x.device) * 90 - 45
    return _motion_blur(x, p.radius, p.sigma, angles)


@register("zoom_blur", stochastic=False, max_zoom=(1.06, 1.11, 1.16, 1.21, 1.26))
def zoom_blur(x: Tensor, p, gen: Generator) -> Tensor:
    return apply_operator(x, zoom_blur_operator(x.shape[-1], p.max_zoom))


@lru_cache
def zoom_blur_operator(size: int, max_zoom: float) -> Tensor:
    """Mean of the image and its centre zooms by np.arange(1, max_zoom, 0.01), as one operator.

    As in the original, zoom 1 (the image itself) is counted twice, and np.arange's float
    rounding keeps the end point for 1.11 and 1.26 (12 and 27 zooms) and drops it otherwise.
    """
    zooms = np.arange(1, max_zoom, 0.01)
    weight = 1 / (len(zooms) + 1)
    identity = torch.eye(size)
    terms = [(weight, identity, identity)]
    terms += [(weight, zoom_matrix(size, float(z)), zoom_matrix(size, float(z))) for z in zooms]
    return kron_operator(terms, size, size)


@register("gaussian_blur", stochastic=False, sigma=(0.4, 0.6, 0.7, 0.8, 1.0))
def gaussian_blur(x: Tensor, p, gen: Generator) -> Tensor:
    return gaussian_filter(x, p.sigma)
