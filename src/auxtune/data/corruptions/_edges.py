"""The three OpenCV steps the original's water spatter shades its drops with, batched.

``cv2.Canny``, ``cv2.distanceTransform(DIST_L2, 5)`` and ``cv2.equalizeHist`` on (N, 1, H, W)
float64 tensors holding 8-bit grey levels, with OpenCV's integer and border rules (Sobel with a
replicated border, fixed-point gradient sectors, a zero magnitude beyond the border, 8-connected
hysteresis; the 5x5 chamfer mask in 16.16 fixed point; the equalisation LUT anchored at the
darkest level present). Loops run over relaxation rounds, never over pixels.

    >>> import torch
    >>> step = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    >>> step[..., 4:] = 200
    >>> canny(step, 50, 150)[0, 0, 0].int().tolist()
    [0, 0, 0, 1, 0, 0, 0, 0]
    >>> chamfer_distance(canny(step, 50, 150))[0, 0, 0].tolist()[:4]
    [3.0, 2.0, 1.0, 0.0]
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))
FIXED_ONE = 1 << 15  # Canny's CANNY_SHIFT: tangents in 17.15 fixed point
TAN_22_5 = 13573  # round(tan(22.5 deg) * 2**15), OpenCV's TG22
# 5x5 chamfer mask of DIST_L2: (row offset, column offset, 16.16 fixed-point step cost) for
# steps to the 4 edge neighbours (1), the 4 diagonal ones (1.4) and the 8 knight moves (2.1969).
_ONE, _DIAGONAL, _KNIGHT = 65536, round(1.4 * 65536), round(2.1969 * 65536)
CHAMFER_STEPS = tuple(
    (dy, dx, {1: _ONE, 2: _DIAGONAL, 5: _KNIGHT}[dy * dy + dx * dx])
    for dy in range(-2, 3)
    for dx in range(-2, 3)
    if dy * dy + dx * dx in (1, 2, 5)
)


def _correlate3(x: Tensor, kernel: tuple[tuple[float, ...], ...], border: str) -> Tensor:
    """3x3 correlation of (N, 1, H, W); border "replicate" or "reflect" (OpenCV's REFLECT_101)."""
    weights = torch.tensor(kernel, dtype=x.dtype, device=x.device)[None, None]
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode=border), weights)


def box_blur3(x: Tensor) -> Tensor:
    """cv2.blur(x, (3, 3)): the 3x3 mean with BORDER_REFLECT_101."""
    return F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), 3, stride=1)


def emboss(x: Tensor, kernel: tuple[tuple[float, ...], ...]) -> Tensor:
    """cv2.filter2D(x, cv2.CV_8U, kernel): correlation, BORDER_REFLECT_101, saturated to 0..255."""
    return _correlate3(x, kernel, "reflect").round().clamp(0, 255)


def canny(grey: Tensor, low: float, high: float) -> Tensor:
    """cv2.Canny(grey, low, high) with its defaults (3x3 Sobel, L1 gradient): bool edges.

    A pixel is an edge candidate where its gradient magnitude exceeds ``low`` and is a maximum
    across the edge (compared with the two neighbours in the gradient's sector, ties broken
    towards one side as OpenCV does); candidates 8-connected to one above ``high`` are edges.
    """
    dx = _correlate3(grey, SOBEL_X, "replicate").long()
    dy = _correlate3(grey, tuple(zip(*SOBEL_X)), "replicate").long()
    magnitude = dx.abs() + dy.abs()
    peak = (magnitude > int(low)) & _is_ridge(magnitude, dx, dy)
    return _hysteresis(peak, peak & (magnitude > int(high)))


def _is_ridge(magnitude: Tensor, dx: Tensor, dy: Tensor) -> Tensor:
    """Non-maximum suppression in OpenCV's three sectors (horizontal, vertical, diagonal)."""
    h, w = magnitude.shape[-2:]
    padded = F.pad(magnitude, (1, 1, 1, 1))  # OpenCV's magnitude buffer is 0 beyond the border

    def neighbour(row: int, col: int) -> Tensor:
        return padded[..., 1 + row : 1 + row + h, 1 + col : 1 + col + w]

    tan22 = dx.abs() * TAN_22_5
    steep = dy.abs() * FIXED_ONE
    across_columns = steep < tan22
    across_rows = steep > tan22 + dx.abs() * (2 * FIXED_ONE)
    rising = (dx < 0) == (dy < 0)  # OpenCV: (dx ^ dy) >= 0; zero counts as positive
    m = magnitude
    horizontal = (m > neighbour(0, -1)) & (m >= neighbour(0, 1))
    vertical = (m > neighbour(-1, 0)) & (m >= neighbour(1, 0))
    diagonal = torch.where(
        rising,
        (m > neighbour(-1, -1)) & (m > neighbour(1, 1)),
        (m > neighbour(-1, 1)) & (m > neighbour(1, -1)),
    )
    return torch.where(across_columns, horizontal, torch.where(across_rows, vertical, diagonal))


def _hysteresis(candidates: Tensor, edges: Tensor) -> Tensor:
    """Grow ``edges`` into 8-connected ``candidates`` until nothing changes."""
    while True:
        near = F.max_pool2d(edges.double(), 3, stride=1, padding=1) > 0
        grown = edges | (candidates & near)
        if torch.equal(grown, edges):
            return edges
        edges = grown


def chamfer_distance(zero: Tensor, cap: float | None = None) -> Tensor:
    """cv2.distanceTransform(src, DIST_L2, 5) where ``src`` is 0 exactly at ``zero`` (bool);
    with ``cap``, distances beyond it come out as ``cap`` (as if truncated afterwards).

    The chamfer distance is the cheapest path of mask steps to a zero pixel; relaxing every
    pixel against its 16 mask neighbours until nothing changes finds it (what OpenCV's two raster
    passes compute). A pixel needs as many rounds as its path has steps, so a cap, by leaving
    the far pixels alone, saves most of them. Without a zero pixel (and no cap) every distance is
    huge, as OpenCV's.
    """
    far = 1 << 30 if cap is None else round(cap * _ONE)
    distance = torch.where(zero, 0, far).int()
    h, w = distance.shape[-2:]
    while True:
        padded = F.pad(distance, (2, 2, 2, 2), value=far)
        relaxed = distance
        for dy, dx, cost in CHAMFER_STEPS:
            shifted = padded[..., 2 + dy : 2 + dy + h, 2 + dx : 2 + dx + w]
            relaxed = torch.minimum(relaxed, shifted + cost)
        if torch.equal(relaxed, distance):
            break
        distance = relaxed
    return distance.float().double() / _ONE  # OpenCV converts to float32: exact below 2**24


def equalize_histogram(grey: Tensor) -> Tensor:
    """cv2.equalizeHist of every image: level v -> round(255 * (cdf(v) - n0) / (N - n0)), where
    n0 counts the darkest level present (which maps to 0); a one-level image is left as it is."""
    n = len(grey)
    levels = grey.reshape(n, -1).long()
    hist = torch.zeros(n, 256, dtype=torch.long, device=grey.device)
    hist.scatter_add_(1, levels, torch.ones_like(levels))
    darkest = (hist > 0).long().argmax(1, keepdim=True)
    n0 = hist.gather(1, darkest)
    total = levels.shape[1]
    # float32 as OpenCV's LUT; tensor / tensor divides exactly (scalar / tensor multiplies by
    # a rounded reciprocal, which moves some products off .5 and so rounds them the other way)
    pixels = (total - n0).clamp_min(1).float()
    scale = torch.full_like(pixels, 255.0) / pixels
    lut = ((hist.cumsum(1) - n0).float() * scale).round().clamp(0, 255)
    one_level = n0 == total
    mapped = lut.gather(1, levels).double()
    return torch.where(one_level, levels.double(), mapped).reshape(grey.shape)
