"""Few labels: the main loss sees a class-balanced subset of the training labels, the auxiliary
tasks every image (``data.labeled_fraction``), as in semi-supervised learning with
self-supervision (Zhai et al., S4L, ICCV 2019).

The other labels are dropped here, at the data's boundary: they become :data:`UNLABELED` (-1),
so the trainer cannot use them, and a cross-entropy that met one would fail loudly.

    >>> import numpy as np
    >>> labels = np.repeat(np.arange(4), 5)            # 4 classes x 5 images
    >>> kept = labelled_subset(labels, 8, seed=0)      # 2 per class
    >>> np.bincount(labels[kept]).tolist()
    [2, 2, 2, 2]
"""

from __future__ import annotations

import dataclasses

import numpy as np

from auxtune.data.datasets import DatasetSplits, ImageSet
from auxtune.robust.config import DataConfig, check_labelled_batch, labelled_count
from auxtune.robust.data_utils import UNLABELED


def labelled_subset(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Sorted indices of ``count`` images, as balanced over the classes as the labels allow,
    chosen by ``seed`` (the first k of each class in one seeded order, round-robin)."""
    order = np.random.default_rng([seed, 0x1AB]).permutation(len(labels))
    ranked = labels[order]
    rank = np.empty(len(labels), np.int64)  # the image's place among its class in ``order``
    for c in np.unique(ranked):
        members = np.flatnonzero(ranked == c)
        rank[members] = np.arange(len(members))
    chosen = order[np.lexsort((ranked, rank))[:count]]  # every class's first, then seconds...
    return np.sort(chosen)


def hide_labels(splits: DatasetSplits, data: DataConfig, batch_size: int) -> DatasetSplits:
    """``splits`` with all but ``data.labeled_fraction`` of the training labels set to -1
    (val, holdout and test keep theirs). Refuses a labelled set smaller than one batch."""
    if data.labeled_fraction >= 1:
        return splits
    train = splits.train
    check_labelled_batch(data, len(train), batch_size)  # CIFAR's size is known only now
    kept = labelled_subset(
        train.labels, labelled_count(len(train), data.labeled_fraction), data.seed
    )
    labels = np.full_like(train.labels, UNLABELED)
    labels[kept] = train.labels[kept]
    return dataclasses.replace(splits, train=ImageSet(train.images, labels))
