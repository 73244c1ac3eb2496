"""Digital: contrast, elastic transform, pixelate, JPEG compression and saturate."""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Generator, Tensor

from auxtune.data.corruptions._ops import gaussian_filter
from auxtune.data.corruptions._registry import register


@register("contrast", stochastic=False, factor=(0.75, 0.5, 0.4, 0.3, 0.15))
def contrast(x: Tensor, p, gen: Generator) -> Tensor:
    means = x.mean((2, 3), keepdim=True)  # per image and channel
    return (x - means) * p.factor + means


@register("saturate", stochastic=False, mult=(0.3, 0.1, 1.5, 2, 2.5), add=(0, 0, 0, 0.1, 0.2))
def saturate(x: Tensor, p, gen: Generator) -> Tensor:
    """HSV saturation S' = clip(S * mult + add): severities 1-2 wash colours out, 3-5 exaggerate.

    With hue and value V fixed, each channel's distance below V is proportional to S, so it
    scales by S'/S. Grey pixels (S = 0) have hue 0, red, by skimage's convention: with add > 0
    they turn slightly red, (V, V(1-S'), V(1-S')), as in the original.
    """
    value, low = x.amax(1, keepdim=True), x.amin(1, keepdim=True)
    saturation = (value - low) / value.clamp_min(1e-12)
    new_saturation = (saturation * p.mult + p.add).clamp(0, 1)
    coloured = value - (value - x) * (new_saturation / saturation.clamp_min(1e-12))
    faded = value * (1 - new_saturation)
    grey = torch.cat((value, faded, faded), 1)
    return torch.where(saturation > 0, coloured, grey)


@register("jpeg_compression", stochastic=False, quality=(80, 65, 58, 50, 40))
def jpeg_compression(x: Tensor, p, gen: Generator) -> Tensor:
    # PIL's libjpeg, as the original: one small encode/decode per image, on the CPU.
    pixels = torch.round(x * 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    decoded = np.stack([_jpeg_round_trip(image, p.quality) for image in pixels])
    return torch.from_numpy(decoded).to(x.device).permute(0, 3, 1, 2).float() / 255


def _jpeg_round_trip(image: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer))


@register("pixelate", stochastic=False, scale=(0.95, 0.9, 0.85, 0.75, 0.65))
def pixelate(x: Tensor, p, gen: Generator) -> Tensor:
    size = x.shape[-1]
    small = int(size * p.scale)
    down = box_resize_matrix(size, small).to(x.device)
    up = box_resize_matrix(small, size).to(x.device)
    pixels = torch.round(x * 255)
    # PIL resizes columns then rows, rounding to uint8 after each pass.
    for matrix in (down, up):
        pixels = _round_half_up(pixels @ matrix.T)
        pixels = _round_half_up(matrix @ pixels)
    return pixels / 255


def _round_half_up(x: Tensor) -> Tensor:
    return torch.floor(x + 0.5)


@lru_cache
def box_resize_matrix(in_size: int, out_size: int) -> Tensor:
    """(out, in) weights of PIL's Image.resize(..., BOX) along one axis.

    PIL averages the input pixels whose centres fall in each output pixel's footprint (widened
    to at least one pixel when enlarging), with equal weights: upsampling picks the nearest pixel.
    """
    scale = in_size / out_size
    support = 0.5 * max(scale, 1.0)
    matrix = torch.zeros(out_size, in_size, dtype=torch.float64)
    for out in range(out_size):
        centre = (out + 0.5) * scale
        first = max(int(centre - support + 0.5), 0)
        stop = min(int(centre + support + 0.5), in_size)
        for src in range(first, stop):
            offset = (src + 0.5 - centre) / max(scale, 1.0)
            matrix[out, src] = float(-0.5 < offset <= 0.5)
    return (matrix / matrix.sum(1, keepdim=True)).float()


def _times_side(*fractions: float) -> tuple[float, ...]:
    """The original gives elastic_transform's parameters as fractions of the 32-pixel side."""
    return tuple(32 * fraction for fraction in fractions)


@register("elastic_transform", alpha=_times_side(0, 0.05, 0.08, 0.1, 0.1),
          sigma=_times_side(0, 0.2, 0.06, 0.04, 0.03),
          affine=_times_side(0.08, 0.07, 0.06, 0.05, 0.03))  # fmt: skip
def elastic_transform(x: Tensor, p, gen: Generator) -> Tensor:
    """Random affine warp, then a smooth random displacement field of `alpha` pixels at most."""
    n, _, h, w = x.shape
    x = _sample(x, _random_affine_grid(n, h, w, p.affine, gen, x.device), align_corners=True)
    if p.alpha == 0:
        return x
    field = torch.rand((n, 2, h, w), generator=gen, device=x.device) * 2 - 1
    field = p.alpha * gaussian_filter(field, p.sigma, mode="reflect", truncate=3)
    rows, cols = _pixel_grid(h, w, x.device)
    return _sample(x, (rows + field[:, 1], cols + field[:, 0]), align_corners=False)


def _pixel_grid(h: int, w: int, device: torch.device) -> tuple[Tensor, Tensor]:
    rows = torch.arange(h, device=device, dtype=torch.float32)
    cols = torch.arange(w, device=device, dtype=torch.float32)
    grid_rows, grid_cols = torch.meshgrid(rows, cols, indexing="ij")
    return grid_rows, grid_cols


def _random_affine_grid(
    n: int, h: int, w: int, jitter: float, gen: Generator, device: torch.device
) -> tuple[Tensor, Tensor]:
    """Source (row, col) of every output pixel for the original's random affine.

    Three points around the centre move by up to `jitter` pixels each; the affine that maps the
    moved points back onto the originals tells where each output pixel comes from (cv2.warpAffine).
    """
    centre, reach = min(h, w) // 2, min(h, w) // 3
    points = torch.tensor(  # (x, y) like OpenCV
        [[centre + reach, centre + reach], [centre + reach, centre - reach],
         [centre - reach, centre - reach]], dtype=torch.float32, device=device,
    )  # fmt: skip
    moved = points + (torch.rand((n, 3, 2), generator=gen, device=device) * 2 - 1) * jitter
    homogeneous = torch.cat((moved, torch.ones(n, 3, 1, device=device)), 2)
    inverse = torch.linalg.solve(homogeneous, points.expand(n, 3, 2))  # (N, 3, 2): [x y 1] @ it
    rows, cols = _pixel_grid(h, w, device)
    src_x = cols * inverse[:, 0, 0, None, None] + rows * inverse[:, 1, 0, None, None]
    src_y = cols * inverse[:, 0, 1, None, None] + rows * inverse[:, 1, 1, None, None]
    return src_y + inverse[:, 2, 1, None, None], src_x + inverse[:, 2, 0, None, None]


def _sample(x: Tensor, source: tuple[Tensor, Tensor], *, align_corners: bool) -> Tensor:
    """Bilinear sampling at pixel coordinates (row, col), each (N, H, W), mirroring the border.

    align_corners=True mirrors about the edge pixels' centres (OpenCV's BORDER_REFLECT_101);
    False mirrors about the image edge, repeating the edge pixel (scipy's "reflect").
    """
    h, w = x.shape[-2:]
    rows, cols = source
    if align_corners:
        grid = torch.stack((2 * cols / (w - 1) - 1, 2 * rows / (h - 1) - 1), -1)
    else:
        grid = torch.stack(((2 * cols + 1) / w - 1, (2 * rows + 1) / h - 1), -1)
    return F.grid_sample(
        x, grid, mode="bilinear", padding_mode="reflection", align_corners=align_corners
    )
