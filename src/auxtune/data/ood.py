"""Out-of-distribution image sets: held-out classes, noise, CIFAR-100, or a file of your own.

Held-out classes are removed from every split and the remaining classes renumbered 0..K'-1, so
the in-distribution model never sees them:

    >>> from auxtune.data.datasets import DatasetSplits, ImageSet
    >>> def part(labels):
    ...     return ImageSet(np.zeros((len(labels), 32, 32, 3), np.uint8), np.array(labels))
    >>> splits = DatasetSplits(*(part([0, 1, 2, 3]) for _ in range(4)), num_classes=4, name="toy")
    >>> kept = hold_out_classes(splits, (1,))
    >>> kept.num_classes, kept.train.labels.tolist(), len(kept.test)
    (3, [0, 1, 2], 3)

Noise images follow Hendrycks et al.'s outlier-exposure benchmarks: ``uniform`` pixels i.i.d.
U[0, 1]; ``gaussian`` pixels i.i.d. N(0.5, 1) clipped to [0, 1] (so mostly saturated).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from auxtune.data.cifar import load_cifar
from auxtune.data.datasets import DatasetSplits, ImageSet
from auxtune.data.embedded import SPLITS
from auxtune.errors import DataError

IMAGE_SHAPE = (32, 32, 3)  # what every model here takes: uint8 height x width x RGB
NOISE_SETS = ("uniform", "gaussian")


def hold_out_classes(splits: DatasetSplits, classes: tuple[int, ...]) -> DatasetSplits:
    """``splits`` without the images of ``classes``, the other classes renumbered in order."""
    if not classes:
        return splits
    bad = [c for c in classes if not 0 <= c < splits.num_classes]
    if bad:
        raise DataError(
            f"ood: class {bad[0]} does not exist; {splits.name} has classes 0..{splits.num_classes - 1}"
        )
    if len(classes) >= splits.num_classes - 1:
        raise DataError(
            f"ood: holding out {len(classes)} of {splits.num_classes} classes leaves fewer than "
            "two to train on"
        )
    new_label = class_map(splits.num_classes, classes)
    kept = {}
    for split in SPLITS:
        images = getattr(splits, split)
        keep = new_label[images.labels] >= 0
        kept[split] = ImageSet(images.images[keep], new_label[images.labels[keep]])
    return DatasetSplits(**kept, num_classes=splits.num_classes - len(classes), name=splits.name)


def class_map(num_classes: int, held_out: tuple[int, ...]) -> np.ndarray:
    """(K,) new label of every original class, -1 for the held-out ones."""
    mapping = np.full(num_classes, -1, np.int64)
    kept = [c for c in range(num_classes) if c not in held_out]
    mapping[kept] = np.arange(len(kept))
    return mapping


def noise_images(kind: str, num: int, seed: int) -> np.ndarray:
    """``num`` uint8 noise images (``uniform`` or ``gaussian``), seeded."""
    rng = np.random.default_rng([seed, NOISE_SETS.index(kind), 0x00D])
    shape = (num, *IMAGE_SHAPE)
    pixels = rng.random(shape) if kind == "uniform" else rng.normal(0.5, 1.0, shape)
    return np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8)


def cifar100_images(data_dir: str | Path | None) -> np.ndarray:
    """The CIFAR-100 test images: OOD for a CIFAR-10 model (no class is shared)."""
    return load_cifar("cifar100", data_dir, train=False)[0]


def check_images(images: np.ndarray, source: str) -> np.ndarray:
    """``images`` if they are uint8 (N, 32, 32, 3) with N >= 1, else a one-line :class:`DataError`."""
    if images.ndim != 4 or images.shape[1:] != IMAGE_SHAPE or len(images) == 0:
        raise DataError(
            f"{source}: OOD images have shape {tuple(images.shape)}; expected (N, 32, 32, 3) "
            "(height, width, RGB), as the model's training images"
        )
    if images.dtype != np.uint8:
        raise DataError(f"{source}: OOD images are {images.dtype}; expected uint8 pixels 0..255")
    return images


def load_image_file(path: str | Path) -> np.ndarray:
    """OOD images from a ``.npy`` array or the ``images`` array of an ``.npz`` file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"{path} does not exist: pass a .npy or .npz file of uint8 (N, 32, 32, 3)")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise DataError(f"{path} is not a .npy or .npz file: {err}".splitlines()[0]) from err
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            if "images" not in loaded.files:
                found = ", ".join(loaded.files) or "nothing"
                raise DataError(f"{path} has no 'images' array (it holds {found})")
            loaded = loaded["images"]
    return check_images(loaded, str(path))
