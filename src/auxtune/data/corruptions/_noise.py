"""Noise: gaussian, shot (Poisson), impulse (salt and pepper) and speckle."""

from __future__ import annotations

import torch

from auxtune.data.corruptions._registry import register


def _normal(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)


@register("gaussian_noise", sigma=(0.04, 0.06, 0.08, 0.09, 0.10))
def gaussian_noise(x, p, gen):
    return x + p.sigma * _normal(x, gen)


@register("shot_noise", photons=(500, 250, 100, 75, 50))
def shot_noise(x, p, gen):
    # A pixel of intensity x collects Poisson(x * photons) photons: fewer photons, more noise.
    return torch.poisson(x * p.photons, generator=gen) / p.photons


@register("impulse_noise", amount=(0.01, 0.02, 0.03, 0.05, 0.07))
def impulse_noise(x, p, gen):
    # skimage's "s&p": each value (not pixel) flips with probability `amount`, half to 0, half
    # to 1. One uniform draw decides both: below amount/2 salt, between amount/2 and amount pepper.
    draw = torch.rand(x.shape, generator=gen, device=x.device)
    return torch.where(draw < p.amount, (draw < p.amount / 2).to(x.dtype), x)


@register("speckle_noise", c=(0.06, 0.10, 0.12, 0.16, 0.20))
def speckle_noise(x, p, gen):
    # Multiplicative noise: its standard deviation grows with the intensity.
    return x + x * p.c * _normal(x, gen)
