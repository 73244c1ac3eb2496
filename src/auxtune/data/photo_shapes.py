"""``photo_shapes``: the ten synthetic shape classes cut out of photographs and laid on others.

A harder embedded dataset, closer to natural images than :mod:`~auxtune.data.synthetic`: every
image is a random 32x32 crop of a natural photograph (the scene), with one of the ten upright
shapes of ``synthetic`` (triangle, arrow, house, T, L, E, F, bar pyramid, face, mushroom) filled
with a crop of another photograph (the material), tinted, and pasted in with a random contrast,
in thinner strokes than ``synthetic``'s. The class is the shape alone: scenes, materials, tints
and contrast are drawn independently of it, so the classifier has to find a thin outline in
photographic clutter, and blur, fog, low contrast or noise can hide it, as they hide objects in
photos. The scenes are upright photos, so rotation prediction carries signal from both the
shape and the scene; tints keep ``synthetic``'s warm lean, so a channel permutation shows.

    >>> images, labels = make_photo_shapes(20, seed=0)
    >>> images.shape, images.dtype, labels.dtype, sorted(set(labels.tolist())) == list(range(10))
    ((20, 32, 32, 3), dtype('uint8'), dtype('int64'), True)

The photographs are scikit-image's sample data (:data:`PHOTOS`), which its wheel ships; each is
in the public domain or under CC0 (the licence of each is in :data:`PHOTOS`). Nothing is
downloaded: a missing or changed photo file fails with one line naming it, and
:func:`photo_digest` (a sha256 of the photo files) is part of the dataset's MLflow source.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from auxtune.data._files import cached_arrays
from auxtune.data.synthetic import (
    SHAPES,
    SIZE,
    SYNTHETIC_CLASSES,
    Pose,
    _coverage,
    _hsv_colour,
    _pixel_grid,
    _uniform,
    cache_dir,
)
from auxtune.errors import DataError

#: Bump when the drawing changes: cached files are keyed by it, so stale caches are never read.
GENERATOR_VERSION = 1
#: Thinner strokes than ``synthetic``'s (1.0-2.6 pixels wide against 2.6-4.9), which blur,
#: pixelation and elastic warps can break, and a freer pose: larger and smaller, tilted more,
#: anywhere in 60 % of the free room.
POSE = Pose(scale=(0.7, 0.9), tilt_degrees=8.0, room_share=0.6, half_stroke=(0.045, 0.09))
#: Brightness contrast of a shape's material against the scene under it (either sign).
CONTRAST = (0.45, 0.7)
#: Side of the photo region a 32x32 crop covers, in pixels of the original photograph: wide
#: views, a scene shrunk 6 to 16 times (close-ups of grass or gravel look like noise at 32
#: pixels).
SCENE_SIDES = (192, 256, 384, 512)
#: The scene is out of focus behind the shape (depth of field): a Gaussian blur of sigma in
#: this range, in pixels. In focus, the photos' fine texture teaches the network to ignore
#: noise, and the noise corruptions cost nothing (measured).
SCENE_BLUR = (0.75, 1.75)
SCENES = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "camera.png")
#: What shapes are made of: (photo, side of the region a crop covers), drawn independently of
#: the class.
MATERIALS: tuple[tuple[str, int], ...] = (
    ("brick.png", 384),
    ("grass.png", 384),
    ("gravel.png", 384),
    ("chelsea.png", 256),
    ("coffee.png", 256),
    ("astronaut.png", 256),
    ("rocket.jpg", 256),
    ("camera.png", 256),
)


@dataclass(frozen=True)
class Photo:
    file: str  # in scikit-image's data directory
    licence: str


PHOTOS: tuple[Photo, ...] = (
    Photo("astronaut.png", "public domain (NASA)"),
    Photo("coffee.png", "CC0 (Rachel Michetti)"),
    Photo("chelsea.png", "CC0 (Stefan van der Walt)"),
    Photo("rocket.jpg", "public domain (SpaceX)"),
    Photo("camera.png", "CC0 (Lav Varshney)"),
    Photo("brick.png", "CC0 (CC0Textures, Bricks25)"),
    Photo("grass.png", "CC0 (linolafett, DeviantArt)"),
    Photo("gravel.png", "CC0 (CC0Textures, Gravel04)"),
)
PHOTO_SHAPES_CLASSES = SYNTHETIC_CLASSES  # the same ten shapes

Array = np.ndarray


# ------------------------------------------------------------------------------- photographs
def photo_dir() -> Path:
    """scikit-image's sample-data directory (in its wheel; no download)."""
    import importlib.util

    spec = importlib.util.find_spec("skimage")
    if spec is None or spec.origin is None:
        raise DataError(
            "data.dataset=photo_shapes needs scikit-image's sample photographs: "
            "pip install scikit-image (a dependency of auxtune)"
        )
    return Path(spec.origin).parent / "data"


def _photo_file(photo: Photo) -> Path:
    path = photo_dir() / photo.file
    if not path.is_file():
        raise DataError(
            f"photo_shapes: scikit-image's sample photograph {path} is missing; reinstall "
            "scikit-image (pip install --force-reinstall scikit-image)"
        )
    return path


@functools.cache
def photo_digest() -> str:
    """sha256 over the photo files' bytes, in :data:`PHOTOS` order: names their exact version."""
    digest = hashlib.sha256()
    for photo in PHOTOS:
        digest.update(_photo_file(photo).read_bytes())
    return digest.hexdigest()


@functools.cache
def _plane(file: str, side: int) -> Array:
    """The photo as float32 RGB in [0, 1], resized so that a 32-pixel crop spans ``side`` of its
    original pixels (box filter: a wide view is a smooth, shrunk scene)."""
    from PIL import Image

    photo = next(p for p in PHOTOS if p.file == file)
    with Image.open(_photo_file(photo)) as image:
        rgb = image.convert("RGB")
        factor = SIZE / side
        size = (max(SIZE, round(rgb.width * factor)), max(SIZE, round(rgb.height * factor)))
        return np.asarray(rgb.resize(size, Image.Resampling.BOX), dtype=np.float32) / 255.0


def _crops(rng: np.random.Generator, sources: list[tuple[str, int]], which: Array) -> Array:
    """One random 32x32 crop (place, left-right flip) of ``sources[which[i]]`` per image."""
    n = len(which)
    corner, flip = rng.random((n, 2)), rng.random(n) < 0.5
    out = np.empty((n, SIZE, SIZE, 3), np.float32)
    for i in range(n):
        plane = _plane(*sources[which[i]])
        top = int(corner[i, 0] * (plane.shape[0] - SIZE + 1))
        left = int(corner[i, 1] * (plane.shape[1] - SIZE + 1))
        crop = plane[top : top + SIZE, left : left + SIZE]
        out[i] = crop[:, ::-1] if flip[i] else crop
    return out


# ------------------------------------------------------------------------------------ drawing
def _tinted(rng: np.random.Generator, crops: Array) -> Array:
    """Crops recoloured: their luminance times a random colour of ``synthetic``'s warm palette,
    mixed with their own colours by a random share (grey photos get a colour, colour ones a cast)."""
    n = len(crops)
    grey = crops.mean(axis=-1, keepdims=True)
    tint = _hsv_colour(rng, rng.uniform(0.6, 1.0, n))[:, None, None, :] / 0.8
    share = _uniform(rng, 0.3, 1.0, n)[..., None]
    return np.clip(share * grey * tint + (1 - share) * crops, 0.0, 1.0)


def _contrasted(rng: np.random.Generator, material: Array, scene: Array, mask: Array) -> Array:
    """``material`` shifted so its mean brightness differs from the scene's under ``mask`` by a
    random CONTRAST, brighter or darker."""
    n = len(scene)
    weight = mask[..., None] + 1e-6
    under = (scene * weight).sum(axis=(1, 2, 3)) / (3 * weight.sum(axis=(1, 2, 3)))
    gap = rng.uniform(*CONTRAST, n) * np.where(rng.random(n) < 0.5, -1.0, 1.0)
    gap = np.where(under + gap > 1.0, -np.abs(gap), np.where(under + gap < 0.0, np.abs(gap), gap))
    shift = under + gap - material.mean(axis=(1, 2, 3))
    return np.clip(material + shift[:, None, None, None], 0.0, 1.0)


def _defocused(rng: np.random.Generator, images: Array, sigma: tuple[float, float]) -> Array:
    """Each image blurred by a Gaussian of a random sigma in pixels (0: left sharp)."""
    from scipy.ndimage import gaussian_filter

    sigmas = rng.uniform(*sigma, len(images))
    out = np.empty_like(images)
    for i, s in enumerate(sigmas):
        out[i] = gaussian_filter(images[i], (s, s, 0), mode="reflect") if s > 0 else images[i]
    return out


def make_photo_shapes(num: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``num`` images, as balanced over the 10 classes as ``num`` allows, deterministically.

    Returns uint8 images (num, 32, 32, 3) and int64 labels (num,). The same (num, seed) always
    gives the same arrays; different seeds give different images.
    """
    if num < 0 or seed < 0:
        raise ValueError(
            f"make_photo_shapes needs num >= 0 and seed >= 0, got num={num}, seed={seed}"
        )
    for photo in PHOTOS:  # every photograph there, or one line naming the first one missing
        _photo_file(photo)
    rng = np.random.default_rng([GENERATOR_VERSION, seed, 1])  # 1: not synthetic's stream
    labels = rng.permutation(np.arange(num) % len(SHAPES)).astype(np.int64)
    x, y = _pixel_grid()
    scenes = [(file, side) for file in SCENES for side in SCENE_SIDES]
    image = _tinted(rng, _crops(rng, scenes, rng.integers(len(scenes), size=num)))
    image = _defocused(rng, image, SCENE_BLUR)
    mask = _coverage(labels, rng, x, y, POSE)
    material = _tinted(rng, _crops(rng, list(MATERIALS), rng.integers(len(MATERIALS), size=num)))
    image += mask[..., None] * (_contrasted(rng, material, image, mask) - image)
    return (np.clip(image, 0.0, 1.0) * 255).astype(np.uint8), labels


# -------------------------------------------------------------------------------------- cache
def load_photo_shapes(
    num: int, seed: int, data_dir: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`make_photo_shapes`, cached as ``.npz`` under the embedded data's cache directory."""
    name = f"photo_shapes-v{GENERATOR_VERSION}-{photo_digest()[:12]}-seed{seed}-n{num}.npz"
    return cached_arrays(cache_dir(data_dir) / name, lambda: make_photo_shapes(num, seed))
