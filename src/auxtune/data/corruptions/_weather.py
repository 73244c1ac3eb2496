"""Weather: snow, frost, fog, brightness, and spatter (liquid on the lens)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Generator, Tensor

from auxtune.data.corruptions._edges import (
    box_blur3,
    canny,
    chamfer_distance,
    emboss,
    equalize_histogram,
)
from auxtune.data.corruptions._ops import (
    clipped_zoom,
    gaussian_filter,
    grey,
    motion_blur,
    plasma_fractal,
    scale_to_max,
)
from auxtune.data.corruptions._registry import register


def _uniform(
    shape: tuple[int, ...], low: float, high: float, gen: Generator, device: torch.device
) -> Tensor:
    return low + (high - low) * torch.rand(shape, generator=gen, device=device)


@register("snow", mean=(0.1, 0.1, 0.15, 0.25, 0.3), std=(0.2, 0.2, 0.3, 0.3, 0.3),
          zoom=(1, 1, 1.75, 2.25, 1.25), threshold=(0.6, 0.5, 0.55, 0.6, 0.65),
          blur_radius=(8, 10, 10, 12, 14), blur_sigma=(3, 4, 4, 6, 12),
          mix=(0.95, 0.9, 0.9, 0.85, 0.8))  # fmt: skip
def snow(x: Tensor, p, gen: Generator) -> Tensor:
    n, _, h, w = x.shape
    flakes = p.mean + p.std * torch.randn((n, 1, h, w), generator=gen, device=x.device)
    flakes = clipped_zoom(flakes, p.zoom)  # larger zoom: larger flakes
    flakes = torch.where(flakes < p.threshold, 0, flakes).clamp(0, 1)
    angles = _uniform((n,), -135, -45, gen, x.device)  # falling, within 45 degrees of vertical
    flakes = motion_blur(flakes, p.blur_radius, p.blur_sigma, angles)
    # A snowy scene is paler: blend towards a brightened grey version of the image.
    pale = torch.maximum(x, grey(x) * 1.5 + 0.5)
    x = p.mix * x + (1 - p.mix) * pale
    return x + flakes + flakes.flip(-2, -1)  # the flip adds a second layer of flakes


# The original adds a random 32x32 crop of one of five photographs of frost (it lists six but
# draws np.random.randint(5)), scaled to 20%. No image files here: each batch draws one frost
# sheet per photograph, a texture with that photograph's colour and contrast (a fractal haze plus
# thin bright ice needles), and every image takes a random crop of a random sheet. What the
# corruption does to an image's pixels depends on the frost's brightness and contrast, not its
# shapes: matching them makes its change match the original's (reference_change.py).
# Mean RGB and standard deviation within a 32x32 crop (RGB), grey levels, measured on 10,000
# random crops of each resized photograph (CIFAR_C.md).
FROST_PHOTOGRAPHS = (
    ((77, 148, 165), (16, 10, 10)),
    ((199, 203, 213), (12, 13, 13)),
    ((198, 203, 212), (12, 13, 13)),
    ((143, 158, 171), (14, 14, 16)),
    ((103, 115, 126), (24, 24, 23)),
)
FROST_SHEET_SIZE = 128  # pixels, a power of two for the plasma fractal
CROP = 32  # pixels: the contrast the photographs' statistics describe is within a crop this size
HAZE_DECAY = 2.0  # plasma fractal wibble decay: fine grain over a gentle large-scale swell
HAZE_WEIGHT = 0.7  # of the haze against the needles, before both are scaled to the contrast
NEEDLES_PER_PIXEL = 1 / 64
NEEDLE_LENGTH = (3.0, 14.0)  # pixels
NEEDLE_WIDTH = 0.6  # pixels, sigma of the Gaussian cross-section


@register("frost", image_weight=(1, 1, 0.9, 0.85, 0.75), frost_weight=(0.2, 0.3, 0.4, 0.4, 0.45))
def frost(x: Tensor, p, gen: Generator) -> Tensor:
    sheets = frost_sheets(FROST_SHEET_SIZE, gen, x.device)
    return p.image_weight * x + p.frost_weight * _random_crops(sheets, len(x), x.shape[-1], gen)


def frost_sheets(size: int, gen: Generator, device: torch.device) -> Tensor:
    """(5, 3, size, size) in [0, 1]: one sheet per photograph, with its mean colour and, within
    any 32x32 crop, its standard deviation per channel (ice lightens all channels together)."""
    photographs = torch.tensor(FROST_PHOTOGRAPHS, device=device) / 255  # (5, mean|std, 3)
    mean, std = photographs[:, 0, :, None, None], photographs[:, 1, :, None, None]
    texture = frost_texture(len(FROST_PHOTOGRAPHS), size, gen, device)[:, None]
    return (mean + std * texture).clamp(0, 1)


def frost_texture(n: int, size: int, gen: Generator, device: torch.device) -> Tensor:
    """(n, size, size) frost pattern with mean 0 and, averaged over its 32x32 crops, standard
    deviation 1 within a crop."""
    haze = plasma_fractal(n, size, HAZE_DECAY, gen, device)
    texture = HAZE_WEIGHT * haze + _ice_needles(n, size, gen, device)
    texture = texture - texture.mean((1, 2), keepdim=True)
    return texture / _std_within_crops(texture[:, None], CROP)[:, None, None]


def _std_within_crops(x: Tensor, crop: int) -> Tensor:
    """(N,): each map's standard deviation within a crop x crop window, averaged over windows
    every crop/4 pixels."""
    stride = crop // 4
    mean = F.avg_pool2d(x, crop, stride)
    variance = (F.avg_pool2d(x * x, crop, stride) - mean * mean).clamp_min(0)
    return variance.sqrt().flatten(1).mean(1)


def _ice_needles(n: int, size: int, gen: Generator, device: torch.device) -> Tensor:
    """(n, size, size) maps of thin bright line segments (the brightest one wins where they cross).

    Ice crystals grow along a hexagonal lattice, so each map picks one orientation and its
    needles point along it or at +-60 degrees from it, with a little jitter. Each needle is drawn
    on a small window around its centre that wraps at the map's edges.
    """
    shape = (n, round(NEEDLES_PER_PIXEL * size * size), 1, 1)  # (map, needle, row, column)
    lattice = _uniform((n, 1, 1, 1), 0, math.pi, gen, device)
    branch = torch.randint(-1, 2, shape, generator=gen, device=device)
    angle = lattice + branch * (math.pi / 3) + _uniform(shape, -0.15, 0.15, gen, device)
    centre_y, centre_x = _uniform((2, *shape), 0, size, gen, device)
    half_length = _uniform(shape, *NEEDLE_LENGTH, gen, device) / 2
    strength = _uniform(shape, 0.3, 1, gen, device)
    reach = math.ceil(NEEDLE_LENGTH[1] / 2 + 3 * NEEDLE_WIDTH)
    window = torch.arange(-reach, reach + 1, device=device)
    rows = centre_y.floor().long() + window[:, None]  # (n, count, window, 1)
    cols = centre_x.floor().long() + window[None, :]  # (n, count, 1, window)
    dy, dx = rows + 0.5 - centre_y, cols + 0.5 - centre_x
    along = dy * torch.sin(angle) + dx * torch.cos(angle)
    beyond = along - torch.maximum(torch.minimum(along, half_length), -half_length)
    distance2 = (dy**2 + dx**2 - along**2).clamp_min(0) + beyond**2
    values = strength * torch.exp(-distance2 / (2 * NEEDLE_WIDTH**2))
    index = (rows % size) * size + cols % size
    maps = torch.zeros(n, size * size, device=device)
    maps.scatter_reduce_(1, index.reshape(n, -1), values.reshape(n, -1), "amax")
    return maps.reshape(n, size, size)


def _random_crops(sheets: Tensor, n: int, size: int, gen: Generator) -> Tensor:
    """(n, C, size, size): each a crop of a random sheet at a random place."""
    count, channels, sheet_size = sheets.shape[:3]
    device = sheets.device
    sheet = torch.randint(0, count, (n, 1, 1, 1), generator=gen, device=device)
    top, left = torch.randint(
        0, sheet_size - size + 1, (2, n, 1, 1, 1), generator=gen, device=device
    )
    offsets = torch.arange(size, device=device)
    rows, cols = top + offsets[:, None], left + offsets[None, :]
    return sheets[sheet, torch.arange(channels, device=device)[:, None, None], rows, cols]


@register("fog", strength=(0.2, 0.5, 0.75, 1, 1.5), wibble_decay=(3, 3, 2.5, 2, 1.75))
def fog(x: Tensor, p, gen: Generator) -> Tensor:
    peak = x.amax((1, 2, 3), keepdim=True)
    haze = plasma_fractal(len(x), x.shape[-1], p.wibble_decay, gen, x.device)[:, None]
    # Rescaling by peak / (peak + strength) keeps the brightest point where it was: fog lowers
    # contrast rather than only brightening.
    return (x + p.strength * haze) * peak / (peak + p.strength)


@register("brightness", stochastic=False, shift=(0.05, 0.1, 0.15, 0.2, 0.3))
def brightness(x: Tensor, p, gen: Generator) -> Tensor:
    """HSV value V + shift. V is the largest channel and, with hue and saturation fixed, every
    channel is proportional to V, so the pixel scales by V'/V; black (V = 0) becomes grey V'."""
    value = x.amax(1, keepdim=True)
    new_value = (value + p.shift).clamp(max=1)
    return torch.where(value > 0, x * (new_value / value.clamp_min(1e-12)), new_value)


WATER_COLOUR = (175 / 255, 238 / 255, 238 / 255)  # pale turquoise
MUD_COLOUR = (63 / 255, 42 / 255, 20 / 255)  # brown
# Directional emboss of the drops' shading: lights their top-left rims (the original's kernel).
EMBOSS = ((-2.0, -1.0, 0.0), (-1.0, 1.0, 1.0), (0.0, 1.0, 2.0))
DROP_EDGES = (50, 150)  # Canny's hysteresis thresholds, in grey levels of the liquid layer
MAX_RIM_DISTANCE = 20  # pixels: drop shading saturates this far from an edge


@register("spatter", loc=(0.62, 0.65, 0.65, 0.65, 0.65), scale=(0.1, 0.1, 0.3, 0.1, 0.1),
          sigma=(0.7, 0.8, 1, 0.7, 0.5), threshold=(0.7, 0.7, 0.69, 0.69, 0.68),
          intensity=(0.5, 0.5, 0.5, 0.6, 0.6), mud=(False, False, False, True, True))  # fmt: skip
def spatter(x: Tensor, p, gen: Generator) -> Tensor:
    n, _, h, w = x.shape
    liquid = p.loc + p.scale * torch.randn((n, 1, h, w), generator=gen, device=x.device)
    liquid = gaussian_filter(liquid, p.sigma)
    liquid = torch.where(liquid < p.threshold, 0, liquid)  # drops: where the blurred noise peaks
    if p.mud:  # the original uses the intensity column as the mud mask's blur sigma
        return _mud(x, liquid > p.threshold, p.intensity)
    colour = torch.tensor(WATER_COLOUR, device=x.device)[None, :, None, None]
    return x + water_highlight(liquid, p.intensity).to(x.dtype) * colour


def water_highlight(liquid: Tensor, intensity: float) -> Tensor:
    """(N, 1, H, W) brightness the water drops add, the original's OpenCV pipeline step by step.

    The liquid layer as 8-bit grey; every pixel's distance to the nearest Canny edge of it
    (capped at 20, blurred); those distances histogram-equalised, embossed and blurred; that
    shading times the liquid, scaled so that each image's brightest highlight is ``intensity``.
    The distances cover the whole image, drops or not: only the product with the liquid keeps
    the highlights on the drops.
    """
    level = (liquid.double() * 255).floor() % 256  # np.uint8 of the float layer
    distance = chamfer_distance(canny(level, *DROP_EDGES), cap=MAX_RIM_DISTANCE)
    distance = box_blur3(distance).float().floor().double()  # float32 blur, then np.uint8
    shading = box_blur3(emboss(equalize_histogram(distance), EMBOSS)).round()  # uint8 blur
    return scale_to_max(level * shading, intensity)


def _mud(x: Tensor, drops: Tensor, blur_sigma: float) -> Tensor:
    """Cover the drops with brown mud; the soft edge of the blurred mask is cut off at 0.8."""
    cover = gaussian_filter(drops.float(), blur_sigma)
    cover = torch.where(cover < 0.8, 0, cover)
    colour = torch.tensor(MUD_COLOUR, device=x.device)[None, :, None, None]
    return x * (1 - cover) + colour * cover
