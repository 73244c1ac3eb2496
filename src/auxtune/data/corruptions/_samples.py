"""Synthetic natural-looking images for tests, benchmarks and demos (no download needed)."""

from __future__ import annotations

import numpy as np


def sample_images(n: int, seed: int = 0, size: int = 32) -> np.ndarray:
    """uint8 (n, size, size, 3): a smooth two-colour gradient, three soft-edged discs, a bar and
    a faint ripple, so that noise, blur, geometry and colour corruptions all have something to
    act on (edges, flat areas, gradients, saturated and grey regions).

    >>> sample_images(2).shape
    (2, 32, 32, 3)
    """
    rng = np.random.default_rng(seed)
    coords = (np.arange(size) + 0.5) / size
    rows, cols = np.meshgrid(coords, coords, indexing="ij")
    angle = rng.uniform(0, 2 * np.pi, (n, 1, 1))
    ramp = np.clip(np.cos(angle) * (cols - 0.5) + np.sin(angle) * (rows - 0.5) + 0.5, 0, 1)
    low, high = rng.uniform(0.1, 0.9, (2, n, 1, 1, 3))
    images = low + (high - low) * ramp[..., None]
    for _ in range(3):
        centre = rng.uniform(0, 1, (2, n, 1, 1))
        radius = rng.uniform(0.08, 0.3, (n, 1, 1))
        distance = np.hypot(rows - centre[0], cols - centre[1])
        images = _paint(images, (radius - distance) * size, rng)
    bar_row, bar_half = rng.uniform(0.2, 0.8, (n, 1, 1)), rng.uniform(0.03, 0.1, (n, 1, 1))
    images = _paint(images, (bar_half - np.abs(rows - bar_row)) * size, rng)
    frequency = rng.uniform(2, 6, (n, 1, 1, 1))
    images += 0.03 * np.sin(2 * np.pi * frequency * (rows + cols)[..., None])
    return np.round(np.clip(images, 0, 1) * 255).astype(np.uint8)


def _paint(images: np.ndarray, inside_px: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blend a random colour where `inside_px` (signed distance in pixels) > 0, edge ~1 px wide."""
    colour = rng.uniform(0, 1, (len(images), 1, 1, 3))
    alpha = np.clip(inside_px + 0.5, 0, 1)[..., None]
    return images * (1 - alpha) + colour * alpha


# Photographs' statistics the natural-like images follow (CIFAR-10's test set: mean grey level
# about 120, whole-set standard deviation about 62, of which about 50 within an image).
NATURAL_MEAN = 120.0  # grey levels, mean over images
NATURAL_MEAN_SPREAD = 32.0  # standard deviation of an image's mean
NATURAL_CONTRAST = (25.0, 70.0)  # range of an image's standard deviation (uniform)
CHROMA = 0.2  # colour-opponent contrast relative to the luminance contrast
TINT = 12.0  # standard deviation of an image's colour cast, grey levels per channel


def natural_images(n: int, seed: int = 0, size: int = 32) -> np.ndarray:
    """uint8 (n, size, size, 3) random images with the second-order statistics of photographs:
    amplitude spectrum 1/f (scale invariance), a luminance field plus weaker colour-opponent
    fields, a random mean, contrast and colour cast per image, clipped like an exposure.

    The reference figures of how much each corruption changes natural images (:mod:`~auxtune.data.corruptions.reference_change`)
    are computed on these: on them the frost and spatter of the issue's comparison change images
    as much as they did on real photographs.

    >>> images = natural_images(64)
    >>> images.shape, bool(100 < images.mean() < 140)
    ((64, 32, 32, 3), True)
    """
    rng = np.random.default_rng(seed)
    luminance = _one_over_f(rng, n, size)
    red_green, yellow_blue = _one_over_f(rng, 2 * n, size).reshape(2, n, size, size)
    channels = np.stack(
        [
            luminance + CHROMA * (red_green + 0.5 * yellow_blue),
            luminance + CHROMA * (-red_green + 0.5 * yellow_blue),
            luminance - CHROMA * yellow_blue,
        ],
        -1,
    )
    contrast = rng.uniform(*NATURAL_CONTRAST, (n, 1, 1, 1))
    mean = rng.normal(NATURAL_MEAN, NATURAL_MEAN_SPREAD, (n, 1, 1, 1))
    tint = rng.normal(0, TINT, (n, 1, 1, 3))
    return np.clip(np.round(channels * contrast + mean + tint), 0, 255).astype(np.uint8)


def _one_over_f(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """(n, size, size) Gaussian fields with amplitude spectrum 1/f, mean 0 and std 1 each."""
    frequency = np.fft.fftfreq(size)
    radius = np.hypot(frequency[:, None], frequency[None, :])
    radius[0, 0] = np.inf  # no DC: the mean is set separately
    spectrum = np.fft.fft2(rng.standard_normal((n, size, size))) / radius
    fields = np.fft.ifft2(spectrum).real
    fields -= fields.mean((1, 2), keepdims=True)
    return fields / fields.std((1, 2), keepdims=True)
