"""The 19 CIFAR-10-C corruptions, batched on torch tensors (CPU or CUDA) and seeded.

Parameters per severity follow Hendrycks & Dietterich's CIFAR script (see shared/CIFAR_C.md);
`corruption_parameters` shows them. Frost uses a procedural texture with the colour and contrast
of the original's photographs instead of the photographs, and the ImageMagick motion blur is
re-implemented, so those two only resemble the released files. How much each corruption changes
natural images, per severity, is in `reference_change` (the original's figures, which tests hold
these implementations to).

>>> images = sample_images(4)
>>> corrupt(images, "fog", 3, seed=1).shape
(4, 32, 32, 3)
>>> corruption_parameters("glass_blur", 4)
GlassBlurParameters(sigma=0.25, max_delta=1, iterations=2)
"""

from __future__ import annotations

import hashlib
from typing import Any, TypeVar

import numpy as np
import torch

# Importing the family modules fills the registry.
from auxtune.data.corruptions import _blur, _digital, _noise, _weather  # noqa: F401
from auxtune.data.corruptions._registry import REGISTRY, SEVERITIES
from auxtune.data.corruptions._samples import natural_images, sample_images

STANDARD_CORRUPTIONS: tuple[str, ...] = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur",
    "motion_blur", "zoom_blur", "snow", "frost", "fog", "brightness", "contrast",
    "elastic_transform", "pixelate", "jpeg_compression",
)  # fmt: skip
EXTRA_CORRUPTIONS: tuple[str, ...] = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
CORRUPTIONS: tuple[str, ...] = STANDARD_CORRUPTIONS + EXTRA_CORRUPTIONS
assert set(CORRUPTIONS) == set(REGISTRY), "every corruption is registered exactly once"

# Images per internal batch: bounds the float intermediates (a few tens of MB each).
CHUNK = 1000
IMAGE_SHAPE = (32, 32, 3)

Images = TypeVar("Images", np.ndarray, torch.Tensor)


def corrupt(images: Images, name: str, severity: int, *, seed: int = 0) -> Images:
    """Corrupt a batch of uint8 images (N, 32, 32, 3); numpy in -> numpy out, tensor in -> tensor
    out on the same device. Randomness comes from a generator seeded with (seed, name, severity),
    so the result does not depend on global RNG state; the draws are consumed in batch order, so
    the same images split into other batches get other (equally valid) draws.

    >>> out = corrupt(sample_images(2), "gaussian_noise", 5, seed=0)
    >>> bool((out == corrupt(sample_images(2), "gaussian_noise", 5, seed=0)).all())
    True
    """
    params = corruption_parameters(name, severity)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    x = _as_uint8_tensor(images)
    gen = torch.Generator(device=x.device)
    gen.manual_seed(_stream_seed(seed, name, severity))
    out = torch.empty_like(x)
    for start in range(0, len(x), CHUNK):
        # Contiguous (N, C, H, W): the matrix filters run ~2x slower on a channels-last view.
        chunk = x[start : start + CHUNK].permute(0, 3, 1, 2).contiguous().float().div_(255)
        corrupted = REGISTRY[name].fn(chunk, params, gen)
        out[start : start + CHUNK] = _to_uint8(corrupted).permute(0, 2, 3, 1)
    return out.numpy() if isinstance(images, np.ndarray) else out


def corruption_parameters(name: str, severity: int) -> Any:
    """The parameter tuple of one corruption at one severity, as a named tuple in the order of
    the table in CIFAR_C.md (units: fractions of the [0, 1] range, pixels, or degrees)."""
    if name not in REGISTRY:
        raise ValueError(f"unknown corruption {name!r}; valid: {', '.join(CORRUPTIONS)}")
    if isinstance(severity, bool) or severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")
    return REGISTRY[name].parameters[severity - 1]


def is_stochastic(name: str) -> bool:
    """Whether the corruption draws random numbers (so its output depends on the seed)."""
    corruption_parameters(name, SEVERITIES[0])  # validates the name
    return REGISTRY[name].stochastic


def _as_uint8_tensor(images: Any) -> torch.Tensor:
    if isinstance(images, np.ndarray):
        tensor = torch.from_numpy(np.ascontiguousarray(images))
    elif isinstance(images, torch.Tensor):
        tensor = images
    else:
        raise ValueError(
            f"images must be a numpy array or torch tensor, got {type(images).__name__}"
        )
    if tensor.dtype != torch.uint8 or tensor.dim() != 4 or tuple(tensor.shape[1:]) != IMAGE_SHAPE:
        raise ValueError(
            f"images must be uint8 of shape (N, 32, 32, 3), got {tensor.dtype} {tuple(tensor.shape)}"
        )
    return tensor


def _stream_seed(seed: int, name: str, severity: int) -> int:
    """A stable 63-bit seed per (seed, corruption, severity): Python's hash() is salted per run."""
    digest = hashlib.blake2b(f"{seed}/{name}/{severity}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Truncate like the original's np.uint8(...), in place (x is a corruption's own output).

    The 1e-3 grey level absorbs float32 round-off, so that a value meant to be a whole grey level
    is not floored one level down; to(uint8) truncates non-negative values.
    """
    return x.mul_(255).add_(1e-3).clamp_(0, 255).to(torch.uint8)


__all__ = [
    "CORRUPTIONS",
    "EXTRA_CORRUPTIONS",
    "SEVERITIES",
    "STANDARD_CORRUPTIONS",
    "corrupt",
    "corruption_parameters",
    "is_stochastic",
    "natural_images",
    "sample_images",
]
