"""The embedded datasets: drawn from a seed on this machine, cached, never downloaded.

``synthetic`` is the easy one every test and the demo can learn in seconds; ``photo_shapes`` is
the harder one, built from photographs, with a real robustness gap. Both have the same ten shape
classes, and every split is drawn from its own seed (:func:`split_seed`), so no two splits share
an image.

    >>> sorted(EMBEDDED)
    ['photo_shapes', 'synthetic']
    >>> EMBEDDED["synthetic"].source_tags()["generator"]
    'auxtune.data.synthetic'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from auxtune.data import photo_shapes, synthetic

SPLITS = ("train", "val", "holdout", "test")

Loader = Callable[[int, int, "str | None"], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class EmbeddedDataset:
    """How to draw a dataset: its loader (num, seed, cache dir) and what names its version."""

    name: str
    classes: tuple[str, ...]
    load: Loader
    source_tags: Callable[[], dict[str, str]]  # generator, its version, what else fixes the pixels

    @property
    def cache_tag(self) -> str:
        """Part of every cache key (``v4``, ``v1-<photos' sha256>``): a new generator version or
        a changed photograph never reads a stale file."""
        tags = self.source_tags()
        photos = tags.get("photos_sha256")
        return f"v{tags['generator_version']}" + (f"-{photos[:12]}" if photos else "")


def _synthetic_tags() -> dict[str, str]:
    return {
        "generator": "auxtune.data.synthetic",
        "generator_version": str(synthetic.GENERATOR_VERSION),
    }


def _photo_shapes_tags() -> dict[str, str]:
    from importlib.metadata import version

    return {
        "generator": "auxtune.data.photo_shapes",
        "generator_version": str(photo_shapes.GENERATOR_VERSION),
        "photos": f"scikit-image {version('scikit-image')} sample data, public domain or CC0",
        "photos_sha256": photo_shapes.photo_digest(),
    }


EMBEDDED: dict[str, EmbeddedDataset] = {
    "synthetic": EmbeddedDataset(
        "synthetic", synthetic.SYNTHETIC_CLASSES, synthetic.load_synthetic, _synthetic_tags
    ),
    "photo_shapes": EmbeddedDataset(
        "photo_shapes",
        photo_shapes.PHOTO_SHAPES_CLASSES,
        photo_shapes.load_photo_shapes,
        _photo_shapes_tags,
    ),
}


def split_seed(seed: int, split: str) -> int:
    """Each split is drawn from its own seed, so no two splits share an image."""
    return seed * len(SPLITS) + SPLITS.index(split)
