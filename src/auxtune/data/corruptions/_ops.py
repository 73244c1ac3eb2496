"""Batched image operations shared by the corruption families.

Images are float tensors (N, C, H, W) in [0, 1]. Border modes follow the library each step of the
original script used, because the border decides the outermost pixels of a 32x32 image:
"nearest" (skimage's gaussian), "reflect" (scipy: d c b a | a b c d) and "mirror" (OpenCV's
default BORDER_REFLECT_101: d c b | a b c d).

Linear filters are matrices: a 1-D filter of one axis, border rule included, is an (H, H)
matrix, so a separable filter is `rows @ x @ cols.T`; a 2-D correlation or a sum of zooms is a
sparse (H*W, H*W) operator on the flattened image. On 32x32 images both are several times faster
on CPU than conv2d or interpolate, and every border rule lives in `fold_index` alone.
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache

import torch
from torch import Tensor

# ITU-R 601 luma, as OpenCV's RGB2GRAY.
LUMA = (0.299, 0.587, 0.114)


def fold_index(index: Tensor, size: int, mode: str) -> Tensor:
    """Map positions on an axis of `size` pixels back inside it by the border rule `mode`."""
    if mode == "nearest":
        return index.clamp(0, size - 1)
    if mode == "reflect":  # period 2*size, the edge pixel repeated
        index = index % (2 * size)
        return torch.where(index < size, index, 2 * size - 1 - index)
    if mode == "mirror":  # period 2*size-2, the edge pixel not repeated
        period = max(2 * size - 2, 1)
        index = index % period
        return torch.where(index < size, index, period - index)
    raise ValueError(f"unknown border mode {mode!r}; valid: nearest, reflect, mirror")


def shift_matrix(size: int, offset: int, mode: str) -> Tensor:
    """(size, size) float64 matrix taking pixel i + offset to position i, border by `mode`."""
    rows = torch.arange(size)
    matrix = torch.zeros(size, size, dtype=torch.float64)
    matrix[rows, fold_index(rows + offset, size, mode)] = 1
    return matrix


@lru_cache
def filter_matrix(taps: tuple[float, ...], size: int, mode: str) -> Tensor:
    """(size, size) matrix correlating one axis with odd-length `taps` (centre tap in the middle)."""
    radius = len(taps) // 2
    terms = (tap * shift_matrix(size, i - radius, mode) for i, tap in enumerate(taps))
    return sum(terms, torch.zeros(size, size, dtype=torch.float64)).float()


def apply_separable(x: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """`rows @ x @ cols.T` on the last two axes: a separable linear filter of every channel."""
    return rows.to(x.device, x.dtype) @ (x @ cols.to(x.device, x.dtype).T)


def kron_operator(terms: list[tuple[float, Tensor, Tensor]], h: int, w: int) -> Tensor:
    """Sparse (H*W, H*W) operator of sum(weight * kron(rows, cols)) over `terms`.

    kron(rows, cols) applied to a flattened image applies `rows` along its rows axis and `cols`
    along its columns axis; a sum of such terms needs not be separable (a 2-D kernel, a mean of
    zooms). Built from the 1-D matrices' few non-zeros, stored as float32 CSR.
    """
    indices, values = [], []
    for weight, rows, cols in terms:
        row_out, row_in = rows.nonzero().T
        col_out, col_in = cols.nonzero().T
        outputs = (row_out[:, None] * w + col_out[None, :]).flatten()
        inputs = (row_in[:, None] * w + col_in[None, :]).flatten()
        indices.append(torch.stack((outputs, inputs)))
        products = rows[row_out, row_in][:, None] * cols[col_out, col_in][None, :]
        values.append(weight * products.flatten().double())
    dense_shape = (h * w, h * w)
    operator = torch.sparse_coo_tensor(
        torch.cat(indices, 1), torch.cat(values), dense_shape, check_invariants=True
    )
    with warnings.catch_warnings():  # CSR is "beta" in torch, but sparse.mm on it is stable
        warnings.simplefilter("ignore", UserWarning)
        return operator.coalesce().float().to_sparse_csr()


def apply_operator(x: Tensor, operator: Tensor) -> Tensor:
    """Apply an (H*W, H*W) operator to every channel of (N, C, H, W)."""
    n, c, h, w = x.shape
    flat = x.reshape(n * c, h * w)
    out = torch.sparse.mm(operator.to(x.device), flat.T).T
    return out.reshape(n, c, h, w)


def gaussian_taps(sigma: float, truncate: float) -> tuple[float, ...]:
    """scipy.ndimage's sampled Gaussian: radius int(truncate*sigma + 0.5), weights summing to 1."""
    radius = int(truncate * sigma + 0.5)
    weights = [math.exp(-0.5 * (i / sigma) ** 2) for i in range(-radius, radius + 1)]
    return tuple(weight / sum(weights) for weight in weights)


def gaussian_filter(
    x: Tensor, sigma: float, *, mode: str = "nearest", truncate: float = 4.0
) -> Tensor:
    """Per-channel Gaussian blur of (N, C, H, W), as scipy.ndimage.gaussian_filter."""
    taps = gaussian_taps(sigma, truncate) if sigma > 0 else (1.0,)
    if len(taps) == 1:  # sigma 0, or so small that scipy's kernel is a single tap
        return x
    h, w = x.shape[-2:]
    return apply_separable(x, filter_matrix(taps, h, mode), filter_matrix(taps, w, mode))


@lru_cache
def correlation_operator(
    kernel: tuple[tuple[float, ...], ...], h: int, w: int, mode: str
) -> Tensor:
    """Sparse operator of a 2-D correlation: sum of tap * (row shift (x) column shift)."""
    radius_y, radius_x = len(kernel) // 2, len(kernel[0]) // 2
    terms = [
        (tap, shift_matrix(h, dy - radius_y, mode), shift_matrix(w, dx - radius_x, mode))
        for dy, row in enumerate(kernel)
        for dx, tap in enumerate(row)
        if tap != 0
    ]
    return kron_operator(terms, h, w)


def correlate2d(x: Tensor, kernel: Tensor, mode: str) -> Tensor:
    """Correlate every channel of (N, C, H, W) with one odd-sized 2-D kernel, as cv2.filter2D."""
    key = tuple(tuple(row) for row in kernel.tolist())
    return apply_operator(x, correlation_operator(key, *x.shape[-2:], mode))


def grey(x: Tensor) -> Tensor:
    """(N, 3, H, W) -> (N, 1, H, W) luma."""
    weights = torch.tensor(LUMA, device=x.device, dtype=x.dtype)
    return torch.einsum("nchw,c->nhw", x, weights)[:, None]


def plasma_fractal(
    n: int, mapsize: int, wibble_decay: float, gen: torch.Generator, device: torch.device
) -> Tensor:
    """Diamond-square fractal noise (N, mapsize, mapsize) in [0, 1], as the original's `fog`.

    Each step fills square centres and then diamond centres with the mean of their four corners
    plus uniform noise whose amplitude shrinks by `wibble_decay` per octave (larger decay:
    smoother maps). The map wraps around (np.roll in the original).
    """
    maps = torch.zeros(n, mapsize, mapsize, device=device)
    step, wibble = mapsize, 100.0
    while step >= 2:
        half = step // 2
        corners = maps[:, ::step, ::step]  # a view: later writes never touch these positions
        squares = corners + corners.roll(-1, 1)
        squares = squares + squares.roll(-1, 2)
        maps[:, half::step, half::step] = _wibbled_mean(squares, wibble, gen)
        centres = maps[:, half::step, half::step]
        left_right = centres + centres.roll(1, 1) + corners + corners.roll(-1, 2)
        maps[:, ::step, half::step] = _wibbled_mean(left_right, wibble, gen)
        up_down = centres + centres.roll(1, 2) + corners + corners.roll(-1, 1)
        maps[:, half::step, ::step] = _wibbled_mean(up_down, wibble, gen)
        step, wibble = half, wibble / wibble_decay
    low = maps.amin((1, 2), keepdim=True)
    high = maps.amax((1, 2), keepdim=True)
    return (maps - low) / (high - low)


def _wibbled_mean(total: Tensor, wibble: float, gen: torch.Generator) -> Tensor:
    """Mean of four neighbours plus wibble * U(-wibble, wibble), the original's amplitude."""
    noise = torch.rand(total.shape, generator=gen, device=total.device) * 2 - 1
    return total / 4 + wibble * wibble * noise


@lru_cache
def zoom_matrix(size: int, zoom: float) -> Tensor:
    """(size, size) matrix of the original's `clipped_zoom` along one axis.

    Crops the central ceil(size/zoom) pixels, resizes them with scipy.ndimage.zoom's order-1
    grid (output round(crop*zoom) pixels, end points aligned) and keeps the `size` pixels
    starting (output - size) // 2 in.
    """
    crop = math.ceil(size / zoom)
    top = (size - crop) // 2
    out_size = round(crop * zoom)
    step = (crop - 1) / (out_size - 1)
    position = (torch.arange(size, dtype=torch.float64) + (out_size - size) // 2) * step
    low = position.floor().long()
    frac = position - low
    rows = torch.arange(size)
    matrix = torch.zeros(size, size, dtype=torch.float64)
    matrix.index_put_((rows, top + low), 1 - frac, accumulate=True)
    matrix.index_put_((rows, top + (low + 1).clamp(max=crop - 1)), frac, accumulate=True)
    return matrix.float()


def clipped_zoom(x: Tensor, zoom: float) -> Tensor:
    """Zoom into the centre of (N, C, H, W) keeping the size (bilinear)."""
    return apply_separable(x, zoom_matrix(x.shape[-2], zoom), zoom_matrix(x.shape[-1], zoom))


def motion_blur(x: Tensor, radius: int, sigma: float, angles: Tensor) -> Tensor:
    """ImageMagick's -motion-blur on (N, C, H, W), one angle (degrees) per image.

    Each output pixel is a Gaussian-weighted mean of 2*radius+1 pixels on a ray from it in the
    direction of the angle (weights exp(-i^2 / 2 sigma^2) for i = 0..2*radius, so the streak
    trails one way); pixels beyond the border repeat the edge (ImageMagick's default).
    """
    n, c, h, w = x.shape
    steps = torch.arange(2 * radius + 1, device=x.device, dtype=torch.float64)
    taps = torch.exp(-(steps**2) / (2 * sigma**2))
    weights = (taps / taps.sum()).tolist()
    radians = torch.deg2rad(angles.double())[:, None]
    # ImageMagick rounds each offset with ceil(v - 0.5); (N, steps, H or W) source rows/columns.
    dy = torch.ceil(steps * torch.sin(radians) - 0.5).long()
    dx = torch.ceil(steps * torch.cos(radians) - 0.5).long()
    src_rows = (torch.arange(h, device=x.device) + dy[..., None]).clamp(0, h - 1) * w
    src_cols = (torch.arange(w, device=x.device) + dx[..., None]).clamp(0, w - 1)
    flat = x.reshape(n, c, h * w)
    out = torch.zeros_like(flat)
    for i, weight in enumerate(weights):
        index = (src_rows[:, i, :, None] + src_cols[:, i, None, :]).reshape(n, 1, h * w)
        out.add_(flat.gather(2, index.expand(n, c, h * w)), alpha=weight)
    return out.reshape(n, c, h, w)


def scale_to_max(x: Tensor, value: float) -> Tensor:
    """Scale each image of (N, ...) so that its maximum becomes `value` (all-zero images stay)."""
    peak = x.flatten(1).amax(1).clamp_min(1e-12)
    return x * (value / peak).reshape(-1, *([1] * (x.dim() - 1)))
