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
