"""Train / val / holdout / test splits of the configured dataset, and its corrupted test set.

    >>> from auxtune.robust.config import DataConfig
    >>> import tempfile
    >>> cache = tempfile.mkdtemp()
    >>> cfg = DataConfig(num_train=20, num_val=10, num_test=10, holdout=10, data_dir=cache)
    >>> splits = load_dataset(cfg)
    >>> splits.name, splits.num_classes, len(splits.train), splits.test.images.shape
    ('synthetic', 10, 20, (10, 32, 32, 3))

``holdout`` is the pool the leak-free meta-validation protocol draws from: images of the training
distribution the classifier never trains on, never test images.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import auxtune
from auxtune.data.cifar import LAYOUTS, load_cifar
from auxtune.data.cifar_c import CorruptedTestSet, read_manifest
from auxtune.data.embedded import EMBEDDED, split_seed
from auxtune.data.synthetic import cache_dir
from auxtune.errors import DataError
from auxtune.robust.config import DataConfig


@dataclass(frozen=True)
class ImageSet:
    """uint8 images (N, 32, 32, 3) and their int64 labels (N,)."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, index: np.ndarray) -> ImageSet:
        return ImageSet(self.images[index], self.labels[index])


@dataclass(frozen=True)
class DatasetSplits:
    train: ImageSet
    val: ImageSet  # model selection and early stopping
    holdout: ImageSet  # meta-validation pool of the ``holdout`` protocol; disjoint from the rest
    test: ImageSet
    num_classes: int
    name: str


def load_dataset(cfg: DataConfig) -> DatasetSplits:
    """The four splits of ``cfg.dataset`` (an embedded one is generated or read from its cache)."""
    if cfg.dataset in EMBEDDED:
        return _embedded_splits(cfg)
    return _cifar_splits(cfg)


def _embedded_splits(cfg: DataConfig) -> DatasetSplits:
    dataset = EMBEDDED[cfg.dataset]
    sizes = {
        "train": cfg.num_train,
        "val": cfg.num_val,
        "holdout": cfg.holdout,
        "test": cfg.num_test,
    }
    sets = {
        split: ImageSet(*dataset.load(num, split_seed(cfg.seed, split), cfg.data_dir))
        for split, num in sizes.items()
    }
    return DatasetSplits(**sets, num_classes=len(dataset.classes), name=dataset.name)


def _cifar_splits(cfg: DataConfig) -> DatasetSplits:
    """val and holdout are disjoint random slices of the training split (fixed by ``cfg.seed``)."""
    name = cfg.dataset
    full = ImageSet(*load_cifar(name, cfg.data_dir, train=True, download=cfg.download))
    test = ImageSet(*load_cifar(name, cfg.data_dir, train=False, download=cfg.download))
    kept_out = cfg.holdout + cfg.num_val
    if kept_out >= len(full):
        raise DataError(
            f"data.holdout + data.num_val = {kept_out} leaves no training images of the "
            f"{len(full)} in {name}'s training split"
        )
    order = np.random.default_rng([cfg.seed, 0]).permutation(len(full))
    holdout, val = order[: cfg.holdout], order[cfg.holdout : kept_out]
    train = np.sort(order[kept_out:])
    return DatasetSplits(
        train=full.take(train),
        val=full.take(np.sort(val)),
        holdout=full.take(np.sort(holdout)),
        test=test,
        num_classes=LAYOUTS[name].num_classes,
        name=name,
    )


def load_corrupted_test(
    cfg: DataConfig, splits: DatasetSplits | None = None, *, skip_first: int = 0
) -> CorruptedTestSet:
    """The corrupted test set: ``cfg.corruptions_dir``, or for embedded data one made (and cached).

    Keeps the first ``cfg.c_images_per_block`` images of every block (0 = all) after skipping
    ``skip_first`` (the ``paper`` protocol's meta-validation images). With ``splits`` the labels
    are checked against the test split's. An embedded set is made from just the test images it
    keeps (and skips), so each (skip, keep) pair has its own cached set.
    """
    first_k = cfg.c_images_per_block
    if cfg.corruptions_dir:
        expected = None if splits is None else splits.test.labels
        return CorruptedTestSet(
            cfg.corruptions_dir, expected_labels=expected, skip_first=skip_first, first_k=first_k
        )
    if cfg.dataset not in EMBEDDED:
        raise DataError(
            f"data.corruptions_dir is not set: point it at the {cfg.dataset.upper()}-C directory "
            f"(<corruption>.npy + labels.npy), or make one with "
            f"`auxtune data make-c --dataset {cfg.dataset} --data-dir DIR --out DIR`"
        )
    test = (splits or _embedded_splits(cfg)).test
    if first_k:  # corrupt only the images evaluated (the demo: 50 of 1,000 per block)
        test = test.take(np.arange(min(len(test), skip_first + first_k)))
    root = _embedded_c(cfg, test)
    return CorruptedTestSet(
        root, expected_labels=test.labels, skip_first=skip_first, first_k=first_k
    )


def _embedded_c(cfg: DataConfig, test: ImageSet) -> Path:
    """Corrupted embedded test split, made once into the cache (built aside, then renamed in)."""
    from auxtune.data.make_c import make_c

    dataset = EMBEDDED[cfg.dataset]
    seed = split_seed(cfg.seed, "test")
    # the first n images of a split depend on its size (data.num_test): both name the set
    key = (
        f"{dataset.name}-c-{dataset.cache_tag}-seed{seed}-n{len(test)}-of{cfg.num_test}"
        f"-auxtune{auxtune.__version__}"
    )
    root = cache_dir(cfg.data_dir) / key
    if read_manifest(root) is not None:
        return root
    staging = root.with_name(f".{key}.{os.getpid()}.tmp")
    make_c(
        test.images,
        test.labels,
        staging,
        seed=seed,
        progress=sys.stderr.isatty(),
        base=dataset.name,
    )
    if read_manifest(root) is None:  # still missing: no other process finished meanwhile
        shutil.rmtree(root, ignore_errors=True)  # an interrupted earlier build
        try:
            os.rename(staging, root)
            return root
        except OSError:  # another process renamed its identical copy in first
            pass
    shutil.rmtree(staging, ignore_errors=True)
    return root
