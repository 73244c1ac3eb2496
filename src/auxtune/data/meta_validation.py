"""Meta-validation batches: the corrupted images whose loss the meta-gradient lowers.

Two protocols:

- ``holdout`` (default, leak-free): the held-out slice of the training split, each image under a
  seeded random one of the 4 *extra* corruptions (speckle_noise, gaussian_blur, spatter, saturate)
  at a random severity. Neither test images nor the 15 test corruptions ever appear.
- ``paper`` (Kim, Lee & Suh, for reproduction): the first 100 images of every severity block of all
  19 CIFAR-C files. The test corruptions leak into training, and evaluation must skip those images
  (:func:`evaluation_skip` says how many).

A stream is endless and indexable: ``stream.batch(i)`` depends only on (pool, seed, i), so a resumed
run draws exactly the batches it would have drawn.

    >>> import numpy as np
    >>> stream = MetaValidationStream(np.zeros((4, 32, 32, 3), np.uint8), np.arange(4),
    ...                               batch_size=3, seed=0, protocol="holdout", corruptions=())
    >>> images, labels = stream.batch(7)
    >>> images.shape, np.array_equal(labels, stream.batch(7)[1])
    ((3, 32, 32, 3), True)
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator, Sequence

import numpy as np

from auxtune.data.cifar_c import SEVERITIES
from auxtune.data.datasets import DatasetSplits, ImageSet, load_corrupted_test
from auxtune.errors import DataError
from auxtune.robust.config import DataConfig, TrainConfig

PROTOCOLS = ("holdout", "paper")
PAPER_PROTOCOL_SKIP = 100  # images at the start of every CIFAR-C block the paper meta-validates on


class MetaValidationStream:
    """Endless seeded batches of ``batch_size`` images from a fixed pool (uint8 NHWC, int64)."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        *,
        batch_size: int,
        seed: int,
        protocol: str,
        corruptions: Sequence[str],
    ) -> None:
        if len(images) == 0 or len(images) != len(labels):
            raise DataError(f"meta-validation pool ({protocol}) has no images")
        self.images, self.labels = images, np.asarray(labels, dtype=np.int64)
        self.batch_size, self.seed, self.protocol = batch_size, seed, protocol
        self.corruptions = tuple(corruptions)  # every corruption the pool was made with

    def batch(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``index``-th batch, the same in any process (drawn without replacement if it can)."""
        rng = np.random.default_rng([self.seed, index])
        pick = rng.choice(
            len(self.labels), self.batch_size, replace=len(self.labels) < self.batch_size
        )
        return self.images[pick], self.labels[pick]

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return (self.batch(i) for i in itertools.count())

    def __repr__(self) -> str:
        return (
            f"MetaValidationStream({self.protocol}, {len(self.labels)} images, "
            f"batch_size={self.batch_size}, corruptions={list(self.corruptions)})"
        )


def evaluation_skip(protocol: str) -> int:
    """Images to skip at the start of every corrupted-test block under ``protocol``."""
    return PAPER_PROTOCOL_SKIP if _check_protocol(protocol) == "paper" else 0


def meta_validation_stream(
    protocol: str,
    splits: DatasetSplits,
    cfg: DataConfig,
    batch_size: int,
    seed: int,
    *,
    paper: ImageSet | None = None,
) -> MetaValidationStream:
    """The meta-validation stream of ``protocol`` over ``splits`` (see the module docstring).

    ``paper``: the ``paper`` protocol's pool already read by :func:`paper_pool` (a Ray trial gets
    it from the driver: ``cfg.corruptions_dir`` may exist on the driver's node only).
    """
    if _check_protocol(protocol) == "paper":
        pool = paper if paper is not None else paper_pool(splits, cfg)
        return MetaValidationStream(
            pool.images,
            pool.labels,
            batch_size=batch_size,
            seed=seed,
            protocol="paper",
            corruptions=_all_corruptions(),
        )
    return _holdout_stream(splits, batch_size, seed)


def meta_validation_source(
    cfg: TrainConfig, splits: DatasetSplits, *, paper: ImageSet | None = None
) -> MetaValidationStream | None:
    """The stream the configured weighting learns from, or None when it needs none
    (``needs_meta_batch``; its section says the protocol and the batch size). ``paper``: the
    ``paper`` protocol's pool when the caller read it already (see :func:`meta_validation_stream`)."""
    spec = cfg.weighting.meta_validation
    if spec is None:
        return None
    return meta_validation_stream(
        spec.protocol, splits, cfg.data, spec.meta_batch_size, cfg.seed, paper=paper
    )


def _check_protocol(protocol: str) -> str:
    if protocol not in PROTOCOLS:
        raise DataError(
            f"unknown meta-validation protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}"
        )
    return protocol


def _holdout_stream(splits: DatasetSplits, batch_size: int, seed: int) -> MetaValidationStream:
    if len(splits.holdout) == 0:
        raise DataError(
            "the holdout meta-validation protocol needs held-out images: set data.holdout > 0"
        )
    images, used = corrupt_each(splits.holdout.images, seed)
    return MetaValidationStream(
        images,
        splits.holdout.labels,
        batch_size=batch_size,
        seed=seed,
        protocol="holdout",
        corruptions=used,
    )


def corrupt_each(
    images: np.ndarray, seed: int, corruptions: Sequence[str] | None = None
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Each image under its own seeded random corruption and severity (uniform over both).

    ``corruptions`` defaults to the 4 extra ones, the leak-free choice. Returns the corrupted copy
    and the corruptions actually used.
    """
    from auxtune.data.corruptions import EXTRA_CORRUPTIONS, corrupt

    names = tuple(EXTRA_CORRUPTIONS if corruptions is None else corruptions)
    rng = np.random.default_rng(seed)  # batches use [seed, index]: an independent stream
    which = rng.integers(len(names), size=len(images))
    severity = rng.integers(1, len(SEVERITIES) + 1, size=len(images))
    out, used = images.copy(), []
    for k, name in enumerate(names):
        for s in SEVERITIES:
            group = np.flatnonzero((which == k) & (severity == s))  # one call per block
            if len(group):
                out[group] = corrupt(images[group], name, s, seed=seed)
                used.append(name)
    return out, tuple(dict.fromkeys(used))


def _all_corruptions() -> tuple[str, ...]:
    from auxtune.data.corruptions import CORRUPTIONS

    return CORRUPTIONS


def paper_pool(splits: DatasetSplits, cfg: DataConfig) -> ImageSet:
    """The ``paper`` protocol's pool: the first 100 images of every block of all 19 corruptions."""
    # every image of every block: its first 100 meta-validate, evaluation takes the rest
    suite = load_corrupted_test(dataclasses.replace(cfg, c_images_per_block=0), splits)
    missing = [c for c in _all_corruptions() if c not in suite.corruptions]
    if missing:
        raise DataError(
            f"the paper protocol meta-validates on all {len(_all_corruptions())} corruptions; "
            f"{suite.root} lacks {', '.join(f'{c}.npy' for c in missing)}"
        )
    if suite.block_size <= PAPER_PROTOCOL_SKIP:
        raise DataError(
            f"the paper protocol takes the first {PAPER_PROTOCOL_SKIP} images of every block and "
            f"evaluates on the rest, but {suite.root} has blocks of {suite.block_size}"
        )
    head = suite.subset(skip_first=0, first_k=PAPER_PROTOCOL_SKIP)
    blocks = [head.images(c, s) for c in _all_corruptions() for s in SEVERITIES]
    labels = np.tile(head.labels(), len(blocks))
    return ImageSet(np.concatenate(blocks), labels)
